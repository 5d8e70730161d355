"""`survlab cut run=<mmdls_seg run dir> out=<new folder> ...`: a segmentor's predicted lesion masks cut into MM-DLS
stacks (survlab/runner/imaging_cut.py does the work)."""

from __future__ import annotations

import sys
from pathlib import Path

from survlab.runner.imaging_cut import cut_cohort


def main(argv: list[str] | None = None) -> None:
    """`survlab cut run=<dir> out=<dir> [cohort=<dir>] [lesion_window=N] [min_lesion_voxels=N]`."""
    args = dict(a.split("=", 1) for a in (argv if argv is not None else sys.argv[1:]) if "=" in a)
    unknown = sorted(set(args) - {"run", "out", "cohort", "lesion_window", "min_lesion_voxels"})
    if unknown or "run" not in args or "out" not in args:
        raise SystemExit(
            "usage: survlab cut run=<mmdls_seg run dir> out=<new folder> "
            "[cohort=<folder with volumes/>] [lesion_window=32] [min_lesion_voxels=1]"
            + (f" (unknown: {unknown})" if unknown else "")
        )
    try:
        report = cut_cohort(
            Path(args["run"]),
            Path(args["out"]),
            Path(args["cohort"]) if "cohort" in args else None,
            int(args.get("lesion_window", 32)),
            int(args.get("min_lesion_voxels", 1)),
        )
    except ValueError as err:
        raise SystemExit(f"survlab: error: {err}") from None
    n, empty = len(report["cases"]), len(report["empty_lesion"])
    if n and empty == n:  # MM-DLS would drop every patient and fail later with a misleading "no events" error
        raise SystemExit(
            f"survlab: error: the segmentor of {args['run']} predicted no lesion in any of the {n} volume(s), so no "
            f"stack was cut (masks and cut_report.json are in {args['out']}); retrain it (more epochs, another seed) "
            f"and check its test/dice_lesion before cutting"
        )
    print(
        f"survlab: cut stacks of {n - empty} / {n} case(s) into {args['out']} (empty predicted lesion: {empty}); "
        f"mean lesion Dice vs the cohort's masks: {report['mean_dice_lesion_vs_cohort_mask']}"
    )
