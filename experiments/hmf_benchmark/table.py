"""One table + plot of the HMF benchmark: every variant x 5 folds, patient and slide level (mean ± sample std).

    python experiments/hmf_benchmark/table.py [--sweeps logs/multiruns/hmf_benchmark] [--out experiments/hmf_benchmark/results]

Reads each job's metrics.json (written only for completed jobs) under <sweeps>/<variant>/.../; the variant is the
sweep dir's name, or the job's model for the shared patient_baselines sweep (clam_sb, mean_mil).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

PATIENT = {"balanced acc.": "test/balanced_accuracy", "accuracy": "test/accuracy", "AUROC": "test/auroc",
           "macro F1": "test/f1"}
SLIDE = {"slide balanced acc.": "test/{obj}/balanced_accuracy", "slide accuracy": "test/{obj}/accuracy",
         "slide AUROC": "test/{obj}/auroc", "slide macro F1": "test/{obj}/f1"}
ORDER = ["hmf", "hmf_no_text", "hmf_no_filter", "hmf_ratio_0.1", "hmf_ratio_0.9", "abmil_cls", "clam_sb", "mean_mil"]


def collect(sweeps: Path) -> pd.DataFrame:
    rows = []
    for metrics_file in sorted(sweeps.glob("*/**/metrics.json")):
        job = metrics_file.parent
        sweep = metrics_file.relative_to(sweeps).parts[0]
        protocol = json.loads((job / "protocol.json").read_text())
        model = protocol["config"]["model"]["name"]
        variant = sweep if sweep != "patient_baselines" else model
        m = json.loads(metrics_file.read_text())
        obj = "slide_ce" if "test/slide_ce/balanced_accuracy" in m else "slide"
        row = {"variant": variant, "fold": protocol["config"]["fold"], "epochs": m.get("epochs_trained")}
        row.update({name: m.get(key) for name, key in PATIENT.items()})
        row.update({name: m.get(key.format(obj=obj)) for name, key in SLIDE.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sweeps", default="logs/multiruns/hmf_benchmark")
    p.add_argument("--out", default="experiments/hmf_benchmark/results")
    a = p.parse_args()
    jobs = collect(Path(a.sweeps))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs.sort_values(["variant", "fold"]).to_csv(out / "jobs.csv", index=False)
    metrics = [*PATIENT, *SLIDE, "epochs"]
    grouped = jobs.groupby("variant")[metrics]
    mean, std, n = grouped.mean(), grouped.std(ddof=1), jobs.groupby("variant").size()
    variants = [v for v in ORDER if v in mean.index] + [v for v in mean.index if v not in ORDER]
    lines = ["| variant | folds | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 2) + "|"]
    for v in variants:
        cells = ["–" if pd.isna(mean.loc[v, c]) else f"{mean.loc[v, c]:.3f} ± {std.loc[v, c]:.3f}" for c in metrics]
        lines.append(f"| `{v}` | {n[v]} | " + " | ".join(cells) + " |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.4
    xs = range(len(variants))
    for j, (col, label) in enumerate((("balanced acc.", "patient"), ("slide balanced acc.", "slide"))):
        ax.bar([x + (j - 0.5) * width for x in xs], [mean.loc[v, col] for v in variants], width,
               yerr=[0 if pd.isna(std.loc[v, col]) else std.loc[v, col] for v in variants], label=label, capsize=3)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(list(xs), variants, rotation=30, ha="right")
    ax.set_ylabel("test balanced accuracy (5 folds)")
    ax.set_ylim(0.3, 1.0)
    ax.set_title("synthetic_classification: HMF, ablations and MIL baselines")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "comparison.png", dpi=120)


if __name__ == "__main__":
    main()
