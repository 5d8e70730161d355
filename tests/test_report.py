"""predictions.csv assembly: survival, class probabilities and horizon probabilities joined by case_id."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from survlab.report.outputs import predictions_table
from survlab.tasks.objectives import ClassificationObjective, HorizonObjective


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
