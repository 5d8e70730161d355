"""Patient-level outer k-fold + inner validation splits, written ONCE to disk and reused by every model.

`<split_dir>/splits_<k>.csv` has columns case_id, split (train | val | test), rows sorted by case_id;
`<split_dir>/meta.json` records the settings, the cohort's case-set hash, the sha256 of every split file and of the
assignment itself (`assignments`: per file, `assignment_sha256`: all folds), which every reuse checks. The
assignment depends only on the content (case ids, outcomes, settings), never on the row order of the cohort table.
Outer folds are stratified by
event x time-quantile (optionally x site); the inner validation part (val_fraction of the training part of a fold)
is stratified by event. Slides are never split: rows are patients.

Site-preserved folds (`splits.group`, e.g. the tissue-source site): every group's patients land in ONE fold's test
part, and the inner validation (and calibration) part is carved from whole groups of the training part too, each
draw balancing the same strata as above across folds as well as the groups allow (StratifiedGroupKFold's
greedy, best of several orders: `_group_kfold`). A group holding more than a fold's share of the patients is an error naming it.

A split set is written as one: its files and meta.json go into a temporary dir beside the split dir
(`.<name>.<pid>.tmp`), renamed to it when complete, and removed when a write fails (a full disk): a failed write
leaves nothing, and the retry writes the set. Split files without meta.json that are byte for byte the ones survlab
writes for this cohort and settings (a partial set left by an older survlab) are recognised and completed; any other
split files without meta.json are never overwritten.

Example:
    >>> split = ensure_splits(cohort_frame, "splits/os", folds=5, seed=0).fold(0)   # doctest: +SKIP
    >>> split.train, split.val, split.test, split.hash                              # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from survlab.data.cohort.table import _first_ids
from survlab.utils.files import read_json

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test", "calibration")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def case_set_hash(case_ids: Sequence[str]) -> str:
    """Order-independent hash of a set of case ids."""
    return _sha256("\n".join(sorted(map(str, case_ids))).encode())


def assignment_hash(frames: dict[int, pd.DataFrame]) -> str:
    """sha256 of the sorted (fold, case_id, split) triples of `frames` (fold -> DataFrame case_id, split): the
    assignment itself, independent of the files' row order or formatting."""
    triples = sorted(
        (k, str(c), str(s))
        for k, df in frames.items()
        for c, s in zip(df["case_id"], df["split"], strict=True)
    )
    return _sha256("\n".join(f"{k},{c},{s}" for k, c, s in triples).encode())


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


def _group_kfold(
    strata: np.ndarray, groups: np.ndarray, n_splits: int, rng: np.random.Generator, n_candidates: int = 16
) -> np.ndarray:
    """Fold index 0..n_splits-1 per item [N]: whole groups per fold, the count of every stratum and the fold sizes
    balanced across folds as well as the groups allow. What scikit-learn's StratifiedGroupKFold does (greedy: each
    group to the fold where it adds least imbalance), but with larger groups placed first, improved by swapping
    groups between folds, and the best of `n_candidates` randomised orders kept (StratifiedGroupKFold's own greedy left test-fold event rates of 0.31..0.63
    on a cohort that allows 0.42..0.48). Deterministic given `rng`."""
    g_names, g = np.unique(groups.astype(str), return_inverse=True)
    _, y = np.unique(strata.astype(str), return_inverse=True)
    counts = np.zeros((len(g_names), y.max() + 1))
    np.add.at(counts, (g, y), 1.0)
    counts = np.hstack([counts, counts.sum(1, keepdims=True)])  # the last column: group size
    target = counts.sum(0) / n_splits
    best, best_cost = None, np.inf
    for _ in range(n_candidates):
        order = np.argsort(-counts[:, -1] * rng.uniform(0.7, 1.3, len(g_names)), kind="stable")
        fold_counts, assign = np.zeros((n_splits, counts.shape[1])), np.empty(len(g_names), dtype=int)
        for j in order:
            gain = ((fold_counts + counts[j] - target) ** 2 - (fold_counts - target) ** 2).sum(1)
            assign[j] = int(np.argmin(gain))
            fold_counts[assign[j]] += counts[j]
        _improve(assign, fold_counts, counts, target)
        cost = float(((fold_counts - target) ** 2).sum())
        if cost < best_cost - 1e-9 and (fold_counts[:, -1] > 0).all():
            best, best_cost = assign.copy(), cost
    if best is None:
        raise ValueError(
            f"cannot spread {len(g_names)} groups over {n_splits} folds with every fold non-empty"
        )
    return best[g]


