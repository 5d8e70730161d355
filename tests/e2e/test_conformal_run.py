"""Conformal sets of any run from the command line: `survlab train model=abmil_cls data=synthetic_classification
data.splits.calibration_fraction=0.2 conformal.alphas=[0.1,0.2] conformal.mondrian=true` writes conformal/ whose
numbers equal a recomputation from the run's own predictions and calibration scores; `survlab eval ... data=<other>`
calibrates on the run's internal calibration part; a run without a calibration part is refused before training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers.cli import check, run_survlab

pytestmark = pytest.mark.slow

COHORT = [
    "model=abmil_cls",
    "data=synthetic_classification",
    "data.synthetic.feature_dim=8",
    "data.wsi.feature_dim=8",
    "data.synthetic.patches_per_slide=[10,30]",
    "data.max_patches=128",
    "trainer.max_epochs=2",
    "export_attention=false",
]


def _qhat(scores: np.ndarray, alpha: float) -> float:
    n = len(scores)
    return float(np.sort(scores)[math.ceil((n + 1) * (1 - alpha) - 1e-9) - 1])


def test_conformal_sets_of_a_classification_run_and_its_external_evaluation(tmp_path: Path) -> None:
    run = tmp_path / "run"
    paths = [
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"hydra.run.dir={run}",
    ]
    check(
        run_survlab(
            [
                *COHORT,
                *paths,
                "data.splits.calibration_fraction=0.2",
                "conformal.alphas=[0.1,0.2]",
                "conformal.mondrian=true",
            ]
        )
    )
    out = run / "conformal"
    summary = json.loads((out / "conformal.json").read_text())
    sets = pd.read_csv(out / "conformal_sets.csv", keep_default_na=False)
    cal = pd.read_csv(out / "conformal_calibration.csv")
    preds = pd.read_csv(run / "predictions.csv").set_index("case_id")
    metrics = json.loads((run / "metrics.json").read_text())
    classes = ["negative", "positive"]
    probs = preds[[f"label_prob_{c}" for c in classes]].astype(np.float32).to_numpy().astype(np.float64)
    assert len(cal) > 20 and summary["results"]["label/alpha=0.1/marginal"]["n_calibration"] == len(cal)
    for alpha in (0.1, 0.2):
        r = summary["results"][f"label/alpha={alpha:g}/marginal"]
        q = _qhat(cal.score.to_numpy(), alpha)
        assert r["qhat"] == pytest.approx(q, abs=1e-12)
        part = sets[(sets.alpha == alpha) & (sets.method == "marginal")].set_index("case_id")
        assert sorted(part.index) == sorted(preds.index)  # every test patient, once
        # coverage on the test part = the share of covered rows of conformal_sets.csv
        assert r["coverage"] == pytest.approx((part.covered.astype(str) == "True").mean())
        assert r["n_test"] == len(part) == metrics["n_test"]
        assert metrics[f"test/conformal/label/alpha={alpha:g}/marginal/coverage"] == pytest.approx(
            r["coverage"]
        )
        # the sets = {c: p_c >= 1 - q̂} of the run's own predictions
        p = probs[[preds.index.get_loc(c) for c in part.index]]
        recomputed = [
            "|".join(c for c, keep in zip(classes, row, strict=True) if keep) for row in p >= 1 - q - 1e-8
        ]
        assert part.set.tolist() == recomputed
        assert (part.label == preds.loc[part.index, "label"]).all()
        # Mondrian: q̂ per class from that class's calibration scores
        m = summary["results"][f"label/alpha={alpha:g}/mondrian"]
        for c in classes:
            scores = cal.score[cal.label == c].to_numpy()
            if len(scores) >= math.ceil((1 - alpha) / alpha):
                assert m["qhat"][c] == pytest.approx(_qhat(scores, alpha), abs=1e-12)
            else:  # too few calibration patients of class c: not computable, never coverage 1.0
                assert m["note"].startswith("not computable") and m["coverage"] is None
    table = pd.read_csv(out / "conformal.csv")
    assert set(table.subgroup) == {"all", "true_class"}

    # external cohort (the same files under another name): calibrated on the run's internal calibration part
    ext = tmp_path / "ext"
    check(
        run_survlab(
            [
                "eval",
                f"run={run}",
                "data=synthetic_classification",
                "data.name=synth_ext",
                *(o for o in COHORT if o.startswith("data.") and o != "data=synthetic_classification"),
                f"out={ext}",
                "conformal.alphas=[0.2]",
                "conformal.mondrian=false",
            ],
            module="survlab",
        )
    )
    external = json.loads((ext / "conformal" / "conformal.json").read_text())
    assert list(external["results"]) == ["label/alpha=0.2/marginal"]
    r = external["results"]["label/alpha=0.2/marginal"]
    assert r["qhat"] == summary["results"]["label/alpha=0.2/marginal"]["qhat"]  # the same calibration scores
    assert "internal" in external["calibration"] and r["n_test"] == 200  # every patient of the cohort
    external_cal = pd.read_csv(ext / "conformal" / "conformal_calibration.csv")
    assert external_cal.equals(cal)  # the same calibration part, the same scores
    # a cohort scored without outcomes has no labels to cover: one line, no sets
    blind = run_survlab(
        [
            "eval",
            f"run={run}",
            "data=synthetic_classification",
            "data.name=synth_blind",
            *(o for o in COHORT if o.startswith("data.") and o != "data=synthetic_classification"),
            "outcomes=false",
            f"out={tmp_path / 'blind'}",
            "conformal.alphas=[0.2]",
        ],
        module="survlab",
    )
    assert blind.returncode == 1
    assert blind.stderr.strip().splitlines()[-1] == (
        "survlab: error: conformal.alphas: data=synthetic_classification has no outcomes (the sets' coverage needs "
        "its labels); drop conformal.alphas for predictions only"
    )
    assert not (tmp_path / "blind" / "conformal").exists()


def test_conformal_without_a_calibration_part_is_refused_before_training(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = run_survlab(
        [
            *COHORT,
            f"paths.data_dir={tmp_path / 'data'}",
            f"paths.log_dir={tmp_path / 'logs'}",
            f"hydra.run.dir={run}",
            "conformal.alphas=[0.1,0.2]",
        ]
    )
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("survlab: error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert errors[0].startswith(
        "survlab: error: conformal.alphas=[0.1, 0.2] needs a calibration part: set "
        "data.splits.calibration_fraction > 0 (e.g. 0.2) or conformal.alphas=[]"
    )
    assert not (run / "checkpoints").exists()  # nothing was trained
