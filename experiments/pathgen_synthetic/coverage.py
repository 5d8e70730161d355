"""Grade coverage of the PathGen pipeline's split-conformal step over many (split seed, fold) repeats (issue 21.5).

Reads every `grader/eval_predictions.csv` under the given sweep dirs (MCAT_GR, real genomics), recomputes q̂ from the
calibration part and the coverage of the test part at each alpha, and beside it a permutation reference: the same
model's calibration + test patients re-partitioned at random 2000 times (what exchangeable parts would give with this
model) and the percentile of the observed coverage in it (uniform on [0, 1] when the parts are exchangeable). Also the
coverage per true grade at alpha 0.2 (split conformal guarantees marginal coverage only).

    python experiments/pathgen_synthetic/coverage.py <sweep dir> [<sweep dir> ...] --out results/coverage_repeats.csv
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd

from survlab.metrics.conformal import conformal_quantile, lac_scores

ALPHAS = (0.1, 0.2)


def job_rows(path: Path, rng: np.random.Generator) -> tuple[dict, list[dict]]:
    frame = pd.read_csv(path, dtype={"case_id": str})
    frame = frame[(frame["source"] == "real") & (frame["grade"] >= 0)]
    scores = lac_scores(frame.filter(regex="^grade_prob_").to_numpy(), frame["grade"].to_numpy())
    cal, grade = (frame["part"] == "calibration").to_numpy(), frame["grade"].to_numpy()
    row: dict = {
        "job": "/".join(path.parent.parent.parts[-2:]),
        "n_calibration": int(cal.sum()),
        "n_test": int((~cal).sum()),
    }
    per_grade = []
    for alpha in ALPHAS:
        qhat = conformal_quantile(scores[cal], alpha)
        covered = scores[~cal] <= qhat + 1e-12
        sims = np.empty(2000)
        for i in range(len(sims)):
            perm = rng.permutation(len(scores))
            c, t = perm[: cal.sum()], perm[cal.sum() :]
            sims[i] = (scores[t] <= conformal_quantile(scores[c], alpha) + 1e-12).mean()
        row[f"coverage_{alpha:g}"] = float(covered.mean())
        row[f"permutation_mean_{alpha:g}"] = float(sims.mean())
        row[f"percentile_{alpha:g}"] = float(
            (sims < covered.mean()).mean() + 0.5 * (sims == covered.mean()).mean()
        )
        if alpha == 0.2:
            for g in np.unique(grade):
                sel = grade[~cal] == g
                per_grade.append({"grade": int(g), "n": int(sel.sum()), "covered": int(covered[sel].sum())})
    return row, per_grade


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows, grades = [], []
    for sweep in args.sweeps:
        for path in sorted(sweep.rglob("grader/eval_predictions.csv")):
            row, per_grade = job_rows(path, rng)
            rows.append(row)
            grades.extend(per_grade)
    table = pd.DataFrame(rows)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False, float_format="%.4f")
    n = len(table)
    for alpha in ALPHAS:
        cov = table[f"coverage_{alpha:g}"]
        print(
            f"alpha {alpha:g}: {n} repeats, mean coverage {cov.mean():.3f} (sd {cov.std():.3f}, se {cov.std() / math.sqrt(n):.3f}); "
            f"guarantee {math.ceil((table.n_calibration.iloc[0] + 1) * (1 - alpha)) / (table.n_calibration.iloc[0] + 1):.3f}; "
            f"permutation mean {table[f'permutation_mean_{alpha:g}'].mean():.3f}; mean percentile "
            f"{table[f'percentile_{alpha:g}'].mean():.3f} (exchangeable: 0.5 ± {1 / math.sqrt(12 * n):.3f})"
        )
    g = pd.DataFrame(grades).groupby("grade")[["n", "covered"]].sum()
    print("coverage per true grade at alpha 0.2:", (g["covered"] / g["n"]).round(3).to_dict())


if __name__ == "__main__":
    main()
