"""MM-DLS end to end from the command line: `experiment=mmdls_synthetic` trains, tests once, reports every figure per
treatment group, and with `external_data=` tests the selected model on a second synthetic centre, written apart
(external/) and labelled as external."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from survlab.runner.testing import run_job


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
    # the external cohort's KM risk groups are cut at the internal training patients' cutoff (survlab.runner.km_report)
    assert (
        ext["km_cutoffs"] == metrics["km_cutoffs"] and len(metrics["km_cutoffs"]) == 2
    )  # km_groups: tertiles
    preds = pd.read_csv(run / "external" / "predictions.csv")
    assert preds["case_id"].str.startswith("EXT").all() and {"subtype_prob_LUSC", "os_horizons_p_36"} <= set(
        preds
    )
    internal = pd.read_csv(run / "predictions.csv")
    assert internal["case_id"].str.startswith("PCT").all() and len(internal) == metrics["n_test"]
    for group in ("all", "treatment=immunotherapy", "treatment=chemotherapy"):
        assert f"test/{group}/os/hr_high_vs_low" in metrics and f"test/{group}/dfs/auc_24" in metrics
    assert "test/treatment=chemotherapy/tnm/auroc" in metrics
    assert (run / "km_os_treatment_immunotherapy.png").is_file() and (
        run / "external" / "subgroups.csv"
    ).is_file()
