"""MM-DLS end to end from the command line: `experiment=mmdls_synthetic` trains, tests once, reports every figure per
treatment group, and with `external_data=` tests the selected model on a second synthetic centre, written apart
(external/) and labelled as external. The reported numbers equal scikit-survival / scikit-learn on the run's own
predictions.csv (overall, per treatment group, external)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sksurv.metrics import concordance_index_censored

from tests.helpers.runs import run_job


def test_mmdls_synthetic_with_external_validation(tmp_path: Path) -> None:
    overrides = [
        "experiment=mmdls_synthetic",
        "debug=fast_dev_run",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        "data.synthetic.n_patients=40",
        "model.net.dim=16",
        "model.net.hidden=16",
        "model.net.heads=2",
        "external_data=synthetic_petct_external",
    ]
    metrics = run_job(tmp_path / "run", overrides)
    run = tmp_path / "run"
    assert metrics["external_cohort"] == "synthetic_petct_external"
    ext = json.loads((run / "external" / "metrics.json").read_text())
    assert ext["evaluation"] == "external" and ext["trained_on"] == "synthetic_petct" and ext["n_test"] == 120
    assert (
        ext["cohort"] == "synthetic_petct_external" and ext["test/cindex"] == metrics["external/test/cindex"]
    )
    # the external cohort's KM risk groups are cut at the internal training patients' cutoff (survlab.report.km)
    assert (
        ext["km_cutoffs"] == metrics["km_cutoffs"] and len(metrics["km_cutoffs"]) == 2
    )  # km_groups: tertiles
    # ... for every survival endpoint: the dfs groups too (they were cut at the external cohort's own tertiles)
    assert sorted(metrics["km_cutoffs_by_objective"]) == ["dfs", "os"]
    assert metrics["km_cutoffs_by_objective"]["os"] == metrics["km_cutoffs"]
    assert ext["km_cutoffs_by_objective"] == metrics["km_cutoffs_by_objective"]
    preds = pd.read_csv(run / "external" / "predictions.csv")
    assert preds["case_id"].str.startswith("EXT").all() and {"subtype_prob_LUSC", "os_horizons_p_36"} <= set(
        preds
    )
    internal = pd.read_csv(run / "predictions.csv")
    assert internal["case_id"].str.startswith("PCT").all() and len(internal) == metrics["n_test"]
    for group in ("all", "treatment=immunotherapy", "treatment=chemotherapy"):
        assert f"test/{group}/os/hr_high_vs_low" in metrics and f"test/{group}/dfs/auc_24" in metrics

    # the numbers are those of the predictions: Harrell's C (scikit-survival) and the subtype AUROC (scikit-learn),
    # overall, per treatment group (joined by case_id from the cohort's clinical.csv) and on the external centre
    def harrell(p: pd.DataFrame) -> float:
        return concordance_index_censored(
            p["event"].astype(bool).to_numpy(), p["time"].to_numpy(), p["risk"].to_numpy()
        )[0]

    def auroc(p: pd.DataFrame) -> float:
        return roc_auc_score(p["subtype"] == "LUSC", p["subtype_prob_LUSC"])

    assert metrics["test/cindex"] == pytest.approx(harrell(internal), abs=1e-9)
    assert metrics["test/subtype/auroc"] == pytest.approx(auroc(internal), abs=1e-6)
    assert ext["test/cindex"] == pytest.approx(harrell(preds), abs=1e-9)
    treatment = pd.read_csv(tmp_path / "data" / "synthetic" / "petct" / "clinical.csv").set_index("case_id")
    internal["treatment"] = treatment.loc[internal["case_id"], "treatment"].to_numpy()
    for group, rows in internal.groupby("treatment"):
        if rows["event"].sum() and np.unique(rows["risk"]).size > 1:
            assert metrics[f"test/treatment={group}/os/cindex"] == pytest.approx(harrell(rows), abs=1e-9), (
                group
            )
    assert (run / "km_os_treatment_immunotherapy.png").is_file() and (
        run / "external" / "subgroups.csv"
    ).is_file()
