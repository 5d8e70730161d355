"""Peers' split files (MCAT / SurvPath and CLAM `splits_<k>.csv`) imported as survlab splits."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from survlab.cli.import_splits import main
from survlab.data.cohort.splits_import import import_splits

FOLDS = 3


def _ragged(parts: dict[str, list[str]]) -> pd.DataFrame:
    """A peer's split frame: one column per part, shorter columns padded with NaN (written as empty cells)."""
    return pd.concat({p: pd.Series(ids, dtype=object) for p, ids in parts.items()}, axis=1)


def _cases(cohort: Path) -> pd.DataFrame:
    return pd.read_csv(cohort / "clinical.csv", dtype={"case_id": str, "slide_id": str})


def _mcat_folder(cohort: Path, out: Path, with_test: bool = False) -> dict[int, dict[str, list[str]]]:
    """MCAT-style splits: patient i (sorted ids, reversed so file order differs from id order) is held out in
    fold i % FOLDS; with_test: the held-out fold is `test` and every 5th training patient is `val`."""
    ids = sorted(_cases(cohort)["case_id"].unique())[::-1]
    out.mkdir(parents=True)
    truth = {}
    for k in range(FOLDS):
        held = [c for i, c in enumerate(ids) if i % FOLDS == k]
        train = [c for c in ids if c not in held]
        parts = {"train": train, "val": held}
        if with_test:
            parts = {"train": [c for j, c in enumerate(train) if j % 5], "val": train[::5], "test": held}
        _ragged(parts).to_csv(out / f"splits_{k}.csv")
        truth[k] = parts
    return truth


def test_mcat_val_becomes_test_and_inner_val_is_carved_from_train(
    make_datamodule, tiny_cohort: Path, tmp_path: Path
) -> None:
    truth = _mcat_folder(tiny_cohort, tmp_path / "mcat")
    (tmp_path / "mcat" / "splits_0_bool.csv").write_text("junk\n")  # CLAM / MCAT side files are ignored
    events = _cases(tiny_cohort).groupby("case_id")["censorship"].first().eq(0)
    for k in range(FOLDS):
        dm = make_datamodule(
            fold=k,
            splits={
                "folds": 5,
                "val_fraction": 0.25,
                "seed": 3,
                "import": {"format": "mcat", "dir": str(tmp_path / "mcat")},
            },
        )
        assert dm.split.test == sorted(truth[k]["val"])
        assert sorted(dm.split.train + dm.split.val) == sorted(truth[k]["train"])
        n_train = len(truth[k]["train"])
        assert abs(len(dm.split.val) - 0.25 * n_train) <= 1.01  # rounded per event stratum
        assert events[dm.split.val].any() and (~events[dm.split.val]).any()  # stratified by event
    sha = hashlib.sha256((tmp_path / "mcat" / "splits_1.csv").read_bytes()).hexdigest()
    card = dm.describe()["split_import"]
    assert card["format"] == "mcat" and card["files"]["splits_1.csv"] == sha
    assert dm.split_meta["folds"] == FOLDS and "val -> test" in card["mapping"]


@pytest.mark.slow  # end-to-end: a training run / CLI subprocess (make test-e2e)
def test_imported_hash_follows_the_source_files(make_datamodule, tiny_cohort: Path, tmp_path: Path) -> None:
    truth = _mcat_folder(tiny_cohort, tmp_path / "mcat")
    imp = {"format": "mcat", "dir": str(tmp_path / "mcat")}
    first = make_datamodule(splits={"import": imp})
    again = make_datamodule(splits={"import": imp})
    assert (
        again.split_hash == first.split_hash and again.split.val == first.split.val
    )  # seeded: same inner val
    moved = dict(truth[0])  # one patient moved from held-out to train in fold 0
    moved["train"], moved["val"] = [*truth[0]["train"], truth[0]["val"][0]], truth[0]["val"][1:]
    _ragged(moved).to_csv(tmp_path / "mcat" / "splits_0.csv")
    changed = make_datamodule(splits={"import": imp})
    assert changed.split_hash != first.split_hash and truth[0]["val"][0] not in changed.split.test


def test_mcat_with_test_column_keeps_parts(make_datamodule, tiny_cohort: Path, tmp_path: Path) -> None:
    truth = _mcat_folder(tiny_cohort, tmp_path / "mcat", with_test=True)
    dm = make_datamodule(fold=2, splits={"import": {"format": "mcat", "dir": str(tmp_path / "mcat")}})
    assert dm.split.test == sorted(truth[2]["test"]) and dm.split.val == sorted(truth[2]["val"])
    assert dm.split.train == sorted(truth[2]["train"])


def _clam_folder(cohort: Path, out: Path, leak: bool = False) -> dict[str, list[str]]:
    """CLAM-style splits of SLIDE ids (some with a .svs extension): patients by sorted id into train/val/test."""
    table = _cases(cohort)
    ids = sorted(table["case_id"].unique())
    part_of = {c: ("test" if i % 4 == 0 else "val" if i % 4 == 1 else "train") for i, c in enumerate(ids)}
    parts: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for i, (case, slide) in enumerate(zip(table["case_id"], table["slide_id"], strict=True)):
        parts[part_of[case]].append(slide + (".svs" if i % 2 else ""))
    if leak:  # the second slide of a two-slide test patient goes to train
        multi = table.groupby("case_id")["slide_id"].apply(list)
        case = next(c for c in ids if part_of[c] == "test" and len(multi[c]) > 1)
        second = [s for s in parts["test"] if s.startswith(multi[case][1])][0]
        parts["test"].remove(second)
        parts["train"].append(second)
    out.mkdir(parents=True)
    _ragged(parts).to_csv(out / "splits_0.csv")
    _ragged(parts).to_csv(out / "splits_1.csv")
    return {p: sorted(c for c, q in part_of.items() if q == p) for p in parts}


