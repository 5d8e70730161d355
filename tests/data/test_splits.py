"""Patient-level outer k-fold + inner validation splits, persisted once and reused."""

from __future__ import annotations

import errno
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from survlab.data.cohort.split_draw import make_splits
from survlab.data.cohort.split_set import FoldSplit, SplitSet
from survlab.data.cohort.splits import ensure_splits
from survlab.data.cohort.table import Cohort


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


def test_a_full_disk_while_writing_splits_leaves_nothing_and_the_retry_writes_them(
    tiny_cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC at the third split file: one OSError naming the split dir, no partial set (no split file, no
    temporary dir) left; once space is back the same call writes the set, identical to an undisturbed write."""
    table = _cohort(tiny_cohort).table
    real = Path.write_bytes

    def full_disk(self: Path, data: bytes) -> int:
        if "splits_2.csv" in self.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    split_dir = tmp_path / "logs" / "splits" / "s"
    with pytest.raises(OSError) as err:
        ensure_splits(table, split_dir, folds=4)
    assert not list(split_dir.parent.rglob("*splits_*")) and not list(split_dir.parent.glob(".*"))
    assert err.value.errno == errno.ENOSPC and str(err.value).startswith(
        f"[Errno 28] cannot write the split files to {split_dir} (No space left on device); nothing was left"
    )
    monkeypatch.undo()
    split_set = ensure_splits(
        table, split_dir, folds=4
    )  # used to be refused: "split files survlab did not write"
    ensure_splits(table, tmp_path / "clean", folds=4)
    for name in ("meta.json", *(f"splits_{k}.csv" for k in range(4))):
        assert (split_dir / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name
    assert split_set.fold(3).test and sorted(p.name for p in split_dir.parent.iterdir()) == ["s"]


def test_a_partial_split_set_left_by_survlab_is_completed_and_foreign_files_are_not(
    tiny_cohort: Path, tmp_path: Path
) -> None:
    """Split files without meta.json that are exactly survlab's for this cohort and settings (an older survlab's
    partial write) are completed; a file that differs by one patient is still refused, and left as it was."""
    table = _cohort(tiny_cohort).table
    ensure_splits(table, tmp_path / "clean", folds=4)
    partial = tmp_path / "partial"
    partial.mkdir()
    for k in (0, 1):
        (partial / f"splits_{k}.csv").write_bytes((tmp_path / "clean" / f"splits_{k}.csv").read_bytes())
    ensure_splits(table, partial, folds=4)
    assert sorted(p.name for p in partial.iterdir()) == sorted(p.name for p in (tmp_path / "clean").iterdir())
    assert (partial / "meta.json").read_bytes() == (tmp_path / "clean" / "meta.json").read_bytes()

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    df = pd.read_csv(tmp_path / "clean" / "splits_0.csv", dtype={"case_id": str})
    df.loc[df.index[0], "split"] = "test" if df.loc[df.index[0], "split"] != "test" else "train"
    df.to_csv(foreign / "splits_0.csv", index=False)
    before = (foreign / "splits_0.csv").read_bytes()
    with pytest.raises(
        ValueError, match=r"holds split files survlab did not write \(splits_0.csv, no meta.json\)"
    ):
        ensure_splits(table, foreign, folds=4)
    assert (foreign / "splits_0.csv").read_bytes() == before and not (foreign / "meta.json").exists()


# ------------------------------------------------------------------------------ repeated k-fold (splits.repeat)
def _repeat_table() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 60
    return pd.DataFrame(
        {
            "case_id": [f"P{i:03d}" for i in range(n)],
            "time": rng.exponential(30, n).round(2),
            "event": rng.random(n) < 0.6,
            "site": rng.choice(["A", "B", "C"], n),
            "label": rng.choice(["x", "y"], n),
        }
    )


#: assignment_sha256 of this table's 5 folds drawn by survlab before splits.repeat existed (seed 0)
_TODAY = {
    "event_time": "7420803c9c8ddebc06367dd4d8de37b0bf6d05d0b3bf850a8eaeec0e63efe4ff",
    "site": "7954393878305c1a1c288677e4794442450f203eccadcc59385118e3a7da032b",
    # calibration_draw 2 (issue 21.6: the calibration part has a stream of its own) moved this one on purpose
    "label_cal": "7effb133cbeb26a02ffd99e89950b8a070daa5129fc44623b00685a7f57c84a1",
}
#: fold hashes (folds 0 and 4) of ensure_splits(folds=5, seed=0) on this table before splits.repeat existed
_TODAY_FOLD_HASH = (
    "33f8f05e74ef15c31337f8637b7443ba36a2b34a3be5f620aef6d8d37d5cefbf",
    "0e6fe578920b2e03739570bd88c7701df0503b3ad56b39bcf5f17c53e0be1eb5",
)


def test_repeat_zero_is_todays_assignment_and_repeat_one_another_with_the_same_guarantees(
    tmp_path: Path,
) -> None:
    from survlab.data.cohort.split_set import assignment_hash

    t = _repeat_table()
    args = (t["case_id"], t["time"].to_numpy(), t["event"].to_numpy())
    variants = {
        "event_time": {},
        "site": {"site": t["site"].to_numpy()},
        "label_cal": {"label": t["label"].to_numpy(object), "calibration_fraction": 0.2},
    }
    for name, kw in variants.items():
        by_repeat = {r: make_splits(*args, folds=5, seed=0, repeat=r, **kw) for r in (0, 1, 2)}
        hashes = {r: assignment_hash(dict(enumerate(f))) for r, f in by_repeat.items()}
        assert hashes[0] == _TODAY[name]  # repeat 0: byte-for-byte the assignment survlab always drew
        assert len(set(hashes.values())) == 3  # each repeat another assignment
        for frames in by_repeat.values():
            tests = np.concatenate([f.loc[f["split"] == "test", "case_id"].to_numpy() for f in frames])
            assert sorted(tests) == sorted(t["case_id"])  # every patient tested exactly once per repeat
            sizes = [int((f["split"] == "test").sum()) for f in frames]
            assert max(sizes) - min(sizes) <= 1
            ev = t.set_index("case_id")["event"]
            events = [int(ev[f.loc[f["split"] == "test", "case_id"]].sum()) for f in frames]
            assert max(events) - min(events) <= (3 if "site" in kw else 2)  # event-stratified as repeat 0
            for f in frames:  # the inner validation part stays stratified by event inside the training part
                val = f.loc[f["split"] == "val", "case_id"]
                assert ev[val].any() and (~ev[val]).any()
        # the outer test folds of repeat 1 are not those of repeat 0 relabelled
        fold_sets = lambda fr: {frozenset(f.loc[f["split"] == "test", "case_id"]) for f in fr}  # noqa: E731
        assert fold_sets(by_repeat[0]) != fold_sets(by_repeat[1])

    s0 = ensure_splits(t, tmp_path / "r0", folds=5, seed=0)
    s1 = ensure_splits(t, tmp_path / "r1", folds=5, seed=0, repeat=1)
    meta0 = json.loads((tmp_path / "r0" / "meta.json").read_text())
    assert "repeat" not in meta0 and (s0.fold(0).hash, s0.fold(4).hash) == _TODAY_FOLD_HASH
    assert json.loads((tmp_path / "r1" / "meta.json").read_text())["repeat"] == 1
    assert s1.fold(0).hash != s0.fold(0).hash  # the repeat is in the split hash
    with pytest.raises(ValueError, match=r"r1 was written with other settings .*'repeat': \(1, 0\)"):
        ensure_splits(t, tmp_path / "r1", folds=5, seed=0)  # a repeat-1 dir is never reused as repeat 0
    with pytest.raises(ValueError, match="splits.repeat must be >= 0, got -1"):
        make_splits(*args, folds=5, repeat=-1)


def test_small_split_warning_names_counts_thresholds_and_fixes() -> None:
    from survlab.data.cohort.split_sizes import part_sizes, small_split_warning

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
