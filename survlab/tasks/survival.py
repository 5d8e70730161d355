"""`SurvivalTask`: an `OutcomeTask` with one survival objective on the cohort's primary endpoint, configured by the
flat keys every survival model config has used (`loss`, `alpha`, `eval_alpha`, `lr`, ...).

Loss: discrete-time NLL (MCAT form, `alpha`) on `hazard_logits`, or Cox partial likelihood on `risk`. Metrics are
logged as `val/<metric>` (and `val/survival/<metric>`); see `survlab.tasks.outcome` for the general task.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from survlab.models.base import SurvivalNet
from survlab.tasks.objective_base import SURVIVAL_METRICS, Objective
from survlab.tasks.objective_survival import SurvivalObjective
from survlab.tasks.outcome import NonFiniteLossError, OutcomeTask

__all__ = ["SurvivalTask", "NonFiniteLossError"]


class SurvivalTask(OutcomeTask):
    """Wraps `net` (a `SurvivalNet`) with a survival loss, optimiser and metrics.

    After `set_reference(...)` (bin edges and training outcomes, needed for IPCW metrics and survival curves),
    `test_results` holds the per-patient test predictions after `trainer.test`.
    """

    CHOICES = {**OutcomeTask.CHOICES, "loss": SurvivalObjective.LOSSES}

    def __init__(
        self,
        net: SurvivalNet,
        loss: str = "nll",
        alpha: float = 0.0,
        eval_alpha: float = 0.0,
        objectives: dict[str, Objective] | None = None,
        **kwargs: Any,
    ) -> None:
        if loss not in SurvivalObjective.LOSSES:
            raise ValueError(f"model.task.loss must be 'nll' or 'cox', got {loss!r}")
        objectives = objectives or {"survival": SurvivalObjective(None, loss, alpha, eval_alpha)}
        super().__init__(net, objectives=objectives, **kwargs)

    @classmethod
    def config_metric_names(cls, options: Mapping[str, Any]) -> list[str]:
        """Its one survival objective's metrics, bare and as survival/<metric> (or those of `objectives` given)."""
        if options.get("objectives"):
            return super().config_metric_names(options)
        return ["loss", *SURVIVAL_METRICS, *(f"survival/{m}" for m in SURVIVAL_METRICS)]

    @classmethod
    def config_primary_metric(cls, options: Mapping[str, Any]) -> str:
        return super().config_primary_metric(options) if options.get("objectives") else "cindex"

    @classmethod
    def config_metric_mode(cls, options: Mapping[str, Any], metric: str) -> str:
        if options.get("objectives"):
            return super().config_metric_mode(options, metric)
        return SurvivalObjective.mode(metric.rsplit("/", 1)[-1])

    def set_reference(self, bin_edges: np.ndarray, train_time: np.ndarray, train_event: np.ndarray) -> None:
        """Training-patient quantities used by the primary objective's metrics (IPCW censoring KM, curve times)."""
        self.primary.set_reference(bin_edges, train_time, train_event)

    @property
    def bin_edges(self) -> np.ndarray | None:
        return self.primary.bin_edges

    @property
    def train_time(self) -> np.ndarray | None:
        return self.primary.train_time

    @property
    def train_event(self) -> np.ndarray | None:
        return self.primary.train_event