def _improve(assign: np.ndarray, fold_counts: np.ndarray, counts: np.ndarray, target: np.ndarray) -> None:
    """Local search in place: swap two groups of different folds while that lowers the squared imbalance
    sum((fold_counts - target)^2) (for each group, the best swap partner over all groups at once)."""
    sq = lambda x: ((x - target) ** 2).sum(-1)  # noqa: E731
    improved, passes = True, 0
    while improved and passes < 100:
        improved, passes = False, passes + 1
        for i in range(len(assign)):
            a, b = assign[i], assign
            moved = counts - counts[i]  # [G, S]: what fold a gains (and fold b loses) by swapping i with j
            delta = (
                sq(fold_counts[a] + moved)
                - sq(fold_counts[a])
                + sq(fold_counts[b] - moved)
                - sq(fold_counts[b])
            )
            delta[b == a] = np.inf
            j = int(np.argmin(delta))
            if delta[j] < -1e-9:
                fold_counts[a] += moved[j]
                fold_counts[b[j]] -= moved[j]
                assign[i], assign[j] = b[j], a
                improved = True


def _carve_groups(
    split: np.ndarray,
    rows: np.ndarray,
    inner: np.ndarray,
    groups: np.ndarray,
    fraction: float,
    part: str,
    group_name: str,
    fold: int,
    rng: np.random.Generator,
) -> None:
    """Mark about `fraction` of `rows` (indices into `split` [N]) as `part` in place, by whole groups, `inner`
    strata balanced: the first of round(1 / fraction) StratifiedGroupKFold folds of those rows."""
    if fraction <= 0:
        return
    n_splits = max(2, int(round(1.0 / fraction)))
    n_groups = len(set(groups[rows].tolist()))
    if n_groups < n_splits:
        raise ValueError(
            f"splits.group={group_name}: fold {fold}'s training part has {n_groups} {group_name} value(s), too few "
            f"to carve a {part} part of {fraction:g} by whole groups (needs {n_splits}); use fewer folds or a larger "
            f"{'val_fraction' if part == 'val' else 'calibration_fraction'}"
        )
    k = _group_kfold(inner[rows], groups[rows], n_splits, rng)
    split[rows[k == 0]] = part


def _group_splits(
    case_ids: np.ndarray,
    strata: np.ndarray,
    inner: np.ndarray,
    groups: np.ndarray,
    group_name: str,
    folds: int,
    val_fraction: float,
    calibration_fraction: float,
    rng: np.random.Generator,
    seed: int,
    repeat: int,
) -> list[pd.DataFrame]:
    """Site-preserved outer folds + inner val / calibration parts (module doc); arrays [N] sorted by case_id."""
    missing = [c for c, g in zip(case_ids, groups, strict=True) if pd.isna(g) or str(g) == ""]
    if missing:
        raise ValueError(
            f"splits.group={group_name}: {len(missing)} patient(s) have no {group_name} value: "
            f"{_first_ids(missing)}; fill the column (every patient needs a group)"
        )
    groups = np.asarray([str(g) for g in groups], dtype=object)
    sizes = pd.Series(groups).value_counts()
    share = len(case_ids) / folds
    if len(sizes) < folds:
        raise ValueError(
            f"splits.group={group_name}: only {len(sizes)} {group_name} value(s) ({_first_ids(sorted(sizes.index))}) "
            f"for {folds} folds; use at most {len(sizes)} folds"
        )
    big = sizes[sizes > share]
    if len(big):
        raise ValueError(
            f"splits.group={group_name}: {group_name} {big.index[0]!r} has {int(big.iloc[0])} of {len(case_ids)} "
            f"patients, more than a fold's share ({share:.0f} = {len(case_ids)}/{folds}): a {group_name} must fit in one "
            f"fold's test part; use fewer folds"
        )
    outer = _group_kfold(strata, groups, folds, rng)
    out = []
    for k in range(folds):
        split = np.where(outer == k, "test", "train").astype(object)
        train = np.flatnonzero(outer != k)
        _carve_groups(split, train, inner, groups, val_fraction, "val", group_name, k, rng)
        if calibration_fraction > 0:
            rest = train[split[train] == "train"]
            _carve_groups(
                split,
                rest,
                inner,
                groups,
                calibration_fraction,
                "calibration",
                group_name,
                k,
                calibration_rng(seed, k, repeat),
            )
        out.append(pd.DataFrame({"case_id": case_ids, "split": split}))
    return out


