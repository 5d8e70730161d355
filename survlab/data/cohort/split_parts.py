"""The inner parts of an outer fold and the random streams of a split draw: `carve_validation` and
`carve_calibration` mark a fraction of a fold's training rows per inner stratum; `repeat_seed` seeds repeat r of
repeated k-fold, `calibration_rng` the calibration draw of one fold (a stream of its own, so val and test parts do
not move when calibration is on).

    >>> repeat_seed(0, 0), repeat_seed(0, 2)
    (0, [0, 2])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# Version of the calibration draw, recorded in meta.json (and so in every fold hash) of split dirs with a
# calibration part. 2: drawn from the inner-train part with a per-fold stream of its own, so the test and val parts
# of every fold equal those of the run without calibration (version 1, unrecorded, drew from the folds' shared
# stream and so changed the val parts of folds 1..k-1).
CALIBRATION_DRAW = 2


def calibration_rng(seed: int, fold: int, repeat: int = 0) -> np.random.Generator:
    """The random stream of fold `fold`'s calibration draw (of repeat `repeat` of repeated k-fold): independent of
    the stream of the outer / val draws."""
    return np.random.default_rng([int(seed), int(fold), 0xCA1, *([int(repeat)] if repeat else [])])


def carve_calibration(
    split: np.ndarray,
    train: np.ndarray,
    inner: np.ndarray,
    groups: Sequence[Any],
    calibration_fraction: float,
    rng: np.random.Generator,
) -> None:
    """Mark `calibration_fraction` of the inner-train rows (indices `train` still marked "train" in `split` [N]) as
    "calibration" in place, per inner stratum; at least one per stratum of >= 2. Val and test rows never move."""
    for ev in groups:
        idx = rng.permutation(train[(inner[train] == ev) & (split[train] == "train")])
        n_cal = int(round(calibration_fraction * len(idx)))
        split[idx[: max(1, n_cal) if len(idx) >= 2 else n_cal]] = "calibration"


def repeat_seed(seed: int, repeat: int) -> int | list[int]:
    """Seed of the split draw for repeat `repeat` of repeated k-fold: `seed` itself for repeat 0 (the assignment
    survlab has always drawn), else the entropy [seed, repeat] (numpy SeedSequence: independent streams)."""
    if int(repeat) < 0:
        raise ValueError(f"splits.repeat must be >= 0, got {repeat}")
    return int(seed) if int(repeat) == 0 else [int(seed), int(repeat)]


def carve_validation(
    split: np.ndarray,
    train: np.ndarray,
    inner: np.ndarray,
    groups: Sequence[Any],
    val_fraction: float,
    rng: np.random.Generator,
) -> None:
    """Mark `val_fraction` of the training rows `train` (indices into `split` [N]) as "val" in place, per inner
    stratum (`inner` [N]: event, or label [x event]; `groups` its values in order); at least one per stratum of >= 2."""
    for ev in groups:
        idx = rng.permutation(train[inner[train] == ev])
        n_val = int(round(val_fraction * len(idx)))
        if val_fraction > 0 and len(idx) >= 2:
            n_val = max(1, n_val)
        split[idx[:n_val]] = "val"
