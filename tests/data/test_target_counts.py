"""Missing label / slide label / endpoint cells are masked out of losses and metrics: the run counts them per target
and part (log, protocol card, metrics.json) and `survlab check` lists the same counts; a part left with no value of a
target is refused in one line naming the target, the part and the fix (issue 25, item 2).

Planted cohorts: a table cohort (clinical covariates) with a patient label `grade`, a slide label `tumour` (two slides
per patient) and a second endpoint `dfs`; cells are blanked for known patients / slides, and the expected counts are
computed independently from the CSV and the split file training wrote."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from survlab.data.audit import audit_cohort
from survlab.data.datamodule import CohortDataModule

N = 30
PARTS = ("train", "val", "test")


def _write(root: Path) -> pd.DataFrame:
    """clinical.csv: 30 patients x 2 slides, every cell filled; returns the slide rows (as written)."""
    rng = np.random.default_rng(3)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(N):
        os_t, dfs_t = float(rng.uniform(5, 80)), float(rng.uniform(1, 5))
        for s in range(2):
            rows.append(
                {
                    "case_id": f"P{i:02d}",
                    "slide_id": f"P{i:02d}-S{s}",
                    "survival_months": round(os_t, 2),
                    "censorship": int(i % 3 == 0),
                    "dfs_months": round(dfs_t, 2),
                    "dfs_event": int(i % 2 == 0),
                    "age": 50 + i,
                    "grade": ["G1", "G2"][i % 2],
                    "tumour": ["normal", "tumour"][(i + s) % 2],
                }
            )
    frame = pd.DataFrame(rows)
    frame.to_csv(root / "clinical.csv", index=False)
    return frame


def _dm(root: Path, **extra: Any) -> CohortDataModule:
    return CohortDataModule(
        name="planted",
        root=str(root),
        clinical={"columns": ["age"]},
        labels={"grade": {"column": "grade", "classes": ["G1", "G2"]}},
        slide_labels={"tumour": {"column": "tumour", "classes": ["normal", "tumour"]}},
        endpoints={
            "os": {"time": "survival_months", "censorship": "censorship"},
            "dfs": {"time": "dfs_months", "event": "dfs_event"},
        },
        endpoint="os",
        modalities=("clinical",),
        batch_size=4,
        num_workers=0,
        pin_memory=False,
        **{"splits": {"dir": str(root / "splits"), "folds": 3, "val_fraction": 0.2, "seed": 0}, **extra},
    )


def _blank(root: Path, column: str, where: Any) -> None:
    """Empty `column` in the rows of clinical.csv selected by `where(frame)` (dfs: its time and event cells)."""
    frame = pd.read_csv(root / "clinical.csv", dtype=str)
    frame.loc[where(frame), ["dfs_months", "dfs_event"] if column == "dfs_months" else column] = None
    frame.to_csv(root / "clinical.csv", index=False)


def _parts(root: Path, fold: int = 0) -> dict[str, list[str]]:
    split = pd.read_csv(root / "splits" / f"splits_{fold}.csv", dtype=str)
    return {p: sorted(split.loc[split["split"] == p, "case_id"]) for p in PARTS}


def _expected(root: Path, fold: int = 0) -> dict[str, Any]:
    """The counts, computed from clinical.csv and the split file alone."""
    raw = pd.read_csv(root / "clinical.csv", dtype=str)
    patients = raw.groupby("case_id").first()
    out: dict[str, Any] = {"labels": {}, "slide_labels": {}, "endpoints": {}}
    for p, ids in _parts(root, fold).items():
        rows, slides = patients.loc[ids], raw[raw["case_id"].isin(ids)]
        out["labels"].setdefault("grade", {})[p] = {
            "n": len(ids),
            "n_missing": int(rows["grade"].isna().sum()),
        }
        out["slide_labels"].setdefault("tumour", {})[p] = {
            "n": len(slides),
            "n_missing": int(slides["tumour"].isna().sum()),
        }
        out["endpoints"].setdefault("os", {})[p] = {"n": len(ids), "n_missing": 0}
        out["endpoints"].setdefault("dfs", {})[p] = {
            "n": len(ids),
            "n_missing": int(rows["dfs_months"].isna().sum()),
        }
    return out


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """The planted cohort with its split written (so parts are known before cells are blanked)."""
    root = tmp_path / "planted"
    _write(root)
    _dm(root).setup("fit")
    return root


def _one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(err.value)
    assert "\n" not in text, text
    return text


def test_counts_per_target_and_part_in_log_and_protocol_card(
    planted: Path, caplog: pytest.LogCaptureFixture
) -> None:
    parts = _parts(planted)
    no_grade = [parts["train"][0], parts["train"][3], parts["test"][1]]
    _blank(planted, "grade", lambda f: f["case_id"].isin(no_grade))
    _blank(
        planted, "tumour", lambda f: f["slide_id"].isin([f"{parts['val'][0]}-S1", f"{parts['test'][0]}-S0"])
    )
    _blank(planted, "dfs_months", lambda f: f["case_id"] == parts["val"][1])
    dm = _dm(planted)
    with caplog.at_level(logging.INFO, logger="survlab.data.datamodule"):
        dm.setup("fit")
    expected = _expected(planted)
    assert expected["labels"]["grade"]["train"]["n_missing"] == 2  # the plant, seen by the reference
    assert dm.target_counts == expected
    assert dm.describe()["target_counts"] == expected  # the protocol card
    n = {p: len(ids) for p, ids in parts.items()}
    line = next(r.getMessage() for r in caplog.records if "missing cells" in r.getMessage())
    assert (
        f"label grade train 2/{n['train']}, val 0/{n['val']}, test 1/{n['test']}; "
        f"slide label tumour train 0/{2 * n['train']}, val 1/{2 * n['val']}, test 1/{2 * n['test']}; "
        f"endpoint dfs train 0/{n['train']}, val 1/{n['val']}, test 0/{n['test']}"
    ) in line
    assert "endpoint os" not in line  # nothing missing: not listed


def test_endpoint_empty_for_the_test_part_is_refused(planted: Path) -> None:
    parts = _parts(planted)
    _blank(planted, "dfs_months", lambda f: f["case_id"].isin(parts["test"]))
    with pytest.raises(ValueError) as err:
        _dm(planted).setup("fit")
    assert re.fullmatch(
        rf".*clinical\.csv: endpoint 'dfs' \(column 'dfs_months'\) has no value for any of the {len(parts['test'])} "
        r"test patients of fold 0, so there is nothing to score it on there; fill in 'dfs_months' for them, or "
        r"remove 'dfs' from data\.endpoints",
        _one_line(err),
    ), str(err.value)


def test_label_empty_for_the_val_part_is_refused(planted: Path) -> None:
    parts = _parts(planted)
    _blank(planted, "grade", lambda f: f["case_id"].isin(parts["val"]))
    with pytest.raises(ValueError) as err:
        _dm(planted).setup("fit")
    assert re.fullmatch(
        rf".*clinical\.csv: label 'grade' \(column 'grade'\) has no value for any of the {len(parts['val'])} val "
        r"patients of fold 0, so there is nothing to validate it on there; fill in 'grade' for them, or remove "
        r"'grade' from data\.labels \(or data\.label_cols\)",
        _one_line(err),
    ), str(err.value)


def test_all_slide_labels_missing_is_refused(planted: Path) -> None:
    """Every slide label empty: before, the configured classes passed and the slide head trained on nothing."""
    _blank(planted, "tumour", lambda f: f.index >= 0)
    with pytest.raises(ValueError) as err:
        _dm(planted).setup("fit")
    assert re.fullmatch(
        rf".*clinical\.csv: slide label 'tumour' \(column 'tumour'\) has no value for any of the {2 * N} slides "
        r"of fold 0 \(empty column\); fill in 'tumour', or remove 'tumour' from data\.slide_labels",
        _one_line(err),
    ), str(err.value)


def test_label_empty_for_the_calibration_part_is_refused(tmp_path: Path) -> None:
    """With splits.calibration_fraction the calibration part is counted too (conformal sets are calibrated there)."""
    root = tmp_path / "planted"
    _write(root)
    splits = {
        "dir": str(root / "splits"),
        "folds": 3,
        "val_fraction": 0.2,
        "seed": 0,
        "calibration_fraction": 0.3,
    }
    drawn = audit_cohort(_dm(root, splits=splits)).summary["target_counts"][
        "fold 0"
    ]  # before the split exists
    dm = _dm(root, splits=splits)
    dm.setup("fit")
    assert set(dm.target_counts["labels"]["grade"]) == {"train", "val", "test", "calibration"}
    assert drawn == dm.target_counts
    split = pd.read_csv(root / "splits" / "splits_0.csv", dtype=str)
    cal = sorted(split.loc[split["split"] == "calibration", "case_id"])
    assert dm.target_counts["labels"]["grade"]["calibration"] == {"n": len(cal), "n_missing": 0}
    _blank(root, "grade", lambda f: f["case_id"].isin(cal))
    with pytest.raises(ValueError) as err:
        _dm(root, splits=splits).setup("fit")
    assert re.search(
        rf"label 'grade' \(column 'grade'\) has no value for any of the {len(cal)} calibration patients of fold 0, so "
        r"there is nothing to calibrate it on there",
        _one_line(err),
    ), str(err.value)


def test_several_empty_parts_name_the_first_and_count_the_rest(planted: Path) -> None:
    parts = _parts(planted)
    _blank(planted, "dfs_months", lambda f: f["case_id"].isin(parts["test"]))
    _blank(planted, "grade", lambda f: f["case_id"].isin(parts["val"]))
    with pytest.raises(
        ValueError, match=r"label 'grade' .* \(\+1 more such part\(s\); `survlab check` lists them\)$"
    ):
        _dm(planted).setup("fit")


def test_check_counts_what_training_counts(tmp_path: Path) -> None:
    """`survlab check` (the audit) counts every fold's parts as training does, before and after the split exists."""
    root = tmp_path / "planted"
    _write(root)
    _blank(root, "grade", lambda f: f["case_id"].isin(["P01", "P02", "P17"]))
    _blank(root, "tumour", lambda f: f["slide_id"].isin(["P04-S0", "P04-S1", "P20-S1"]))
    before = audit_cohort(_dm(root))  # no split dir yet: drawn in memory, nothing written
    assert not (root / "splits").exists()
    assert before.ok, [f.message for f in before.findings]
    trained = {}
    for fold in range(3):
        dm = _dm(root, fold=fold)
        dm.setup("fit")
        trained[f"fold {fold}"] = dm.target_counts
        assert dm.target_counts == _expected(root, fold)
    assert before.summary["target_counts"] == trained
    assert audit_cohort(_dm(root)).summary["target_counts"] == trained  # from the split files now
    notes = {f.check: f for f in before.notes}
    grade = notes["label 'grade' missing cells"]
    assert grade.cases == ("P01", "P02", "P17")
    assert (
        "label 'grade' (column 'grade') is empty for 3 of 30 patient(s) (P01, P02, P17); masked out"
        in grade.message
    )
    c0 = trained["fold 0"]["labels"]["grade"]
    assert (
        f"fold 0: train {c0['train']['n_missing']}/{c0['train']['n']}, val {c0['val']['n_missing']}/{c0['val']['n']}, "
        f"test {c0['test']['n_missing']}/{c0['test']['n']}"
    ) in grade.message
    assert notes["slide label 'tumour' missing cells"].cases == ("P04-S0", "P04-S1", "P20-S1")
    assert "is empty for 3 of 60 slide(s)" in notes["slide label 'tumour' missing cells"].message
    assert not any("dfs" in c or "'os'" in c for c in notes)  # no missing endpoint cell: no note