#: the regular expression of a TCGA barcode; its second field is the tissue-source site (TSS) code
TCGA_BARCODE = r"^TCGA-([A-Za-z0-9]{2})-[A-Za-z0-9]{4}"


def tcga_sites(case_ids: Sequence[str]) -> np.ndarray | None:
    """The tissue-source site `XX` of every `TCGA-XX-YYYY` case id [N], or None when any id is not a TCGA barcode."""
    sites = pd.Series(list(map(str, case_ids)), dtype=object).str.extract(TCGA_BARCODE, expand=False)
    return None if sites.isna().any() or not len(sites) else sites.to_numpy(dtype=object)


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


def _label_strata(label: np.ndarray, event: np.ndarray, survival: bool) -> np.ndarray:
    """Stratum per patient [N] (str): its class value ('na' when missing), x event when the cohort has survival."""
    keys = np.array(["na" if pd.isna(v) else str(v) for v in label], dtype=object)
    if survival:
        keys = np.array([f"{k}_e{int(e)}" for k, e in zip(keys, event, strict=True)], dtype=object)
    return keys


@dataclass(frozen=True)
class FoldSplit:
    """One outer fold: patient ids per part (sorted), the split file and the hash of the settings + assignment."""

    fold: int
    train: list[str]
    val: list[str]
    test: list[str]
    path: Path
    hash: str
    calibration: list[str] = field(default_factory=list)  # carved from the training part; empty by default

    def part(self, name: str) -> list[str]:
        return {"train": self.train, "val": self.val, "test": self.test, "calibration": self.calibration}[
            name
        ]

    def without(self, case_ids: Sequence[str]) -> FoldSplit:
        """Drop patients (e.g. missing a required modality) from every part; the hash is unchanged."""
        gone = set(case_ids)
        keep = lambda ids: [c for c in ids if c not in gone]  # noqa: E731
        return FoldSplit(
            self.fold,
            keep(self.train),
            keep(self.val),
            keep(self.test),
            self.path,
            self.hash,
            keep(self.calibration),
        )


#: Smallest inner-validation part to pick a checkpoint on (selection=best_val): with fewer than 20 patients or 10
#: events a C-index / loss on it moves by ~0.1 from one patient, so the "best" epoch is noise (a 5-fold split of 30
#: patients validates on ~4). A test part needs 2 events for a log-rank test / hazard ratio that says anything.
MIN_VAL_PATIENTS, MIN_VAL_EVENTS, MIN_TEST_EVENTS = 20, 10, 2


def part_sizes(
    parts: dict[str, Sequence[str]], event_of: dict[str, bool] | None
) -> dict[str, tuple[int, int]]:
    """Part name -> (patients, events) for `parts` (e.g. train / val / test ids); events 0 without `event_of`."""
    return {p: (len(ids), sum(bool(event_of[c]) for c in ids) if event_of else 0) for p, ids in parts.items()}


