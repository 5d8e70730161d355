"""Statistics on a part too small to give them (issue 25.3): NaN with a recorded reason, never a made-up 0.5 / 1.0.

Split-conformal with fewer calibration patients than ⌈(1−α)/α⌉ (q̂ = +∞: every class in every set, coverage 1.0),
AUROC / kappa with one class, C-index without a comparable pair."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import sklearn.metrics as skm
from omegaconf import OmegaConf

from survlab.metrics.classification import classification_metrics, classification_notes
from survlab.metrics.conformal import (
    CalibrationSizeError,
    calibrate_and_predict,
    conformal_quantile,
    min_calibration_size,
)
from survlab.metrics.survival import survival_metrics, survival_notes
from survlab.runner.pipelines.pathgen_conformal import run_conformal
from survlab.tasks.objective_classification import ClassificationObjective
from survlab.tasks.objective_survival import SurvivalObjective
from survlab.tasks.outcome import OutcomeTask


@pytest.mark.parametrize("alpha", [0.5, 0.3, 0.2, 0.15, 0.1, 0.05, 0.01])
def test_min_calibration_size_is_the_smallest_n_with_a_finite_quantile(alpha: float) -> None:
    n = min_calibration_size(alpha)
    # brute force in exact rational arithmetic: ceil((n+1)(1-alpha)) <= n
    from fractions import Fraction

    a = Fraction(str(alpha))
    finite = [k for k in range(1, 500) if math.ceil((k + 1) * (1 - a)) <= k]
    assert n == finite[0]
    assert conformal_quantile(np.linspace(0.1, 0.9, n), alpha) < 1.0  # n points: a finite q̂
    if n > 1:
        with pytest.raises(CalibrationSizeError, match=f"{n - 1} calibration patient.*needs >= {n}:"):
            conformal_quantile(np.linspace(0.1, 0.9, n - 1), alpha)


def test_two_calibration_patients_are_refused_with_the_size_needed() -> None:
    probs = np.array([[0.9, 0.1], [0.3, 0.7]])
    with pytest.raises(
        CalibrationSizeError,
        match=r"2 calibration patient\(s\) with a known label give no finite quantile at alpha=0.1 .*needs >= 9: "
        r"enlarge data.splits.calibration_fraction",
    ):
        calibrate_and_predict(probs, np.array([0, 1]), probs, 0.1)
    # unknown labels (censored before the last bin) do not count towards the size
    p10 = np.full((10, 2), 0.5)
    with pytest.raises(CalibrationSizeError, match="8 calibration patient"):
        calibrate_and_predict(p10, np.array([0, 1] * 4 + [-1, -1]), p10, 0.1)


def _planted_stage(tmp: Path, n_cal: int) -> Path:
    """A grader stage dir: eval_predictions.csv with `n_cal` calibration and 30 test rows of one source."""
    rng = np.random.default_rng(0)
    rows = []
    for part, n in (("calibration", n_cal), ("test", 30)):
        p = rng.dirichlet([1, 1, 1], n)
        rows.append(
            pd.DataFrame(
                {
                    "case_id": [f"{part}{i}" for i in range(n)],
                    "source": "real",
                    "part": part,
                    "grade": rng.integers(0, 3, n),
                    **{f"grade_prob_{k}": p[:, k] for k in range(3)},
                    "risk": rng.normal(size=n),
                    "time_bin": rng.integers(0, 2, n),
                    "event": 1,
                    **{f"hazard_{k}": rng.normal(size=n) for k in range(2)},
                }
            )
        )
    stage = tmp / "grader"
    stage.mkdir(parents=True)
    pd.concat(rows).to_csv(stage / "eval_predictions.csv", index=False)
    (stage / "classes.json").write_text(json.dumps({"grade": ["G1", "G2", "G3"], "n_bins": 2}))
    return tmp


def test_pipeline_reports_a_too_small_calibration_part_as_not_computable(tmp_path: Path) -> None:
    out = _planted_stage(tmp_path, n_cal=2)
    (out / "conformal").mkdir()
    cfg = OmegaConf.create(
        {
            "data": {"name": "planted"},
            "fold": 0,
            "pipeline": {"conformal": {"label": "grade", "alphas": [0.1, 0.5], "subgroups": ["grade"]}},
        }
    )
    summary = run_conformal(cfg, out, out / "conformal", {"grader_real": ("grader", "real")})
    small = summary["grader_real/grade/alpha=0.1"]
    assert math.isnan(small["qhat"]) and math.isnan(small["coverage"]) and math.isnan(small["mean_set_size"])
    assert "needs >= 9" in small["note"] and small["n_calibration"] == 2
    # alpha = 0.5 needs 1 patient: computed as usual, no note
    ok = summary["grader_real/grade/alpha=0.5"]
    assert math.isfinite(ok["coverage"]) and "note" not in ok
    written = json.loads((out / "conformal" / "conformal.json").read_text())["settings"]
    assert written["grader_real/grade/alpha=0.1"]["coverage"] is None  # NaN -> null, never 1.0
    table = pd.read_csv(out / "conformal" / "conformal.csv")
    small_rows = table[(table["alpha"] == 0.1)]
    assert small_rows["coverage"].isna().all() and small_rows["note"].str.contains("needs >= 9").all()
    sets = pd.read_csv(out / "conformal" / "conformal_sets.csv")
    assert set(sets["alpha"]) == {0.5}  # no all-class sets written for the refused setting


def test_auroc_and_kappa_with_one_class_are_nan_with_a_note() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    labels = np.array([0, 0, 0])
    m = classification_metrics(probs, labels)
    # scikit-learn gives kappa 0.0 here (an artefact of one true class) and refuses the AUROC
    assert skm.cohen_kappa_score(labels, probs.argmax(1), labels=[0, 1]) == 0.0
    assert math.isnan(m["auroc"]) and math.isnan(m["kappa"])
    assert m["accuracy"] == pytest.approx(2 / 3)
    notes = classification_notes(labels, 2)
    assert set(notes) == {"auroc", "kappa"}
    assert (
        notes["kappa"]
        == "not computable: all 3 labels are class 0 (of 2); needs patients of at least 2 classes"
    )
    assert classification_notes(np.array([0, 1]), 2) == {}
    assert set(classification_notes(np.array([], dtype=int), 2)) >= {"accuracy", "auroc", "kappa"}


def test_cindex_without_comparable_pairs_is_nan_with_a_note() -> None:
    rng = np.random.default_rng(0)
    train_t, train_e = rng.uniform(1, 50, 40), rng.random(40) < 0.6
    # three test patients, all censored: no comparable pair
    t, e, r = np.array([5.0, 10.0, 20.0]), np.zeros(3, bool), np.array([0.3, 0.1, 0.2])
    m = survival_metrics(r, t, e, train_t, train_e)
    assert math.isnan(m["cindex"]) and math.isnan(m["cindex_uno"])
    notes = survival_notes(m, t, e)
    assert notes["cindex"].startswith("not computable: no comparable pair (3 patients, 0 events")
    # one event at the LAST time: an event but still no comparable pair
    e2 = np.array([False, False, True])
    m2 = survival_metrics(r, t, e2, train_t, train_e)
    assert math.isnan(m2["cindex"])
    assert "no comparable pair (3 patients, 1 events" in survival_notes(m2, t, e2)["cindex"]
    assert "cindex" not in survival_notes({"cindex": 0.7}, t, e2)


def test_task_notes_name_the_objective_and_the_primary_metric() -> None:
    objectives = {"os": SurvivalObjective(loss="cox"), "grade": ClassificationObjective("grade")}
    rows = {
        "os": {
            "index": np.arange(3),
            "risk": np.array([0.3, 0.1, 0.2]),
            "time": np.array([5.0, 10.0, 20.0]),
            "event": np.zeros(3, bool),
        },
        "grade": {
            "index": np.arange(3),
            "probs": np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]),
            "label": np.zeros(3, int),
        },
    }
    metrics = {
        "cindex": math.nan,
        "os/cindex": math.nan,
        "grade/auroc": math.nan,
        "grade/kappa": math.nan,
        "grade/accuracy": 2 / 3,
    }
    notes = OutcomeTask.metric_notes(SimpleNamespace(objectives=objectives), rows, metrics)
    assert set(notes) == {"cindex", "os/cindex", "grade/auroc", "grade/kappa"}
    assert notes["grade/kappa"].startswith("not computable: all 3 labels are class 0")
