"""Patient-level outer k-fold + inner validation splits, persisted once and reused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from survlab.data.cohort import Cohort
from survlab.data.splits import FoldSplit, SplitSet, ensure_splits, make_splits


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


def _shuffled(table: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    return table.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def test_split_files_do_not_depend_on_row_order(tiny_cohort: Path, tmp_path: Path) -> None:
    """The same patients in another row order give byte-identical split files, meta.json and fold hashes."""
    table = _cohort(tiny_cohort).table
    a = ensure_splits(table, tmp_path / "a", folds=3, val_fraction=0.2, seed=0, stratify_site="site")
    b = ensure_splits(
        _shuffled(table), tmp_path / "b", folds=3, val_fraction=0.2, seed=0, stratify_site="site"
    )
    for k in range(3):
        name = f"splits_{k}.csv"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert a.fold(k).hash == b.fold(k).hash
    assert (tmp_path / "a" / "meta.json").read_text() == (tmp_path / "b" / "meta.json").read_text()
    frames = make_splits(table["case_id"], table["time"].to_numpy(), table["event"].to_numpy(), folds=3)
    assert frames[0]["case_id"].tolist() == sorted(table["case_id"])  # rows sorted by case_id


def test_meta_records_the_assignment_and_reuse_checks_it(tiny_cohort: Path, tmp_path: Path) -> None:
    table = _cohort(tiny_cohort).table
    split_set = ensure_splits(table, tmp_path / "s", folds=3, val_fraction=0.2)
    pairs = []
    for k in range(3):
        df = pd.read_csv(tmp_path / "s" / f"splits_{k}.csv", dtype={"case_id": str})
        pairs += [f"{k},{c},{s}" for c, s in zip(df["case_id"], df["split"], strict=True)]
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert meta["assignment_sha256"] == hashlib.sha256("\n".join(sorted(pairs)).encode()).hexdigest()
    fold0 = split_set.fold(0)
    # swap one training and one test patient (the file's checksum updated, as a careless user might)
    path = tmp_path / "s" / "splits_0.csv"
    df = pd.read_csv(path, dtype={"case_id": str})
    i, j = df.index[df["split"] == "train"][0], df.index[df["split"] == "test"][0]
    df.loc[[i, j], "split"] = ["test", "train"]
    path.write_bytes(df.to_csv(index=False).encode())
    meta["files"][path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / "s" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"splits_0.csv: the patient assignment differs .*assignment_sha256"):
        ensure_splits(table, tmp_path / "s", folds=3, val_fraction=0.2).fold(0)
    # a split dir written before assignments were recorded is reused with the hash of its files
    path.write_bytes(fold0_bytes := _frame(fold0).to_csv(index=False).encode())
    legacy = {k: v for k, v in meta.items() if k not in ("assignments", "assignment_sha256")}
    legacy["files"][path.name] = hashlib.sha256(fold0_bytes).hexdigest()
    (tmp_path / "s" / "meta.json").write_text(json.dumps(legacy))
    assert ensure_splits(table, tmp_path / "s", folds=3, val_fraction=0.2).fold(0).hash == fold0.hash


def _frame(split: FoldSplit) -> pd.DataFrame:
    parts = [(c, p) for p in ("train", "val", "test") for c in split.part(p)]
    return pd.DataFrame(sorted(parts), columns=["case_id", "split"])


def test_split_parts_do_not_depend_on_the_split_files_row_order(tiny_cohort: Path, tmp_path: Path) -> None:
    """A split file with its rows in another order (same assignment) gives the same parts in the same order."""
    table = _cohort(tiny_cohort).table
    first = ensure_splits(table, tmp_path / "s", folds=3).fold(1)
    path = tmp_path / "s" / "splits_1.csv"
    _shuffled(pd.read_csv(path, dtype={"case_id": str})).to_csv(path, index=False)
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    meta["files"][path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / "s" / "meta.json").write_text(json.dumps(meta))
    again = ensure_splits(table, tmp_path / "s", folds=3).fold(1)
    assert (again.train, again.val, again.test, again.hash) == (
        first.train,
        first.val,
        first.test,
        first.hash,
    )
    assert again.test == sorted(again.test)


def test_make_splits_rejects_a_patient_given_twice() -> None:
    with pytest.raises(ValueError, match=r"make_splits: case_id\(s\) P1 given twice"):
        make_splits(["P0", "P1", "P1", "P2"], np.ones(4), np.ones(4, bool), folds=2)


@pytest.mark.parametrize("stratify", ["event", "label"])
def test_calibration_part_leaves_every_folds_val_and_test_unchanged(stratify: str) -> None:
    """Issue 21.6: the calibration part comes out of the inner-train part only; the val and test parts of EVERY fold
    (not only fold 0) are those of the same splits without calibration."""
    rng = np.random.default_rng(4)
    n = 125
    ids = [f"P{i:03d}" for i in range(n)]
    time, event = rng.exponential(10, n) + 0.1, rng.random(n) < 0.6
    label = rng.integers(0, 4, n).astype(object) if stratify == "label" else None
    plain = make_splits(ids, time, event, folds=5, val_fraction=0.2, seed=7, label=label)
    cal = make_splits(
        ids, time, event, folds=5, val_fraction=0.2, seed=7, label=label, calibration_fraction=0.25
    )
    for k, (a, b) in enumerate(zip(plain, cal, strict=True)):
        for part in ("val", "test"):
            assert (
                b.loc[b["split"] == part, "case_id"].tolist() == a.loc[a["split"] == part, "case_id"].tolist()
            ), (
                k,
                part,
            )
        was_train = set(a.loc[a["split"] == "train", "case_id"])
        n_cal = int((b["split"] == "calibration").sum())
        assert set(b.loc[b["split"].isin(["train", "calibration"]), "case_id"]) == was_train
        assert 0.2 * len(was_train) <= n_cal <= 0.3 * len(was_train), (k, n_cal, len(was_train))


def test_calibration_splits_of_the_older_draw_are_not_reused(tiny_cohort: Path, tmp_path: Path) -> None:
    """A split dir with a calibration part written before the draw changed (no calibration_draw in meta.json) is an
    error naming the dir, never silently reused; the fold hash records the draw."""
    table = _cohort(tiny_cohort).table
    plain = ensure_splits(table, tmp_path / "p", folds=3, val_fraction=0.2)
    new = ensure_splits(table, tmp_path / "s", folds=3, val_fraction=0.2, calibration_fraction=0.25)
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert meta["calibration_draw"] == 2 and new.fold(1).hash != plain.fold(1).hash
    assert new.fold(1).val == plain.fold(1).val
    del meta["calibration_draw"]
    assert SplitSet(tmp_path / "s", meta).fold_hash(1) != new.fold(1).hash  # the draw is part of the hash
    (tmp_path / "s" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(
        ValueError, match=r"holds calibration splits of an older survlab .*delete .*/s to regenerate"
    ):
        ensure_splits(table, tmp_path / "s", folds=3, val_fraction=0.2, calibration_fraction=0.25)


def test_small_split_warning_names_counts_thresholds_and_fixes() -> None:
    from survlab.data.splits import part_sizes, small_split_warning

    ids = {"train": [f"t{i}" for i in range(20)], "val": ["v0", "v1", "v2", "v3"], "test": ["x0", "x1", "x2"]}
    event = {c: c in {"t0", "t1", "t2", "v0", "x0"} for p in ids.values() for c in p}
    sizes = part_sizes(ids, event)
    assert sizes == {"train": (20, 3), "val": (4, 1), "test": (3, 1)}
    assert small_split_warning(sizes, 5) == (
        "train 20 patients / 3 events, val 4 / 1, test 3 / 1: the checkpoint is picked on 4 validation patients "
        "with 1 events (selection=best_val needs >= 20 patients and >= 10 events); the test part has 1 event(s), "
        "too few for a log-rank test or hazard ratio (>= 2); use fewer folds (data.splits.folds, now 5), a larger "
        "data.splits.val_fraction or selection=last"
    )
    assert small_split_warning(sizes, 5, "last") == (
        "train 20 patients / 3 events, val 4 / 1, test 3 / 1: the test part has 1 event(s), too few for a log-rank "
        "test or hazard ratio (>= 2); use fewer folds (data.splits.folds, now 5)"
    )
    big = {"train": (300, 150), "val": (40, 20), "test": (80, 30)}
    assert small_split_warning(big, 5) is None
    assert small_split_warning({"train": (20, 0), "val": (4, 0), "test": (6, 0)}, 3, survival=False) == (
        "train 20 patients, val 4, test 6: the checkpoint is picked on 4 validation patients (selection=best_val "
        "needs >= 20 patients); use fewer folds (data.splits.folds, now 3), a larger data.splits.val_fraction or "
        "selection=last"
    )


def test_training_warns_on_the_set_up_fold() -> None:
    from types import SimpleNamespace

    from survlab.runner.selection import small_split_line

    dm = SimpleNamespace(
        name="mine",
        fold=1,
        has_survival=True,
        split_meta={"folds": 5},
        split_cfg={"folds": 5},
        split_sizes={"train": (20, 8), "val": (4, 2), "test": (6, 2)},
    )
    line = small_split_line("best_val", dm)
    assert line is not None and line.startswith(
        "data=mine fold 1: train 20 patients / 8 events, val 4 / 2, test 6 / 2:"
    )
    assert small_split_line("last", dm) is None