def describe_sizes(sizes: dict[str, tuple[int, int]], survival: bool = True) -> str:
    """'train 20 patients / 12 events, val 4 / 2, test 6 / 1' (without events for a cohort without survival)."""
    out = []
    for i, (part, (n, e)) in enumerate(sizes.items()):
        unit = (" patients" + (" / " if survival else "")) if i == 0 else (" / " if survival else "")
        out.append(f"{part} {n}{unit}{e if survival else ''}{' events' if survival and i == 0 else ''}")
    return ", ".join(out)


def small_split_warning(
    sizes: dict[str, tuple[int, int]], folds: int, selection: str = "best_val", survival: bool = True
) -> str | None:
    """One line when a fold's parts are too small for what the run does with them (MIN_VAL_PATIENTS /
    MIN_VAL_EVENTS for selection=best_val, MIN_TEST_EVENTS for the test log-rank), else None; names the counts and
    the fixes (fewer folds, a larger val_fraction, selection=last)."""
    why, fixes = [], [f"fewer folds (data.splits.folds, now {folds})"]
    n_val, e_val = sizes.get("val", (0, 0))
    if selection == "best_val" and (n_val < MIN_VAL_PATIENTS or (survival and e_val < MIN_VAL_EVENTS)):
        why.append(
            f"the checkpoint is picked on {n_val} validation patients"
            + (f" with {e_val} events" if survival else "")
            + f" (selection=best_val needs >= {MIN_VAL_PATIENTS} patients"
            + (f" and >= {MIN_VAL_EVENTS} events" if survival else "")
            + ")"
        )
        fixes += ["a larger data.splits.val_fraction", "selection=last"]
    if survival and sizes.get("test", (0, MIN_TEST_EVENTS))[1] < MIN_TEST_EVENTS:
        why.append(
            f"the test part has {sizes['test'][1]} event(s), too few for a log-rank test or hazard ratio "
            f"(>= {MIN_TEST_EVENTS})"
        )
    if not why:
        return None
    fix = fixes[0] if len(fixes) == 1 else f"{', '.join(fixes[:-1])} or {fixes[-1]}"
    return f"{describe_sizes(sizes, survival)}: {'; '.join(why)}; use {fix}"


class SplitSet:
    """The split dir: settings + per-fold files. Create with `ensure_splits`."""

    def __init__(self, split_dir: Path, meta: dict[str, Any]) -> None:
        self.dir, self.meta = split_dir, meta

    @property
    def folds(self) -> int:
        return int(self.meta["folds"])

    def fold(
        self, k: int, case_ids: Sequence[str] | None = None, event_of: dict[str, bool] | None = None
    ) -> FoldSplit:
        """Load + validate fold k against the cohort (`case_ids`, `event_of`: case_id -> event)."""
        if not 0 <= k < self.folds:
            raise ValueError(
                f"fold={k} out of range: {self.dir} has {self.folds} folds (0..{self.folds - 1})"
            )
        path = self.dir / f"splits_{k}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"split file {path} missing; delete {self.dir} to regenerate the splits")
        expected = self.meta.get("files", {}).get(path.name)
        if expected and expected != _sha256(path.read_bytes()):
            raise ValueError(
                f"{path} was modified after {self.dir / 'meta.json'} was written (sha256 mismatch); "
                f"restore it or delete {self.dir} to regenerate the splits"
            )
        df = _read_split(path)
        validate_split_frame(df, path, k, case_ids, event_of)
        recorded = self.meta.get("assignments", {}).get(path.name)
        if recorded and recorded != assignment_hash({k: df}):
            raise ValueError(
                f"{path}: the patient assignment differs from the one recorded in {self.dir / 'meta.json'} "
                f"(assignment_sha256 mismatch); restore the file or delete {self.dir} to regenerate the splits"
            )
        parts = {s: sorted(df.loc[df["split"] == s, "case_id"]) for s in SPLIT_NAMES}
        return FoldSplit(
            k, parts["train"], parts["val"], parts["test"], path, self.fold_hash(k), parts["calibration"]
        )

    def fold_hash(self, k: int) -> str:
        """sha256 of (fold, settings, case set, assignment of every fold): equal for equal content."""
        keys = ("folds", "val_fraction", "seed", "stratify", "case_set_sha256", "assignment_sha256")
        new = [
            key
            for key in (
                "calibration_fraction",
                "calibration_draw",
                "imported",
                "repeat",
                "group",
                "group_source",
            )
            if key in self.meta
        ]  # only when used: old hashes stay
        values = {key: self.meta.get(key) for key in (*keys, *new)}
        return _sha256(json.dumps({"fold": k, **values}, sort_keys=True).encode())


