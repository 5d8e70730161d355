"""Classification metrics equal scikit-learn's on the same predictions: tied scores, a class missing from a fold,
a class never predicted, ordinal kappa."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from survlab.metrics.classification import classification_metrics, confusion_matrix


def _sklearn(probs: np.ndarray, labels: np.ndarray, ordinal: bool) -> dict[str, float]:
    k = probs.shape[1]
    pred = probs.argmax(1)
    present = np.unique(labels)
    if k == 2:
        auroc = skm.roc_auc_score(labels, probs[:, 1]) if len(present) == 2 else math.nan
    else:
        per = [
            skm.roc_auc_score(labels == c, probs[:, c])
            for c in present
            if 0 < (labels == c).sum() < len(labels)
        ]
        auroc = float(np.mean(per)) if len(present) >= 2 else math.nan
    return {
        "accuracy": skm.accuracy_score(labels, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(labels, pred),
        "precision": skm.precision_score(labels, pred, average="macro", zero_division=0),
        "recall": skm.recall_score(labels, pred, average="macro", zero_division=0),
        "f1": skm.f1_score(labels, pred, average="macro", zero_division=0),
        "auroc": auroc,
        "kappa": skm.cohen_kappa_score(
            labels, pred, labels=list(range(k)), weights="quadratic" if ordinal else None
        ),
    }


def _probs(rng: np.random.Generator, n: int, k: int, ties: bool) -> np.ndarray:
    logits = rng.integers(0, 3, (n, k)).astype(float) if ties else rng.normal(size=(n, k))
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("ordinal", [False, True])
def test_metrics_equal_sklearn(k: int, ties: bool, ordinal: bool) -> None:
    for seed in range(4):
        rng = np.random.default_rng(seed)
        probs = _probs(rng, 40, k, ties)
        labels = rng.integers(0, k, 40)
        if seed == 1 and k > 2:
            labels[labels == 1] = 0  # a class missing from this fold's labels
        if seed == 2:
            probs[:, k - 1] = 0.0  # a class never predicted
            probs /= probs.sum(1, keepdims=True)
        ours, ref = classification_metrics(probs, labels, ordinal), _sklearn(probs, labels, ordinal)
        for name, value in ref.items():
            if math.isnan(value):
                assert math.isnan(ours[name]), (name, seed)
            else:
                assert ours[name] == pytest.approx(value, abs=1e-9), (name, seed, k, ties)


def test_hand_case_and_confusion_matrix() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    labels = np.array([0, 1, 1, 0])
    np.testing.assert_array_equal(confusion_matrix(probs, labels), [[2, 0], [1, 1]])
    m = classification_metrics(probs, labels)
    assert m["accuracy"] == 0.75 and m["balanced_accuracy"] == 0.75 and m["n"] == 4
    assert m["auroc"] == pytest.approx(skm.roc_auc_score(labels, probs[:, 1]))
    one_class = classification_metrics(probs[:2], np.array([0, 0]))
    assert math.isnan(one_class["auroc"]) and one_class["balanced_accuracy"] == 0.5


def _planted(seed: int, n: int = 90, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), labels] += 1.2
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True), labels


def test_confusion_figure_shows_sklearns_counts_and_row_shares(tmp_path, monkeypatch) -> None:
    """Each cell of confusion_<objective>.png reads '<share of the true class>\\n(<count>)', from sklearn's matrix;
    the PNG is 300 dpi and a PDF is written beside it."""
    from matplotlib.figure import Figure
    from PIL import Image

    from survlab.report.figures import plot_confusion

    texts: list[str] = []
    save = Figure.savefig

    def spy(fig, *args, **kwargs):
        texts.extend(t.get_text() for t in fig.axes[0].texts)
        save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    probs, labels = _planted(0)
    ref = skm.confusion_matrix(labels, probs.argmax(1), labels=[0, 1, 2])
    plot_confusion(confusion_matrix(probs, labels), ["a", "b", "c"], tmp_path / "confusion.png")
    share = ref / ref.sum(1, keepdims=True)
    want = [f"{share[i, j]:.2f}\n({ref[i, j]})" for i in range(3) for j in range(3)]
    assert texts[:9] == want and texts[9:] == want  # PNG, then PDF
    with Image.open(tmp_path / "confusion.png") as im:
        assert im.info["dpi"][0] == pytest.approx(300, abs=1)
    assert (tmp_path / "confusion.pdf").read_bytes()[:5] == b"%PDF-"


def test_roc_pr_figure_per_class_equals_sklearn(tmp_path) -> None:
    from survlab.report.figures import plot_roc_pr

    probs, labels = _planted(1)
    out = plot_roc_pr(probs, labels, ["a", "b", "c"], tmp_path / "roc_pr.png")
    for c, name in enumerate("abc"):
        assert out[name]["auc"] == pytest.approx(skm.roc_auc_score(labels == c, probs[:, c]))
        assert out[name]["ap"] == pytest.approx(skm.average_precision_score(labels == c, probs[:, c]))
    assert (tmp_path / "roc_pr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "roc_pr.pdf").read_bytes()[:5] == b"%PDF-"
    binary = plot_roc_pr(
        probs[:, :2] / probs[:, :2].sum(1, keepdims=True), labels.clip(0, 1), ["n", "p"], tmp_path / "b.png"
    )
    assert list(binary) == ["p"]  # binary: the positive class's curve only