def test_check_lists_every_empty_part_at_once(planted: Path) -> None:
    """Every fold's empty parts, one finding per (target, part) naming its folds; a column empty everywhere is one
    finding (not also the class checks')."""
    parts = {k: _parts(planted, k) for k in range(3)}
    _blank(planted, "dfs_months", lambda f: f["case_id"].isin(parts[0]["test"]))
    _blank(planted, "grade", lambda f: f["case_id"].isin(parts[1]["val"]))
    _blank(planted, "tumour", lambda f: f.index >= 0)
    result = audit_cohort(_dm(planted))
    words = {"labels": "label", "endpoints": "endpoint"}
    want: dict[tuple[str, str], list[str]] = {}  # from the CSV and the split files alone
    for k in range(3):
        expected = _expected(planted, k)
        for kind in words:
            for name, per_part in expected[kind].items():
                for p, c in per_part.items():
                    if c["n"] == c["n_missing"]:
                        want.setdefault((f"{words[kind]} '{name}' missing in a whole part", p), []).append(
                            f"fold {k}"
                        )
    assert ("endpoint 'dfs' missing in a whole part", "test") in want and len(want) >= 2  # the plants
    got = {}
    for f in result.findings:
        if "whole part" in f.check:
            part = re.search(r"any of the \d+ (\w+) patients of fold", f.message).group(1)
            got[(f.check, part)] = list(f.cases)
    assert got == want, [f.message for f in result.findings]
    dfs = next(
        f for f in result.findings if f.check.startswith("endpoint 'dfs'") and "test patients" in f.message
    )
    assert re.search(
        rf"endpoint 'dfs' \(column 'dfs_months'\) has no value for any of the {len(parts[0]['test'])} test patients of "
        r"fold 0, so there is nothing to score it on there; fill in 'dfs_months' for them, or remove 'dfs' from "
        r"data\.endpoints$",
        dfs.message,
    ), dfs.message
    tumour = [f for f in result.findings if "tumour" in f.check]
    assert [f.check for f in tumour] == ["slide label 'tumour' without any value"], [
        f.message for f in tumour
    ]
    assert f"any of the {2 * N} slides of fold 0 (empty column)" in tumour[0].message
    assert tumour[0].cases == ("fold 0", "fold 1", "fold 2")


