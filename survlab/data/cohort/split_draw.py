"""The draw of the outer folds (`make_splits`, a pure function of the case ids, outcomes and settings): patients sorted
by case_id, outer folds dealt round-robin within strata (event x time-quantile [x site], or label [x event]), then
each fold's inner val (and calibration) parts carved from its training part (survlab.data.cohort.split_parts);
with `group`, site-preserved folds instead (survlab.data.cohort.split_groups).

    >>> folds = make_splits([f"P{i}" for i in range(20)], np.arange(20.0), np.arange(20) % 2 == 0, folds=2)
    >>> [int((f["split"] == "test").sum()) for f in folds]
    [10, 10]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import pandas as pd

from survlab.data.cohort.ids import _first_ids
from survlab.data.cohort.split_groups import _group_splits
from survlab.data.cohort.split_parts import calibration_rng, carve_calibration, carve_validation, repeat_seed


def _strata(time: np.ndarray, event: np.ndarray, site: np.ndarray | None, n_time_strata: int) -> np.ndarray:
    """Stratum label per patient: event x time-quantile (quantiles within each event group) [x site]."""
    labels = np.empty(len(time), dtype=object)
    for ev in (False, True):
        sel = event == ev
        if not sel.any():
            continue
        q = min(n_time_strata, max(1, sel.sum() // 4))  # avoid strata smaller than a few patients
        ranks = pd.Series(time[sel]).rank(method="first").to_numpy()
        tq = np.minimum(((ranks - 1) * q // sel.sum()).astype(int), q - 1)
        labels[sel] = [f"e{int(ev)}_t{t}" for t in tq]
    if site is not None:
        labels = np.array([f"{lab}_s{s}" for lab, s in zip(labels, site, strict=False)], dtype=object)
    return labels


def _round_robin(strata: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Assign 0..k-1 to items so each stratum is spread evenly: shuffle within strata, deal cards in turn."""
    order: list[int] = []
    for s in sorted(set(strata.tolist())):
        idx = np.flatnonzero(strata == s)
        order.extend(rng.permutation(idx).tolist())
    out = np.empty(len(strata), dtype=int)
    start = int(rng.integers(k))
    for pos, i in enumerate(order):
        out[i] = (start + pos) % k
    return out


def make_splits(
    case_ids: Sequence[str],
    time: np.ndarray,
    event: np.ndarray,
    folds: int = 5,
    val_fraction: float = 0.15,
    seed: int = 0,
    site: np.ndarray | None = None,
    n_time_strata: int = 4,
    label: np.ndarray | None = None,
    calibration_fraction: float = 0.0,
    survival: bool = True,
    repeat: int = 0,
    group: np.ndarray | None = None,
    group_name: str = "group",
) -> list[pd.DataFrame]:
    """Pure function: -> one DataFrame (case_id, split) per outer fold, rows sorted by case_id.

    Patients are sorted by case_id before any random draw, so the assignment does not depend on the input order.
    `label` [N] (class values, NaN = missing): outer folds stratified by label (x event when `survival`) [x site]
    and the inner parts by label (x event) instead of event x time. `calibration_fraction` of each inner-train part
    (per inner stratum, drawn after the validation draw from a stream of its own, `calibration_rng`) becomes the
    `calibration` part: the test and val parts of every fold are those of the same call without calibration.
    `group` [N] (e.g. the site; `group_name` names it in errors): site-preserved folds (`_group_splits`); None draws
    exactly what survlab always drew.
    """
    case_ids = np.asarray(list(map(str, case_ids)), dtype=object)
    time, event = np.asarray(time, float), np.asarray(event, bool)
    dup = pd.Series(case_ids).loc[lambda c: c.duplicated()].unique()
    if len(dup):
        raise ValueError(f"make_splits: case_id(s) {_first_ids(dup)} given twice; pass one row per patient")
    order = np.argsort(case_ids, kind="stable")
    case_ids, time, event = case_ids[order], time[order], event[order]
    site = None if site is None else np.asarray(site)[order]
    inner = event if label is None else _label_strata(np.asarray(label, dtype=object)[order], event, survival)
    if folds < 2:
        raise ValueError(f"splits.folds must be >= 2, got {folds}")
    if len(case_ids) < 2 * folds:
        raise ValueError(f"cohort has {len(case_ids)} patients, too few for {folds} folds; use fewer folds")
    rng = np.random.default_rng(repeat_seed(seed, repeat))
    if group is not None:
        # whole groups leave few ways to balance: the outer folds balance the inner strata (event, or label [x event])
        groups_sorted = np.asarray(group, dtype=object)[order]
        return _group_splits(
            cast(np.ndarray, case_ids),  # converted to an object array above
            inner,
            inner,
            groups_sorted,
            group_name,
            folds,
            val_fraction,
            calibration_fraction,
            rng,
            seed,
            repeat,
        )
    if label is None:
        strata = _strata(time, event, site, n_time_strata)
    else:
        strata = (
            inner
            if site is None
            else np.array([f"{a}_s{b}" for a, b in zip(inner, site, strict=True)], object)
        )
    outer = _round_robin(strata, folds, rng)
    out = []
    for k in range(folds):
        split = np.where(outer == k, "test", "train").astype(object)
        train = np.flatnonzero(outer != k)
        groups = (False, True) if label is None else sorted(set(inner.tolist()))
        carve_validation(split, train, inner, groups, val_fraction, rng)
        if calibration_fraction > 0:  # own random stream: `rng` (hence every fold's val part) is untouched
            carve_calibration(
                split, train, inner, groups, calibration_fraction, calibration_rng(seed, k, repeat)
            )
        out.append(pd.DataFrame({"case_id": case_ids, "split": split}))
    return out


def _label_strata(label: np.ndarray, event: np.ndarray, survival: bool) -> np.ndarray:
    """Stratum per patient [N] (str): its class value ('na' when missing), x event when the cohort has survival."""
    keys = np.array(["na" if pd.isna(v) else str(v) for v in label], dtype=object)
    if survival:
        keys = np.array([f"{k}_e{int(e)}" for k, e in zip(keys, event, strict=True)], dtype=object)
    return keys
