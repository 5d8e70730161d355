"""The keep-vs-drop table of experiments/missing_modalities: per cohort and run, the out-of-fold predictions of the 5
folds pooled (every patient tested once) and Harrell's C-index over the comparable pairs within a fold
(survlab.metrics.stats.pooled_statistic: each fold's model has its own risk scale) over all test patients and per
availability pattern, plus the fold mean ± sd of each job's metrics.json `availability`.

    python experiments/missing_modalities/report.py <out dir of run.sh>
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from survlab.metrics.stats import pooled_statistic


def cindex(frame: pd.DataFrame) -> float:
    """Pooled Harrell C of out-of-fold predictions (case_id, fold, risk, time, event), pairs within a fold."""
    return pooled_statistic(frame[["case_id", "fold", "risk", "time", "event"]])


def mean(folds: dict[str, list[float]], pattern: str) -> str:
    v = folds.get(pattern)
    return f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}" if v and len(v) > 1 else "–"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    print(
        "| cohort | model | data.missing | test patients | C all (pooled) | C wsi+genomics (pooled) | C wsi only (pooled) "
        "| fold mean wsi+genomics | fold mean wsi only |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for cohort in sorted(p.name for p in args.out.iterdir() if p.is_dir()):
        patterns_of: dict[str, str] = {}
        for mode in ("keep", "drop"):
            for model_dir in sorted((args.out / cohort / mode).glob("*/*")):
                jobs = sorted(model_dir.glob("fold*"))
                frame = pd.concat(pd.read_csv(j / "predictions.csv", dtype={"case_id": str}) for j in jobs)
                assert frame["case_id"].is_unique
                if "availability" in frame:
                    patterns_of.update(zip(frame["case_id"], frame["availability"], strict=True))
                frame["pattern"] = frame["case_id"].map(patterns_of)
                by = {p: cindex(g) for p, g in frame.groupby("pattern")}
                folds: dict[str, list[float]] = {}
                for j in jobs:
                    for p, rec in (
                        json.loads((j / "metrics.json").read_text()).get("availability") or {}
                    ).items():
                        value = next((v for k, v in rec.items() if k.endswith("/cindex")), None)
                        if value is not None:
                            folds.setdefault(p, []).append(value)

                cell = {p: f"{by[p]:.3f}" if p in by else "–" for p in ("wsi+genomics", "wsi")}
                counts = frame["pattern"].value_counts().to_dict()
                print(
                    f"| {cohort} | {model_dir.parent.name} | {mode} | {len(frame)} ({counts.get('wsi', 0)} wsi only) "
                    f"| {cindex(frame):.3f} | {cell['wsi+genomics']} | {cell['wsi']} | {mean(folds, 'wsi+genomics')} "
                    f"| {mean(folds, 'wsi')} |"
                )


if __name__ == "__main__":
    main()
