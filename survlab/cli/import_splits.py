"""`survlab import-splits --format F --dir D --clinical C --out O`: a peer's split folder (CLAM / MCAT / PORPOISE
style) written as survlab split files, the same dir a run with `data.splits.import` uses."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pandas as pd

from survlab.data.cohort.splits_import import FORMATS, import_splits


def main(argv: Sequence[str] | None = None) -> int:
    """Write a peer's split folder as survlab split files (the same dir a run with data.splits.import uses)."""
    from survlab.data.cohort.endpoint import Endpoint
    from survlab.data.cohort.table import Cohort

    ap = argparse.ArgumentParser(prog="survlab import-splits", description=main.__doc__)
    ap.add_argument("--format", choices=FORMATS, required=True)
    ap.add_argument("--dir", required=True, help="folder with the peer's splits_<k>.csv")
    ap.add_argument("--clinical", required=True, help="the cohort's clinical CSV (one row per slide)")
    ap.add_argument("--out", required=True, help="folder the survlab split dir is written under")
    ap.add_argument("--case-col", default="case_id")
    ap.add_argument("--slide-col", default="slide_id")
    ap.add_argument("--time-col", default="survival_months")
    ap.add_argument("--censorship-col", default="censorship")
    ap.add_argument("--val-fraction", type=float, default=0.15)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        cohort = Cohort.from_csv(
            args.clinical,
            args.case_col,
            args.slide_col,
            Endpoint(time_col=args.time_col, censorship_col=args.censorship_col),
        )
        split_set = import_splits(cohort.table, args.format, args.dir, args.out, args.val_fraction, args.seed)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}")
        return 2
    counts = [
        pd.read_csv(split_set.dir / f"splits_{k}.csv")["split"].value_counts().to_dict()
        for k in range(split_set.folds)
    ]
    print(f"wrote {split_set.folds} folds to {split_set.dir}: {counts}")
    return 0