def _read_split(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"case_id": str})


def validate_split_frame(
    df: pd.DataFrame,
    path: Path,
    fold: int,
    case_ids: Sequence[str] | None = None,
    event_of: dict[str, bool] | None = None,
) -> None:
    """Raise ValueError (one line) on: bad columns/values, a patient in two splits, unknown or missing case ids,
    or a val/test part without events."""
    if list(df.columns[:2]) != ["case_id", "split"]:
        raise ValueError(f"{path}: expected columns case_id, split; found {list(df.columns)}")
    bad = df.loc[~df["split"].isin(SPLIT_NAMES), "split"].unique()
    if len(bad):
        raise ValueError(f"{path}: unknown split value(s) {list(bad)}; allowed: {list(SPLIT_NAMES)}")
    dup = df.loc[df["case_id"].duplicated(), "case_id"].unique()
    if len(dup):
        raise ValueError(
            f"{path}: patient(s) {_first_ids(dup)} appear in two splits (or twice); each case_id must have exactly "
            f"one row; delete the split dir to regenerate"
        )
    if case_ids is not None:
        known = set(case_ids)
        unknown = [c for c in df["case_id"] if c not in known]
        if unknown:
            raise ValueError(
                f"{path}: {len(unknown)} unknown case_id(s) not in the cohort: {_first_ids(unknown)}; the split dir "
                f"belongs to another cohort — delete it or choose another splits.dir"
            )
        listed = set(df["case_id"])
        missing = [c for c in case_ids if c not in listed]
        if missing:
            raise ValueError(
                f"{path}: {len(missing)} cohort patient(s) missing from the split file: {_first_ids(missing)}; "
                f"delete the split dir or choose another splits.dir"
            )
    if event_of is not None:
        for part in ("val", "test"):
            ids = df.loc[df["split"] == part, "case_id"]
            if len(ids) and not any(event_of.get(c, False) for c in ids):
                raise ValueError(
                    f"{path}: fold {fold} {part} part ({len(ids)} patients) has NO events; metrics are undefined — "
                    f"use fewer folds, another splits.seed or a larger val_fraction"
                )


def draw_splits(
    cohort: pd.DataFrame,
    folds: int = 5,
    val_fraction: float = 0.15,
    seed: int = 0,
    stratify_site: str | None = None,
    stratify_label: str | None = None,
    calibration_fraction: float = 0.0,
    survival: bool = True,
    repeat: int = 0,
    group: str | None = None,
) -> list[pd.DataFrame]:
    """The folds (one DataFrame case_id, split per fold) `ensure_splits` writes for `cohort` (columns case_id, time,
    event and the stratification / group columns), drawn in memory: nothing is read or written (`survlab check`
    counts the parts training will use with it)."""
    if stratify_site and stratify_site not in cohort.columns:
        raise ValueError(f"splits.stratify_site={stratify_site!r} is not a column of the cohort table")
    if stratify_label and stratify_label not in cohort.columns:
        raise ValueError(f"splits.stratify_label={stratify_label!r} is not a column of the cohort table")
    return make_splits(
        cohort["case_id"].astype(str).tolist(),
        cohort["time"].to_numpy(),
        cohort["event"].to_numpy(),
        folds,
        val_fraction,
        seed,
        cohort[stratify_site].astype(str).to_numpy() if stratify_site else None,
        label=cohort[stratify_label].to_numpy(object) if stratify_label else None,
        calibration_fraction=float(calibration_fraction),
        survival=survival,
        repeat=int(repeat),
        group=group_column(cohort, str(group))[0] if group else None,
        group_name=str(group),
    )


