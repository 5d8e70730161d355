"""The split dir on disk: one `splits_<k>.csv` (case_id, split) per outer fold and `meta.json`, read back as a
`SplitSet` whose `fold(k)` is checked (sha256 of the file and of its assignment against meta.json, the cohort's
patients, events in the val / test parts) before it becomes a `FoldSplit`; and the atomic write of a whole set
(`write_split_set`: a temporary dir renamed when complete, so a failed write leaves nothing).

    >>> assignment_hash({0: pd.DataFrame({"case_id": ["b", "a"], "split": ["test", "train"]})}) == assignment_hash(
    ...     {0: pd.DataFrame({"case_id": ["a", "b"], "split": ["train", "test"]})})
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from survlab.data.cohort.ids import _first_ids

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
