"""Figures of the classification and conformal reports: the confusion matrix (scikit-learn's
`ConfusionMatrixDisplay`, share and count per cell), ROC / precision-recall curves per class and conformal coverage per
subgroup. The numbers they draw come from survlab.metrics (metrics compute, report draws); each classification figure
is a PNG with a PDF beside it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def plot_confusion(cm: np.ndarray, classes: list[str], path: Any, title: str = "", dpi: int = 300) -> None:
    """Confusion matrix [K, K] (rows = true, columns = predicted) drawn by scikit-learn's `ConfusionMatrixDisplay`:
    each cell shows the share of its true class and the count ('0.75\n(12)'), shaded by the share; PNG at `dpi`
    and a PDF beside it."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    cm = np.asarray(cm, dtype=float)
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    k = len(classes)
    size = 2.4 + 0.7 * k
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    disp = ConfusionMatrixDisplay(share, display_labels=classes)
    disp.plot(ax=ax, cmap="Blues", values_format=".2f", colorbar=True, im_kw={"vmin": 0, "vmax": 1})
    for i in range(k):
        for j in range(k):
            disp.text_[i, j].set_text(f"{share[i, j]:.2f}\n({int(cm[i, j])})")
            disp.text_[i, j].set_fontsize(9 if k <= 6 else 7)
    ax.set_xticks(range(k), classes, rotation=45 if max(map(len, classes)) > 4 else 0, ha="right", fontsize=9)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=8)
    disp.im_.colorbar.set_label("share of the true class")
    fig.tight_layout()
    _save(fig, Path(path), dpi)
    plt.close(fig)


def _save(fig: Any, path: Path, dpi: int) -> None:
    """`fig` to `path` (PNG at `dpi`) and to the same name with .pdf."""
    from survlab.utils.files import atomic_path

    for target, fmt in ((path, "png"), (path.with_suffix(".pdf"), "pdf")):
        with atomic_path(target) as tmp:
            fig.savefig(tmp, dpi=dpi, format=fmt, bbox_inches="tight")


def plot_roc_pr(
    probs: np.ndarray, labels: np.ndarray, classes: list[str], path: Any, title: str = ""
) -> dict:
    """ROC and precision-recall curves per class (one-vs-rest; binary: the positive class only) side by side, drawn
    by scikit-learn's `RocCurveDisplay` / `PrecisionRecallDisplay` with the AUC / average precision in the legend.
    `probs` [n, K], `labels` [n] class index. PNG (300 dpi) at `path` + a PDF beside it -> {class: {"auc", "ap"}}
    for the classes present and absent in `labels` (a class all or none of the patients hold has no curve)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

    probs, labels = np.asarray(probs, dtype=float), np.asarray(labels).astype(int)
    shown = [1] if probs.shape[1] == 2 else range(probs.shape[1])
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(8.6, 4.6))
    out: dict[str, dict[str, float]] = {}
    for c in shown:
        positive = labels == c
        if positive.all() or not positive.any():
            continue
        r = RocCurveDisplay.from_predictions(
            positive, probs[:, c], ax=roc, name=classes[c], plot_chance_level=False
        )
        p = PrecisionRecallDisplay.from_predictions(positive, probs[:, c], ax=pr, name=classes[c])
        out[classes[c]] = {"auc": float(r.roc_auc), "ap": float(p.average_precision)}
    roc.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey")
    roc.set(title="ROC (one vs rest)", xlabel="false positive rate", ylabel="true positive rate")
    pr.set(title="precision-recall (one vs rest)", xlabel="recall", ylabel="precision", ylim=(0, 1.02))
    for ax in (roc, pr):
        ax.spines[["top", "right"]].set_visible(False)
        if ax.get_legend() is not None:
            ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.16), frameon=False, fontsize=8, ncol=1)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    _save(fig, Path(path), 300)
    plt.close(fig)
    return out


def plot_coverage(table: pd.DataFrame, alpha: float, path: str | Path, title: str = "") -> None:
    """Coverage per subgroup (bars, one panel per setting in `table['setting']`) with the 1 − α target line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings: Sequence[str] = list(dict.fromkeys(table["setting"]))
    fig, axes = plt.subplots(
        len(settings),
        1,
        figsize=(max(6, 0.45 * table.groupby("setting").size().max()), 2.6 * len(settings)),
        squeeze=False,
    )
    for ax, setting in zip(axes[:, 0], settings, strict=True):
        part = table[table["setting"] == setting]
        labels = [
            f"{s}={v}" if s != "all" else "all" for s, v in zip(part["subgroup"], part["value"], strict=True)
        ]
        ax.bar(range(len(part)), part["coverage"], color="tab:blue")
        ax.axhline(1 - alpha, color="tab:red", ls="--", lw=1, label=f"1 − α = {1 - alpha:g}")
        for i, size in enumerate(part["mean_set_size"]):
            ax.text(i, 0.02, f"{size:.1f}", ha="center", va="bottom", fontsize=7, color="white")
        ax.set_xticks(range(len(part)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("coverage")
        ax.set_title(setting, fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = ["plot_confusion", "plot_coverage", "plot_roc_pr"]