def ensure_splits(
    cohort: pd.DataFrame,
    split_dir: str | Path,
    folds: int = 5,
    val_fraction: float = 0.15,
    seed: int = 0,
    stratify_site: str | None = None,
    stratify_label: str | None = None,
    calibration_fraction: float = 0.0,
    survival: bool = True,
    repeat: int = 0,
    group: str | None = None,
) -> SplitSet:
    """Write the split files once (from `cohort` with columns case_id, time, event[, site]) or reuse them.

    Reuse requires the same case set and settings; otherwise the error tells the user to delete the dir or
    choose another. Split files without survlab's meta.json (e.g. CLAM's) are never overwritten: that is an error,
    unless they are survlab's own partial set (module doc). The set is written atomically (`write_split_set`) and
    deterministically, so concurrent jobs writing the same dir agree.
    `repeat` > 0 (repeated k-fold) is recorded in meta.json and the fold hash; repeat 0 writes what it always did.
    `group` (a column, e.g. site): site-preserved folds (`make_splits`); for `site` without such a column the
    tissue-source site of TCGA barcodes (`tcga_sites`). Recorded (`group`, `group_source`) only when used.
    """
    split_dir = Path(split_dir)
    case_ids = cohort["case_id"].astype(str).tolist()
    settings = {
        "folds": int(folds),
        "val_fraction": float(val_fraction),
        "seed": int(seed),
        "stratify": (
            ["event", "time_quantile"]
            if stratify_label is None
            else [f"label:{stratify_label}"] + (["event"] if survival else [])
        )
        + ([stratify_site] if stratify_site else []),
        "n_patients": len(case_ids),
        "case_set_sha256": case_set_hash(case_ids),
    }
    if not 0.0 <= float(calibration_fraction) < 1.0:
        raise ValueError(f"splits.calibration_fraction must be in [0, 1), got {calibration_fraction}")
    if calibration_fraction:  # recorded (and hashed) only when used: split dirs without it are unchanged
        settings["calibration_fraction"] = float(calibration_fraction)
        settings["calibration_draw"] = CALIBRATION_DRAW
    repeat_seed(seed, repeat)  # validates
    if repeat:  # likewise: repeat 0 keeps today's meta.json and hashes
        settings["repeat"] = int(repeat)
    if group:  # likewise: only when used
        settings["group_source"] = group_column(cohort, str(group))[1]
        settings["group"] = str(group)
    meta_path = split_dir / "meta.json"
    if meta_path.is_file():
        meta = read_json(meta_path)
        if meta.get("case_set_sha256") != settings["case_set_sha256"]:
            raise ValueError(
                f"{split_dir} holds splits for a different set of patients ({meta.get('n_patients')} vs "
                f"{len(case_ids)} in this cohort); delete {split_dir} or choose another splits.dir"
            )
        changed = {k: (meta.get(k), v) for k, v in settings.items() if meta.get(k) != v}
        if int(meta.get("repeat", 0)) != int(repeat):  # absent = repeat 0
            changed["repeat"] = (meta.get("repeat", 0), int(repeat))
        if meta.get("group") != settings.get("group"):  # absent = no groups
            changed["group"] = (meta.get("group"), settings.get("group"))
        if set(changed) == {"calibration_draw"}:
            raise ValueError(
                f"{split_dir} holds calibration splits of an older survlab (calibration_draw "
                f"{meta.get('calibration_draw', 1)}, now {CALIBRATION_DRAW}: its calibration draw also changed the val "
                f"parts of folds 1..{int(meta['folds']) - 1}); delete {split_dir} to regenerate the splits or choose "
                f"another splits.dir"
            )
        if changed:
            raise ValueError(
                f"{split_dir} was written with other settings {changed} (stored, requested); delete it or choose "
                f"another splits.dir"
            )
        if "assignment_sha256" not in meta:  # written before survlab recorded the assignment: hash the files
            files = {k: split_dir / f"splits_{k}.csv" for k in range(int(meta["folds"]))}
            meta = {
                **meta,
                "assignment_sha256": assignment_hash(
                    {k: _read_split(p) for k, p in files.items() if p.is_file()}
                ),
            }
            log.warning("%s has no assignment_sha256 (older survlab); using the hash of its files", meta_path)
        log.info("reusing splits in %s (%d folds)", split_dir, meta["folds"])
        return SplitSet(split_dir, meta)
    frames = draw_splits(
        cohort,
        folds,
        val_fraction,
        seed,
        stratify_site,
        stratify_label,
        calibration_fraction,
        survival,
        repeat,
        group,
    )
    contents = {f"splits_{k}.csv": df.to_csv(index=False).encode() for k, df in enumerate(frames)}
    foreign = sorted(p.name for p in split_dir.glob("splits_*.csv")) if split_dir.is_dir() else []
    if foreign and all(contents.get(name) == (split_dir / name).read_bytes() for name in foreign):
        log.info("completing the partial split set survlab left in %s (%s)", split_dir, ", ".join(foreign))
    elif foreign:  # e.g. a CLAM split folder given as splits.dir: never overwrite files survlab did not write
        raise ValueError(
            f"{split_dir} holds split files survlab did not write ({_first_ids(foreign, 3)}, no meta.json); survlab "
            f"never overwrites them: choose another splits.dir (survlab writes its own split files there)"
        )
    meta = {
        **settings,
        "files": {name: _sha256(data) for name, data in contents.items()},
        "assignments": {f"splits_{k}.csv": assignment_hash({k: df}) for k, df in enumerate(frames)},
        "assignment_sha256": assignment_hash(dict(enumerate(frames))),
    }
    write_split_set(split_dir, {**contents, "meta.json": json.dumps(meta, indent=2, sort_keys=True).encode()})
    log.info("wrote %d split files to %s", folds, split_dir)
    return SplitSet(split_dir, meta)


