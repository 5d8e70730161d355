"""Classification end to end: `python -m survlab.run model=<mil> data=synthetic_classification` trains through the
real loaders, writes class probabilities, a confusion matrix and classification metrics, and learns the planted
signal (balanced accuracy clearly above chance, close to the cohort's Bayes accuracy)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score

from tests.helpers.runs import run_job

COHORT = [
    "data=synthetic_classification",
    "data.synthetic.n_patients=120",
    "data.synthetic.feature_dim=8",
    "data.wsi.feature_dim=8",
    "data.synthetic.patches_per_slide=[10,30]",
    "data.synthetic.seed=3",
    "data.splits.folds=3",
    "data.batch_size=8",
    "data.max_patches=128",
]
TRAIN = [
    "debug=tiny",
    "trainer.max_epochs=12",
    "selection=last",
    "model.task.lr=2e-3",
    "export_attention=false",
]


def _fit(tmp: Path, model: str, extra: tuple[str, ...] = ()) -> tuple[dict, Path]:
    out = tmp / model
    metrics = run_job(
        out,
        [
            f"paths.data_dir={tmp / 'data'}",
            f"paths.log_dir={tmp / 'logs'}",
            f"model={model}",
            *COHORT,
            *TRAIN,
            *extra,
        ],
    )
    return metrics, out


@pytest.mark.parametrize("model", ["abmil_cls", "clam_sb"])
def test_mil_classifier_learns_the_planted_class_signal(tmp_path: Path, model: str) -> None:
    metrics, out = _fit(tmp_path, model)
    bayes = json.loads((tmp_path / "data" / "synthetic" / "classification" / "oracle.json").read_text())[
        "bayes_accuracy"
    ]
    assert metrics["test/balanced_accuracy"] > 0.7, metrics  # chance 0.5
    assert metrics["test/accuracy"] > bayes - 0.15, (metrics["test/accuracy"], bayes)
    preds = pd.read_csv(out / "predictions.csv")
    assert list(preds.columns) == [
        "case_id",
        "fold",
        "label",
        "label_pred",
        "label_prob_negative",
        "label_prob_positive",
    ]
    assert preds[["label_prob_negative", "label_prob_positive"]].sum(axis=1).round(5).eq(1).all()
    assert metrics["test/balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(preds.label, preds.label_pred)
    )
    assert (out / "confusion_label.png").is_file() and not (out / "km.png").exists()
    assert (out / "roc_pr_label.png").is_file() and (out / "confusion_label.pdf").read_bytes()[:5] == b"%PDF-"
    protocol = json.loads((out / "protocol.json").read_text())
    assert protocol["targets"]["labels"]["label"] == ["negative", "positive"]
    assert (
        protocol["config"]["monitor"] == "val/balanced_accuracy"
        and protocol["config"]["monitor_mode"] == "max"
    )


def test_a_label_and_survival_objective_together_on_the_survival_cohort(tmp_path: Path) -> None:
    """Grade (ordinal, some missing) and overall survival from one ABMIL with both heads; monitor any metric."""
    objectives = [
        "model.task._target_=survlab.tasks.outcome.OutcomeTask",  # model=abmil composes _survival (a _target_)
        "+model.task.objectives.os._target_=survlab.tasks.objectives.SurvivalObjective",
        "+model.task.objectives.grade._target_=survlab.tasks.objectives.ClassificationObjective",
        "+model.task.objectives.grade.label=grade",
        "+model.task.objectives.grade.ordinal=true",
        "~model.task.loss",
        "~model.task.alpha",
        "~model.task.eval_alpha",
    ]
    metrics = run_job(
        tmp_path / "run",
        [
            f"paths.data_dir={tmp_path / 'data'}",
            f"paths.log_dir={tmp_path / 'logs'}",
            "model=abmil",
            "model.net.targets=[grade]",
            "data.synthetic.n_patients=60",
            "data.synthetic.feature_dim=8",
            "data.wsi.feature_dim=8",
            "data.synthetic.patches_per_slide=[6,20]",
            "debug=tiny",
            "export_attention=false",
            "monitor=val/grade/balanced_accuracy",
            *objectives,
        ],
    )
    for key in ("test/cindex", "test/os/cindex", "test/grade/kappa", "test/grade/balanced_accuracy"):
        assert key in metrics, sorted(metrics)
    assert metrics["test/cindex"] == metrics["test/os/cindex"]
    preds = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert {"risk", "time", "event", "grade", "grade_pred", "grade_prob_0", "grade_prob_2"} <= set(
        preds.columns
    )


def test_slide_level_classification_end_to_end(tmp_path: Path) -> None:
    """ABMIL pools each slide on its own and classifies it (normal / tumour): slide rows are scored against the
    slide labels, written to slide_predictions.csv with their slide ids, and learned above chance."""
    metrics, out = _fit(
        tmp_path,
        "abmil_cls",
        (
            "model.net.targets=[]",
            "model.net.slide_targets=[slide_label]",
            "model.task.objectives.label.level=slide",
            "model.task.objectives.label.label=slide_label",
        ),
    )
    slides = pd.read_csv(out / "slide_predictions.csv")
    clinical = pd.read_csv(tmp_path / "data" / "synthetic" / "classification" / "clinical.csv")
    truth = clinical.set_index("slide_id")["slide_label"]
    assert (slides.label == truth.loc[slides.slide_id].to_numpy()).all(), (
        "slide rows carry their own slide's label"
    )
    assert metrics["test/label/n"] == len(slides) > metrics["n_test"]  # several slides per patient
    assert metrics["test/balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(slides.label, slides.pred)
    )
    assert metrics["test/balanced_accuracy"] > 0.75, metrics
