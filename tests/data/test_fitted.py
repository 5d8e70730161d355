"""FoldPreprocessing (survlab.data.fitted): fitted on the fold's training patients only (a test patient's values
change nothing fitted, a training patient's do), its JSON round trip is exact and applies identically, and a
preprocessing.json written before the object existed (tests/data/preprocessing_v1.json, by the FittedData code of
commit 8e6e9b9: coxmlp, genes + clinical, variance gene filter, Cox baseline) still loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import petct_kwargs

from survlab.data.dataset import ModalitySources
from survlab.data.fitted import FoldPreprocessing, read_preprocessing

OLD = Path(__file__).parent / "preprocessing_v1.json"
SELECT = {
    "signatures": "signatures_mcat6.csv",
    "scaling": "standard",
    "select": {"method": "variance", "top_k": 20},
}


def _state(fitted: FoldPreprocessing) -> str:
    return json.dumps(fitted.to_json(), sort_keys=True)


def _edit(root: Path, case: str, expr_factor: float) -> None:
    """Change one patient's clinical covariates, label, outcome and expression (in a copy of the cohort)."""
    clinical = pd.read_csv(root / "clinical.csv", dtype={"case_id": str})
    rows = clinical["case_id"] == case
    clinical.loc[rows, "age"] = 99.0
    clinical.loc[rows, "sex"] = "F" if clinical.loc[rows, "sex"].iloc[0] == "M" else "M"
    clinical.loc[rows, "label"] = 1 - clinical.loc[rows, "label"]
    clinical.loc[rows, "survival_months"] = clinical.loc[rows, "survival_months"] * 3 + 1
    clinical.loc[rows, "censorship"] = 0
    clinical.to_csv(root / "clinical.csv", index=False)
    expr = pd.read_csv(root / "expression.csv", dtype={"case_id": str}).set_index("case_id")
    expr.loc[case] = expr.loc[case] * expr_factor + 5.0
    expr.to_csv(root / "expression.csv")


@pytest.mark.parametrize("part, changes", [("test", False), ("train", True)])
def test_fitted_on_training_patients_only(
    make_datamodule, tiny_cohort: Path, tmp_path: Path, part: str, changes: bool
) -> None:
    before = make_datamodule(genomics=SELECT)
    case = getattr(before.split, part)[0]
    root = tmp_path / "edited"
    shutil.copytree(tiny_cohort, root)
    _edit(root, case, expr_factor=10.0)
    after = make_datamodule(root=root, genomics=SELECT)
    assert after.split.test == before.split.test and after.split.train == before.split.train
    # the edit reached the patient's inputs ...
    assert not np.array_equal(after.sources.clinical[case], before.sources.clinical[case])
    # ... and the fitted state moved only when the patient is a training patient
    assert (_state(after.fitted) != _state(before.fitted)) is changes
    if not changes:  # the test patient is encoded with the unchanged training statistics
        enc = before.fitted.clinical_encoder
        table = after.cohort.table.set_index("case_id").loc[[case]].reset_index()
        np.testing.assert_array_equal(after.sources.clinical[case], enc.transform(table)[0])


def test_json_round_trip_is_exact_and_applies_identically(make_datamodule) -> None:
    dm = make_datamodule(genomics=SELECT)
    state = dm.fitted.to_json()
    again = FoldPreprocessing.from_json(json.loads(json.dumps(state)))
    assert json.dumps(again.to_json()) == json.dumps(state)
    # the restored object encodes the cohort exactly as the data module did
    from survlab.data.modalities.genomics import read_expression

    expr = read_expression(dm.root / "expression.csv", dm.case_col)
    sources = again.apply(dm.cohort, ModalitySources(), expr=expr)
    for case in dm.cohort.case_ids:
        np.testing.assert_array_equal(sources.clinical[case], dm.sources.clinical[case])
        for got, want in zip(sources.genomics[case], dm.sources.genomics[case], strict=True):
            np.testing.assert_array_equal(got, want)
    assert sources.labels == dm.sources.labels and sources.classes == dm.sources.classes
    np.testing.assert_array_equal(again.train_label_counts("grade"), dm.fitted.train_label_counts("grade"))
    counts = pd.Series([dm.sources.labels["grade"][c] for c in dm.split.train]).value_counts()
    n_classes = len(again.train_label_counts("grade"))
    assert n_classes >= 3
    assert again.train_label_counts("grade").tolist() == [int(counts.get(k, 0)) for k in range(n_classes)]


def test_json_round_trip_with_imaging_and_two_endpoints(tiny_petct_cohort: Path, tmp_path: Path) -> None:
    from survlab.data.datamodule import CohortDataModule

    dm = CohortDataModule(**petct_kwargs(tiny_petct_cohort, tmp_path))
    dm.setup("fit")
    state = dm.fitted.to_json()
    assert state["imaging"] is not None and state["endpoints"] == ["os", "dfs"]
    again = FoldPreprocessing.from_json(json.loads(json.dumps(state)))
    assert json.dumps(again.to_json()) == json.dumps(state)
    time, event = again.train_survival("dfs")
    rows = dm.cohort.rows(dm.split.train)
    has = rows["time:dfs"].notna().to_numpy()
    np.testing.assert_array_equal(time, rows["time:dfs"].to_numpy(float)[has])
    np.testing.assert_array_equal(event, rows["event:dfs"].to_numpy(bool)[has])


def test_an_old_preprocessing_json_loads() -> None:
    saved = json.loads(OLD.read_text())
    fitted = read_preprocessing(OLD)
    assert fitted.to_json() == saved  # same content, key for key
    assert fitted.cohort == "synthetic" and fitted.endpoints == ["os"] and fitted.primary_label == "label"
    assert len(fitted.gene_groups.names) == len(saved["genomics"]["groups"]["names"])
    np.testing.assert_array_equal(fitted.bin_edges, [float(e) for e in saved["time_bins"]["os"]["edges"]])
    assert fitted.train_label_counts("grade").tolist() == saved["labels"]["grade"]["train_counts"]
    time, event = fitted.train_survival()
    assert len(time) == len(saved["train_survival"]["os"]["time"]) and event.dtype == bool
    # the task's Cox objective gets the saved Breslow baseline from it (survlab eval on another cohort)
    import torch

    from survlab.models.base import ModalityDims, SurvivalNet
    from survlab.tasks.objective_survival import SurvivalObjective
    from survlab.tasks.outcome import OutcomeTask

    class Net(SurvivalNet):
        modalities = ("clinical",)

        def __init__(self, dims: ModalityDims) -> None:
            super().__init__(dims)
            self.lin = torch.nn.Linear(2, 1)

    task = OutcomeTask(
        Net(ModalityDims(clinical_dim=2, n_bins=4)), objectives={"survival": SurvivalObjective(loss="cox")}
    )
    task.fit_references(fitted)
    cox = task.objectives["survival"]
    assert cox.train_risk.tolist() == saved["cox_baseline"]["survival"]["train_risk"]
    assert cox.train_event.tolist() == [bool(e) for e in saved["cox_baseline"]["survival"]["train_event"]]


def test_a_foreign_or_truncated_preprocessing_json_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "preprocessing.json"
    bad.write_text(json.dumps({"format": "survlab.preprocessing/1", "cohort": "x"}))
    with pytest.raises(ValueError, match=r"preprocessing.json: incomplete preprocessing state .*re-run"):
        read_preprocessing(bad)
    bad.write_text(json.dumps({"format": "other/2"}))
    with pytest.raises(ValueError, match=r"format 'other/2', expected 'survlab.preprocessing/1'"):
        read_preprocessing(bad)
