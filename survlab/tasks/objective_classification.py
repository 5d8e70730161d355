"""`ClassificationObjective`: a patient- or slide-level class label's head (cross-entropy / focal / ordinal loss,
class weights from the training patients) and its classification metrics.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from survlab.data.batch import Batch
from survlab.metrics.classification import (
    CLASSIFICATION_METRICS,
    classification_metrics,
    classification_notes,
)
from survlab.models.base import Prediction
from survlab.models.precision import at_least_fp32
from survlab.tasks.losses import classification_loss
from survlab.tasks.objective_base import SLIDE_STRIDE, Objective


class ClassificationObjective(Objective):
    """Classification of one label at patient level (`Prediction.class_logits[label]` [B, K] vs `Batch.labels`) or
    slide level (`level: slide`: `Prediction.slide_logits[label]` [B, S, K] vs `Batch.slide_labels` [B, S]).

    loss: `ce` (label smoothing, class weights) or `focal` (`gamma`); class_weights: null, `balanced` (inverse
    frequency of the fold's training labels, mean 1) or a list. `label: null` = the cohort's primary label
    (its splits.stratify_label, else its first label); at slide level, the cohort's only slide label. Missing labels (-1) are masked. Metrics:
    `survlab.metrics.classification` (balanced accuracy is the primary one); `ordinal: true` -> quadratic kappa.
    """

    metric_names = CLASSIFICATION_METRICS
    primary_metric = "balanced_accuracy"
    modes: ClassVar[dict[str, str]] = {"loss": "min"}
    LEVELS = ("patient", "slide")

    def __init__(
        self,
        label: str | None = None,
        level: str = "patient",
        loss: str = "ce",
        label_smoothing: float = 0.0,
        class_weights: str | list[float] | None = None,
        gamma: float = 2.0,
        ordinal: bool = False,
        weight: float = 1.0,
    ) -> None:
        super().__init__(weight)
        if level not in self.LEVELS:
            raise ValueError(f"classification objective level must be one of {self.LEVELS}, got {level!r}")
        if loss not in ("ce", "focal"):
            raise ValueError(f"classification objective loss must be 'ce' or 'focal', got {loss!r}")
        if isinstance(class_weights, str) and class_weights != "balanced":
            raise ValueError(f"class_weights must be null, 'balanced' or a list, got {class_weights!r}")
        self.label, self.level, self.kind = label, level, loss
        self.label_smoothing, self.gamma, self.ordinal = float(label_smoothing), float(gamma), bool(ordinal)
        self.class_weights = class_weights
        self.register_buffer(
            "class_weight",
            None
            if class_weights in (None, "balanced")
            else torch.as_tensor(list(class_weights), dtype=torch.float32),
            persistent=False,
        )

    def fit_reference(self, fitted: Any) -> None:
        """`label: null` -> the cohort's primary label; balanced class weights from the fold's TRAINING labels
        (`fitted`: the fold's FoldPreprocessing)."""
        if self.label is None and self.level == "slide":  # slide level: the cohort's only slide label
            names = list(fitted.slide_classes)
            if len(names) != 1:
                raise ValueError(
                    f"slide-level classification objective with label: null needs exactly one slide "
                    f"label, the cohort has {names or 'none'}; set the objective's label"
                )
            self.label = names[0]
        if self.label is None:
            self.label = fitted.primary_label
            if self.label is None:
                raise ValueError(
                    "classification objective with label: null, but the cohort declares no label; "
                    "set data.labels or the objective's label"
                )
        if self.class_weights != "balanced":
            return
        counts = np.asarray(fitted.train_label_counts(self.label, level=self.level), dtype=np.float64)
        w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(counts), 0.0)
        self.class_weight = torch.as_tensor(w / w[counts > 0].mean(), dtype=torch.float32)

    def _logits_targets(self, pred: Prediction, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        """-> logits [M, K], targets [M], row ids [M] over the labelled rows."""
        if self.level == "patient":
            logits, target = pred.class_logits.get(self.label), batch.labels.get(self.label)
            ids = batch.index
        else:
            logits = pred.slide_logits.get(self.label)
            target = getattr(batch, "slide_labels", {}).get(self.label)
            if logits is not None and target is not None:
                s = target.shape[1]
                ids = (
                    batch.index[:, None] * SLIDE_STRIDE + torch.arange(s, device=target.device)[None, :]
                ).reshape(-1)
                logits, target = logits[:, :s].reshape(-1, logits.shape[-1]), target.reshape(-1)
        if logits is None:
            raise ValueError(
                f"the network returns no {self.level}-level logits for label {self.label!r} "
                f"(Prediction.{'class_logits' if self.level == 'patient' else 'slide_logits'})"
            )
        if target is None:
            raise ValueError(
                f"the cohort has no {self.level}-level label {self.label!r}; declare it under "
                f"data.{'labels' if self.level == 'patient' else 'slide_labels'}"
            )
        valid = target >= 0
        return logits[valid], target[valid], ids[valid]

    def loss(self, pred: Prediction, batch: Batch, eval_mode: bool = False) -> Tensor | None:
        logits, target, _ = self._logits_targets(pred, batch)
        if target.numel() == 0:
            return None
        return classification_loss(
            logits, target, self.kind, self.label_smoothing, self.class_weight, self.gamma
        )

    def collect(self, pred: Prediction, batch: Batch) -> dict[str, Tensor]:
        logits, target, ids = self._logits_targets(pred, batch)
        return {"index": ids, "probs": torch.softmax(at_least_fp32(logits), dim=-1), "label": target}

    def score(self, rows: dict[str, np.ndarray]) -> dict[str, float]:
        return classification_metrics(rows["probs"], rows["label"], ordinal=self.ordinal)

    def notes(self, rows: dict[str, np.ndarray], metrics: dict[str, float]) -> dict[str, str]:
        return {
            **super().notes(rows, metrics),
            **classification_notes(rows["label"], rows["probs"].shape[1]),
        }
