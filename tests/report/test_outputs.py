"""predictions.csv assembly: survival, class probabilities and horizon probabilities joined by case_id."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from survlab.report.predictions import predictions_table
from survlab.tasks.objective_classification import ClassificationObjective
from survlab.tasks.objective_horizon import HorizonObjective


def test_class_and_horizon_columns_join_by_case_id_without_survival() -> None:
    cohort = SimpleNamespace(case_ids=["a", "b", "c", "d"])
    # class names from the fold's fitted preprocessing (FoldPreprocessing.targets)
    dm = SimpleNamespace(
        full_cohort=cohort, fitted=SimpleNamespace(targets={"labels": {"subtype": ["IDC", "ILC"]}})
    )
    objectives = {"subtype": ClassificationObjective("subtype"), "hz": HorizonObjective([12.0, 36.0])}
    rows = {
        # classification rows for patients 3 and 1 (patient 0 unlabelled), horizon rows for 0, 1, 3
        "subtype": {
            "index": np.array([3, 1]),
            "probs": np.array([[0.2, 0.8], [0.9, 0.1]]),
            "label": np.array([1, 0]),
        },
        "hz": {"index": np.array([0, 1, 3]), "probs": np.array([[0.1, 0.3], [0.2, 0.5], [0.6, 0.9]])},
    }
    preds = predictions_table(objectives, rows, dm, fold=2)
    assert preds.case_id.tolist() == ["a", "b", "d"] and set(preds.fold) == {2}
    row = preds.set_index("case_id")
    assert row.loc["d", "subtype"] == "ILC" and row.loc["d", "subtype_pred"] == "ILC"
    assert row.loc["b", "subtype_prob_IDC"] == 0.9 and pd.isna(row.loc["a", "subtype"])
    assert row.loc["d", "hz_p_12"] == 0.6 and row.loc["b", "hz_p_36"] == 0.5


def test_predictions_only_columns_and_values_from_the_pass_rows() -> None:
    """A cohort without outcomes: one row per patient sorted by case_id, risk + hazard_k / surv_k (sigmoid of the
    logits, their running product of 1 - h) of the primary endpoint, `<label>_pred` / `<label>_prob_<class>`; a
    patient an objective has no row for gets NaN there, never another patient's value."""
    from survlab.tasks.objective_survival import SurvivalObjective

    cohort = SimpleNamespace(case_ids=["c", "a", "b"])
    dm = SimpleNamespace(full_cohort=cohort)
    objectives = {"survival": SurvivalObjective(), "subtype": ClassificationObjective("subtype")}
    logits = np.array([[0.0, 1.0], [-1.0, 2.0], [0.5, -0.5]], dtype=np.float32)
    rows = {
        "survival": {
            "index": np.array([0, 1, 2]),
            "risk": np.array([3.0, 1.0, 2.0]),
            "hazard_logits": logits,
        },
        "subtype": {"index": np.array([0, 2]), "probs": np.array([[0.3, 0.7], [0.6, 0.4]])},
    }
    table = predictions_table(objectives, rows, dm, outcomes=False, classes={"subtype": ["IDC", "ILC"]})
    assert table.columns.tolist() == [
        "case_id",
        "risk",
        "hazard_0",
        "hazard_1",
        "surv_0",
        "surv_1",
        "subtype_pred",
        "subtype_prob_IDC",
        "subtype_prob_ILC",
    ]
    assert table["case_id"].tolist() == ["a", "b", "c"]
    row = table.set_index("case_id")
    h = 1 / (1 + np.exp(-logits.astype(float)))
    np.testing.assert_allclose(row.loc[["c", "a", "b"], ["hazard_0", "hazard_1"]], h, rtol=1e-6)
    np.testing.assert_allclose(
        row.loc[["c", "a", "b"], ["surv_0", "surv_1"]], np.cumprod(1 - h, axis=1), rtol=1e-6
    )
    assert row.loc["c", "risk"] == 3.0 and row.loc["b", "subtype_pred"] == "IDC"
    assert row.loc["c", "subtype_prob_ILC"] == 0.7 and pd.isna(row.loc["a", "subtype_prob_ILC"])