@pytest.mark.slow  # end-to-end: a (2-epoch) training run
def test_metrics_json_and_protocol_card_carry_the_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table cohort whose second endpoint (dfs) is empty for some patients: the run's metrics.json and
    protocol.json hold the per-part counts, equal to the ones computed from the CSV and the run's split file."""
    import json

    from survlab.utils.outputs import write_json
    from tests.helpers.runs import run_job
    from tests.helpers.table_cohort import write_table_cohort, write_user_config

    root = write_table_cohort(tmp_path / "data" / "my_table", n=60, n_genes=6)
    clin = pd.read_csv(root / "clinical.csv", dtype={"case_id": str})
    clin["dfs_months"] = (clin["survival_months"] * 0.5).round(4)
    clin["dfs_event"] = 1 - clin["censorship"]
    no_dfs = sorted(clin["case_id"])[::4]  # 15 patients without a DFS record
    clin.loc[clin["case_id"].isin(no_dfs), ["dfs_months", "dfs_event"]] = None
    clin.to_csv(root / "clinical.csv", index=False)
    write_user_config(
        tmp_path / "conf", "my_table", root, extra="endpoints: {dfs: {time: dfs_months, event: dfs_event}}\n"
    )
    monkeypatch.setenv("SURVLAB_CONFIG_PATH", str(tmp_path / "conf"))
    out = tmp_path / "run"
    quiet = ["logger=csv", "trainer.enable_progress_bar=false", "callbacks.rich_progress_bar=null"]
    metrics = run_job(
        out,
        [
            *quiet,
            "callbacks.lr_monitor=null",
            "export_attention=false",
            "data=my_table",
            "model=coxmlp",
            "trainer.max_epochs=2",
            f"paths.log_dir={tmp_path / 'logs'}",
        ],
    )
    protocol = json.loads((out / "protocol.json").read_text())
    split = pd.read_csv(protocol["cohort"]["split_file"], dtype={"case_id": str})
    expected = {}
    for p in PARTS:
        ids = split.loc[split["split"] == p, "case_id"]
        expected[p] = {"n": len(ids), "n_missing": int(ids.isin(no_dfs).sum())}
    assert sum(c["n_missing"] for c in expected.values()) == len(no_dfs) == 15
    assert metrics["target_counts"]["endpoints"]["dfs"] == expected
    write_json(tmp_path / "metrics.json", metrics)  # what the job runner writes as the run's metrics.json
    assert (
        json.loads((tmp_path / "metrics.json").read_text())["target_counts"]["endpoints"]["dfs"] == expected
    )
    assert protocol["cohort"]["target_counts"]["endpoints"]["dfs"] == expected
    assert protocol["cohort"]["target_counts"]["endpoints"]["os"] == {
        p: {"n": c["n"], "n_missing": 0} for p, c in expected.items()
    }
