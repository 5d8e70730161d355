"""Classification metrics on per-patient (or per-slide) predictions, equal to scikit-learn's on the same inputs.

`classification_metrics(probs, labels)` -> accuracy, balanced_accuracy, precision / recall / f1 (macro), auroc
(one-vs-rest, macro over the classes present in `labels`; binary: AUROC of class 1), kappa (Cohen's; quadratic
weights for ordinal labels, by class index), n. Computed with torchmetrics' functional API on the gathered
predictions (the task gathers them across DDP ranks first): torchmetrics gives the confusion matrix; the macro
means and the kappa come from it in float64, and the AUROC is the Mann-Whitney statistic in float64 with tied scores
counted 1/2 (torchmetrics' AUROC and kappa are float32, 1e-7 off scikit-learn). Where the libraries differ,
scikit-learn's conventions:

- macro precision / recall / F1 average over the classes present in the labels or the predictions (scikit-learn's
  default `labels`); balanced accuracy is the mean recall over the classes present in the labels (scikit-learn's
  `balanced_accuracy_score`);
- a class absent from the labels has no AUROC and is left out of the macro mean; AUROC is NaN when fewer than two
  classes are present. Kappa uses every class index 0..K-1, as `cohen_kappa_score(labels=range(K))`, but is NaN
  when fewer than two classes are present in the labels (scikit-learn then gives 0.0 or NaN depending on the
  predictions: agreement with a single true class says nothing). `classification_notes` gives the reason of every
  NaN (recorded as `<metric>_note` in metrics.json).

Example:
    >>> import numpy as np
    >>> m = classification_metrics(np.array([[.9, .1], [.2, .8], [.6, .4]]), np.array([0, 1, 1]))
    >>> round(m["accuracy"], 3), round(m["balanced_accuracy"], 3), m["auroc"]
    (0.667, 0.75, 1.0)
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import rankdata
from torchmetrics.functional.classification import multiclass_confusion_matrix

__all__ = [
    "classification_metrics",
    "classification_notes",
    "binary_auroc",
    "confusion_matrix",
    "CLASSIFICATION_METRICS",
]

#: metric names, also logged as val/<head>/<name> and test/<head>/<name>
CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "auroc", "kappa")


def confusion_matrix(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """[K, K] counts, rows = true class, columns = predicted (argmax) class; K = probs.shape[1]."""
    k = probs.shape[1]
    return multiclass_confusion_matrix(torch.as_tensor(probs).argmax(1), torch.as_tensor(labels), k).numpy()


def binary_auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney AUROC of `scores` for the boolean `positive` (ties count 1/2) = sklearn's roc_auc_score."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    ranks = rankdata(scores)  # average ranks over ties
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _kappa(cm: np.ndarray, quadratic: bool) -> float:
    """Cohen's kappa from a [K, K] confusion matrix; quadratic weights (i - j)^2 by class index for ordinal labels."""
    k = len(cm)
    idx = np.arange(k)
    w = (idx[:, None] - idx[None, :]) ** 2 if quadratic else (idx[:, None] != idx[None, :])
    expected = np.outer(cm.sum(1), cm.sum(0)) / cm.sum()
    den = float((w * expected).sum())
    return 1.0 - float((w * cm).sum()) / den if den > 0 else math.nan


def _safe_mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def classification_metrics(probs: np.ndarray, labels: np.ndarray, ordinal: bool = False) -> dict[str, float]:
    """probs [N, K] (rows sum to 1), labels [N] in 0..K-1 (missing labels removed by the caller)."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"need probs [N, K] and labels [N]; got {probs.shape} and {labels.shape}")
    n, k = probs.shape
    if n == 0:
        return {name: math.nan for name in CLASSIFICATION_METRICS} | {"n": 0.0}
    cm = confusion_matrix(probs, labels).astype(np.float64)
    tp, true_n, pred_n = np.diag(cm), cm.sum(1), cm.sum(0)
    in_labels, in_either = true_n > 0, (true_n + pred_n) > 0
    precision = [tp[c] / pred_n[c] if pred_n[c] else 0.0 for c in range(k) if in_either[c]]
    recall = [tp[c] / true_n[c] if true_n[c] else 0.0 for c in range(k) if in_either[c]]
    f1 = [2 * tp[c] / (true_n[c] + pred_n[c]) for c in range(k) if in_either[c]]
    if k == 2:
        auroc = binary_auroc(probs[:, 1], labels == 1) if in_labels.all() else math.nan
    else:  # one-vs-rest for every class that has positives and negatives
        per_class = [binary_auroc(probs[:, c], labels == c) for c in range(k) if 0 < true_n[c] < n]
        auroc = _safe_mean(per_class) if int(in_labels.sum()) >= 2 else math.nan
    kappa = _kappa(cm, ordinal) if int(in_labels.sum()) >= 2 else math.nan
    return {
        "accuracy": float(tp.sum() / n),
        "balanced_accuracy": _safe_mean([tp[c] / true_n[c] for c in range(k) if in_labels[c]]),
        "precision": _safe_mean(precision),
        "recall": _safe_mean(recall),
        "f1": _safe_mean(f1),
        "auroc": auroc,
        "kappa": kappa,
        "n": float(n),
    }


def classification_notes(labels: np.ndarray, n_classes: int) -> dict[str, str]:
    """{metric: reason} for each metric `classification_metrics` leaves NaN on labels [N] (0..n_classes-1) for lack
    of data: no patient at all, or fewer than two classes present (AUROC, kappa)."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return {
            name: "not computable: no patient with a known label in this part"
            for name in CLASSIFICATION_METRICS
        }
    present = sorted({int(v) for v in labels})
    if len(present) >= 2:
        return {}
    reason = (
        f"not computable: all {len(labels)} labels are class {present[0]} (of {n_classes}); "
        f"needs patients of at least 2 classes"
    )
    return {"auroc": reason, "kappa": reason}
