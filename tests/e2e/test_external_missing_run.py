"""`survlab eval run=<run> data=<other cohort>` where the other cohort lacks genomics for some patients: a late-fusion
run trained with data.missing=keep scores EVERY external patient, its per-pattern metrics equal a recount with
lifelines on predictions.csv; a run whose stand-in was never trained is refused in one line before any prediction,
and scores the complete patients with data.missing=drop, the card saying so."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from lifelines.utils import concordance_index

from tests.helpers.cli import check, run_survlab, tiny_overrides

pytestmark = pytest.mark.slow

#: the external cohort: the MNAR generator (short survivors lack genomics more often) at the training widths
EXTERNAL = ["data=synthetic_missing_mnar", "data.synthetic.n_patients=60"]


def _train(tmp: Path, data: str) -> Path:
    check(run_survlab(["model=late_fusion", f"data={data}", *tiny_overrides(tmp, tmp / "data")]))
    return next((tmp / "logs").rglob("preprocessing.json")).parent


def _eval(run: Path, out: Path, *more: str) -> tuple[int, str]:
    proc = run_survlab(["eval", f"run={run}", *EXTERNAL, f"out={out}", *more], module="survlab")
    return proc.returncode, proc.stdout + proc.stderr


def test_a_keep_run_scores_every_external_patient_with_metrics_per_pattern(tmp_path: Path) -> None:
    run = _train(tmp_path, "synthetic_missing")
    assert json.loads((run / "preprocessing.json").read_text())["absent_in_training"]["genomics"] > 0
    out = tmp_path / "ext"
    rc, log = _eval(run, out)
    assert rc == 0, log[-4000:]
    oracle = json.loads(next((tmp_path / "data").rglob("missing_mnar*/oracle.json")).read_text())
    lacking = set(oracle["missing"]["genomics"]["patients"])
    preds = pd.read_csv(out / "predictions.csv", dtype={"case_id": str})
    assert len(preds) == 60 and preds["case_id"].is_unique and lacking <= set(preds["case_id"])
    assert (
        preds["availability"] == preds["case_id"].map(lambda c: "wsi" if c in lacking else "wsi+genomics")
    ).all()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test/n"] == 60 and set(metrics["availability"]) == {"wsi", "wsi+genomics"}
    for pattern, g in preds.groupby("availability"):
        rec = metrics["availability"][pattern]
        assert rec["n"] == len(g) and rec["n_events"] == int(g["event"].sum())
        assert rec["survival/cindex"] == pytest.approx(
            concordance_index(g["time"], -g["risk"], g["event"]), abs=1e-12
        )
    card = json.loads((out / "protocol.json").read_text())
    assert card["availability"]["missing"] == "keep"
    assert card["availability"]["counts"] == {
        "test": {"wsi+genomics": 60 - len(lacking), "wsi": len(lacking)}
    }
    assert "Test metrics per pattern" in (out / "protocol.md").read_text()


def test_a_run_without_absent_training_patients_is_refused_then_scores_the_complete_ones(
    tmp_path: Path,
) -> None:
    run = _train(tmp_path, "synthetic")
    rc, log = _eval(run, tmp_path / "keep")
    assert rc != 0 and "Traceback" not in log
    oracle = json.loads(next((tmp_path / "data").rglob("missing_mnar*/oracle.json")).read_text())
    n = len(oracle["missing"]["genomics"]["patients"])
    last = log.strip().splitlines()[-1]
    assert last.startswith(f"survlab: error: external data=synthetic_missing_mnar: {n} lack genomics (e.g. ")
    assert (
        f"of its 60 patients, but model=late_fusion of run={run} was trained on no patient without genomics"
        in last
    )
    assert (
        f"score only the {60 - n} patients with every modality the model reads with data.missing=drop" in last
    )
    assert not (tmp_path / "keep" / "predictions.csv").exists()

    rc, log = _eval(run, tmp_path / "drop", "data.missing=drop")
    assert rc == 0, log[-4000:]
    preds = pd.read_csv(tmp_path / "drop" / "predictions.csv", dtype={"case_id": str})
    assert len(preds) == 60 - n and not set(preds["case_id"]) & set(oracle["missing"]["genomics"]["patients"])
    card = json.loads((tmp_path / "drop" / "protocol.json").read_text())
    assert card["dropped"] == {
        "missing": "drop",
        "n_patients_before": 60,
        "n_dropped": n,
        "per_modality": {"genomics": n},
    }
    assert (
        f"Scored on the {60 - n} patients with every modality the model reads only"
        in (tmp_path / "drop" / "protocol.md").read_text()
    )
