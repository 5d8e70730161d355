"""Patient-level outer k-fold + inner validation splits, persisted once and reused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from survlab.data.cohort import Cohort
from survlab.data.splits import ensure_splits, make_splits


def _cohort(tiny_cohort: Path) -> Cohort:
    return Cohort.from_csv(tiny_cohort / "clinical.csv", keep_cols=["site"])


def test_folds_are_patient_disjoint_and_cover_everyone_once(tiny_cohort: Path, tmp_path: Path) -> None:
    cohort = _cohort(tiny_cohort)
    split_set = ensure_splits(cohort.table, tmp_path / "s", folds=4, val_fraction=0.2, seed=3)
    event_of = dict(zip(cohort.case_ids, cohort.table["event"], strict=False))
    tests: list[str] = []
    for k in range(4):
        f = split_set.fold(k, cohort.case_ids, event_of)
        parts = [set(f.train), set(f.val), set(f.test)]
        assert sum(map(len, parts)) == len(cohort)
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert any(event_of[c] for c in f.val) and any(event_of[c] for c in f.test)
        tests.extend(f.test)
    assert sorted(tests) == sorted(cohort.case_ids)  # every patient in exactly one test fold


def test_slides_of_a_patient_never_split(tiny_cohort: Path, tmp_path: Path) -> None:
    cohort = _cohort(tiny_cohort)
    raw = pd.read_csv(tiny_cohort / "clinical.csv", dtype={"case_id": str})
    assert raw["case_id"].duplicated().any()  # multi-slide patients exist
    f = ensure_splits(cohort.table, tmp_path / "s", folds=3).fold(0)
    part_of = {c: p for p in ("train", "val", "test") for c in f.part(p)}
    slide_parts = raw.assign(part=raw["case_id"].map(part_of)).groupby("case_id")["part"].nunique()
    assert (slide_parts == 1).all()


def test_split_files_written_once_and_reused(tiny_cohort: Path, tmp_path: Path) -> None:
    cohort = _cohort(tiny_cohort)
    first = ensure_splits(cohort.table, tmp_path / "s", folds=3).fold(1)
    mtime = first.path.stat().st_mtime_ns
    again = ensure_splits(cohort.table, tmp_path / "s", folds=3).fold(1)
    assert again.hash == first.hash and first.path.stat().st_mtime_ns == mtime
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert set(meta["files"]) == {f"splits_{k}.csv" for k in range(3)} and meta["folds"] == 3
    assert first.hash != ensure_splits(cohort.table, tmp_path / "s", folds=3).fold(0).hash


def test_stratification_balances_events_and_site(tiny_cohort: Path) -> None:
    cohort = _cohort(tiny_cohort)
    t = cohort.table
    frames = make_splits(
        t["case_id"], t["time"].to_numpy(), t["event"].to_numpy(), folds=4, seed=0, site=t["site"].to_numpy()
    )
    events_per_test = [int(t["event"][f["split"].to_numpy() == "test"].sum()) for f in frames]
    assert max(events_per_test) - min(events_per_test) <= 2
    sizes = [int((f["split"] == "test").sum()) for f in frames]
    assert max(sizes) - min(sizes) <= 1
    assert np.array_equal(frames[0]["case_id"], t["case_id"])
