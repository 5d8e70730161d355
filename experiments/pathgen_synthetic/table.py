"""The README's tables of the PathGen pipeline study from its sweep dirs (mean ± std over folds of each job's
top-level metrics.json: MCAT_GR with real / synthetic genomics, WSI-only ABMIL, the generator, conformal coverage).

    python experiments/pathgen_synthetic/table.py <sweep dir> [<sweep dir> ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SETTINGS = {
    "mcat_gr_real": "MCAT_GR, real genomics",
    "mcat_gr_synthetic": "MCAT_GR, synthetic genomics",
    "wsi_only": "WSI-only (ABMIL)",
}
COLUMNS = ("cindex", "grade_balanced_accuracy", "grade_auroc", "grade_kappa_quadratic")


def folds(sweep: Path) -> list[dict]:
    """Top-level metrics.json of every finished fold job under `sweep`, in fold order."""
    jobs = sorted(sweep.glob("**/fold*/metrics.json"), key=lambda p: p.parent.name)
    return [json.loads(p.read_text()) for p in jobs if (p.parent / "generator").is_dir()]


def cell(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sweeps", nargs="+", type=Path)
    args = parser.parse_args()
    print("| cohort regime | setting | C-index | grade balanced acc. | grade AUROC | grade κ (quadratic) |")
    print("|---|---|---|---|---|---|")
    for sweep in args.sweeps:
        runs = folds(sweep)
        for key, label in SETTINGS.items():
            row = [cell([m[f"test/{key}/{c}"] for m in runs]) for c in COLUMNS]
            print(f"| {sweep.parent.name} (n folds {len(runs)}) | {label} | " + " | ".join(row) + " |")
        c = {s: [m[f"test/{s}/cindex"] for m in runs] for s in SETTINGS}
        gap = np.subtract(c["mcat_gr_synthetic"], c["wsi_only"])
        print(
            f"\nper fold C-index, synthetic − WSI-only ({sweep.parent.name}): "
            + ", ".join(f"{g:+.3f}" for g in gap)
            + f" ({int((gap > 0).sum())}/{len(gap)} folds)\n"
        )
        gen = {
            k: np.mean([m[f"test/generation/{k}"] for m in runs])
            for k in (
                "generator/spearman_gene",
                "generator/spearman_patient",
                "generator/mae",
                "training_mean/spearman_gene",
                "training_mean/spearman_patient",
                "training_mean/mae",
            )
        }
        print(f"generator ({sweep.parent.name}): " + ", ".join(f"{k} {v:.3f}" for k, v in gen.items()) + "\n")
    print("| setting | grade α 0.1 | grade α 0.2 | survival bin α 0.1 | survival bin α 0.2 |")
    print("|---|---|---|---|---|")
    runs = [m for sweep in args.sweeps for m in folds(sweep)]
    for key, label in SETTINGS.items():
        cells = []
        for target in ("grade", "survival_bin"):
            for alpha in ("0.1", "0.2"):
                base = f"test/conformal/{key}/{target}/alpha={alpha}"
                cov = np.mean([m[f"{base}/coverage"] for m in runs])
                size = np.mean([m[f"{base}/mean_set_size"] for m in runs])
                cells.append(f"{cov:.2f} (set {size:.1f})")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