def group_column(cohort: pd.DataFrame, group: str) -> tuple[np.ndarray, str]:
    """The group of every row of `cohort` [N] and where it came from: the column `group` ("column"), else for
    `site` the tissue-source site of TCGA barcodes ("tcga_barcode"); anything else is a one-line error."""
    if group in cohort.columns:
        return cohort[group].to_numpy(dtype=object), "column"
    if group == "site":
        sites = tcga_sites(cohort["case_id"])
        if sites is not None:
            return sites, "tcga_barcode"
        raise ValueError(
            "splits.group=site: the cohort table has no 'site' column and its case ids are not all TCGA barcodes "
            "(TCGA-XX-YYYY, site XX); add a site column to the clinical CSV or name another column in splits.group"
        )
    raise ValueError(
        f"splits.group={group!r} is not a column of the cohort table; name a column (e.g. site, centre) or set "
        f"splits.group=null for random folds"
    )


def write_split_set(split_dir: Path, files: dict[str, bytes]) -> None:
    """Write `files` (name -> bytes, meta.json last) as one set: into `.<name>.<pid>.tmp` beside `split_dir`, renamed
    to `split_dir` when complete (moved in file by file, meta.json last, when the dir already holds other files).
    The temporary dir is removed whatever happens; an OSError (full disk, no permission) names `split_dir`."""
    tmp = split_dir.with_name(f".{split_dir.name}.{os.getpid()}.tmp")
    try:
        split_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        if split_dir.is_dir() and any(split_dir.iterdir()):
            for name in files:
                os.replace(tmp / name, split_dir / name)
            return
        try:
            os.rename(tmp, split_dir)  # atomic; replaces an empty dir
        except OSError:
            if not (split_dir / "meta.json").is_file():
                raise
            # a concurrent job renamed its set first: the same bytes (the writes are deterministic)
    except OSError as err:
        raise OSError(
            err.errno,
            f"cannot write the split files to {split_dir} ({err.strerror or err}); nothing was left there, run "
            f"again once it can be written",
        ) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