def test_clam_slide_splits_map_to_patients(make_datamodule, tiny_cohort: Path, tmp_path: Path) -> None:
    truth = _clam_folder(tiny_cohort, tmp_path / "clam")
    dm = make_datamodule(fold=1, splits={"import": {"format": "clam", "dir": str(tmp_path / "clam")}})
    assert (
        dm.split.train == truth["train"] and dm.split.val == truth["val"] and dm.split.test == truth["test"]
    )
    assert dm.describe()["split_import"]["format"] == "clam"


def test_clam_split_that_leaks_a_patient_errors(tiny_cohort: Path, tmp_path: Path) -> None:
    _clam_folder(tiny_cohort, tmp_path / "clam", leak=True)
    table = _cases(tiny_cohort).groupby("case_id")["slide_id"].apply(list).reset_index(name="slide_ids")
    table["event"] = True
    with pytest.raises(
        ValueError, match=r"splits_0.csv: 1 patient\(s\) in more than one part .*\['test', 'train'\]"
    ):
        import_splits(table, "clam", tmp_path / "clam", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    truth = _mcat_folder(tiny_cohort, tmp_path / "mcat")
    case = truth[1]["val"][0]
    _ragged({"train": [*truth[1]["train"], case], "val": truth[1]["val"]}).to_csv(
        tmp_path / "mcat" / "splits_1.csv"
    )
    with pytest.raises(ValueError, match=rf"splits_1.csv: 1 patient\(s\) in more than one part \({case};"):
        import_splits(table, "mcat", tmp_path / "mcat", tmp_path / "out")


def test_unknown_ids_are_listed_with_counts(make_datamodule, tiny_cohort: Path, tmp_path: Path) -> None:
    truth = _mcat_folder(tiny_cohort, tmp_path / "mcat")
    parts = {"train": [*truth[0]["train"], "TCGA-XX-0001"], "val": [*truth[0]["val"], "TCGA-XX-0002"]}
    _ragged(parts).to_csv(tmp_path / "mcat" / "splits_0.csv")
    with pytest.raises(
        ValueError,
        match=r"splits_0.csv: 2 case id\(s\) not in the cohort \(train: 1, val: 1\): "
        r"TCGA-XX-0001, TCGA-XX-0002",
    ):
        make_datamodule(splits={"import": {"format": "mcat", "dir": str(tmp_path / "mcat")}})
    _ragged({"train": truth[0]["train"][1:], "val": truth[0]["val"]}).to_csv(
        tmp_path / "mcat" / "splits_0.csv"
    )
    with pytest.raises(ValueError, match=r"1 cohort patient\(s\) in no part"):
        make_datamodule(splits={"import": {"format": "mcat", "dir": str(tmp_path / "mcat")}})
    with pytest.raises(ValueError, match=r"no column\(s\) \['test'\].*check data.splits.import.format"):
        make_datamodule(splits={"import": {"format": "clam", "dir": str(tmp_path / "mcat")}})


def test_cli_writes_survlab_split_files(
    tiny_cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    truth = _mcat_folder(tiny_cohort, tmp_path / "mcat")
    args = [
        "--format",
        "mcat",
        "--dir",
        str(tmp_path / "mcat"),
        "--clinical",
        str(tiny_cohort / "clinical.csv"),
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(args) == 0
    (folder,) = (tmp_path / "out").iterdir()
    split = pd.read_csv(folder / "splits_0.csv", dtype=str)
    assert sorted(split.loc[split["split"] == "test", "case_id"]) == sorted(truth[0]["val"])
    meta = json.loads((folder / "meta.json").read_text())
    assert (
        meta["imported"]["files"]["splits_2.csv"]
        == hashlib.sha256((tmp_path / "mcat" / "splits_2.csv").read_bytes()).hexdigest()
    )
    assert main([*args[:3], str(tmp_path / "missing"), *args[4:]]) == 2
    assert "missing does not exist" in capsys.readouterr().out


def test_run_with_imported_splits_trains(tmp_path: Path) -> None:
    from hydra.utils import instantiate

    from tests.helpers.runs import compose_config, run_job

    overrides = [
        "debug=fast_dev_run",
        "data.synthetic.n_patients=40",
        "data.synthetic.feature_dim=8",
        "data.wsi.feature_dim=8",
        "data.synthetic.n_genes=60",
        "data.synthetic.n_pathways=8",
        "data.synthetic.patches_per_slide=[6,20]",
        "data.max_patches=32",
        "export_attention=false",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        "model=abmil",
    ]
    dm = instantiate(compose_config(tmp_path / "probe", overrides).data)
    dm.prepare_data()
    truth = _mcat_folder(dm.root, tmp_path / "mcat")
    imp = f"+data.splits.import={{format: mcat, dir: {tmp_path / 'mcat'}}}"
    metrics = run_job(tmp_path / "run", [*overrides, imp, "fold=1"])
    assert metrics["n_test"] == len(truth[1]["val"])
    preds = pd.read_csv(tmp_path / "run" / "predictions.csv", dtype={"case_id": str})
    assert sorted(preds["case_id"]) == sorted(truth[1]["val"])
    protocol = json.loads((tmp_path / "run" / "protocol.json").read_text())
    files = protocol["cohort"]["split_import"]["files"]
    assert (
        files["splits_1.csv"] == hashlib.sha256((tmp_path / "mcat" / "splits_1.csv").read_bytes()).hexdigest()
    )
