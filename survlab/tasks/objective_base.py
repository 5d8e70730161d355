"""The objective base class (`Objective`: one head of a network's `Prediction`, its loss and metrics; see
survlab.tasks.objectives for the contract) and the constants its subclasses share (`SURVIVAL_METRICS`,
`SLIDE_STRIDE`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from torch import Tensor, nn

from survlab.data.batch import Batch
from survlab.models.base import Prediction

SURVIVAL_METRICS = ("cindex", "cindex_uno", "auc_td", "ibs")


#: slide rows are identified by patient index * SLIDE_STRIDE + slide position (for DDP de-duplication)
SLIDE_STRIDE = 1 << 16


class Objective(nn.Module):
    """Base class (an nn.Module so an objective may hold learnable parameters)."""

    metric_names: ClassVar[tuple[str, ...]] = ()
    primary_metric: ClassVar[str] = ""
    #: logged for an undefined (NaN) primary metric, so checkpoint selection is not poisoned: chance level where
    #: it has one (C-index, AUC 0.5), else 0
    undefined_value: ClassVar[float] = 0.0
    modes: ClassVar[dict[str, str]] = {}

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = float(weight)
        self.name = ""  # set by the task from its objectives' keys

    @classmethod
    def mode(cls, metric: str) -> str:
        """'max' or 'min' for a metric of this objective (checkpoint selection, early stopping)."""
        return cls.modes.get(metric, "max")

    @classmethod
    def config_metric_names(cls, options: Mapping[str, Any]) -> tuple[str, ...]:
        """Metric names an objective built with these constructor `options` (its config node) reports."""
        return cls.metric_names

    def fit_reference(self, fitted: Any) -> None:  # noqa: B027 - optional hook
        """Read training-fold quantities from the fold's `FoldPreprocessing` (survlab.data.fitted)."""

    def loss(self, pred: Prediction, batch: Batch, eval_mode: bool = False) -> Tensor | None:
        raise NotImplementedError

    def collect(self, pred: Prediction, batch: Batch) -> dict[str, Tensor]:
        raise NotImplementedError

    def score(self, rows: dict[str, np.ndarray]) -> dict[str, float]:
        raise NotImplementedError

    def notes(self, rows: dict[str, np.ndarray], metrics: dict[str, float]) -> dict[str, str]:
        """{metric: why it is NaN} for every NaN value of `metrics` (= score(rows)); recorded beside it as
        `<metric>_note` in metrics.json."""
        return {
            k: f"not computable on this part ({len(rows.get('index', ()))} rows; see the log)"
            for k, v in metrics.items()
            if isinstance(v, float) and math.isnan(v)
        }
