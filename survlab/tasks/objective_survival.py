"""`SurvivalObjective`: one survival endpoint's head (discrete-time NLL on binned hazards, or Cox partial likelihood
on a risk score), its Breslow baseline from the training patients, and its metrics (C-index, Uno, td-AUC, IBS).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from survlab.data.batch import Batch
from survlab.metrics.survival import (
    breslow_survival,
    default_eval_times,
    survival_at_times,
    survival_metrics,
    survival_notes,
)
from survlab.models.base import Prediction, survival_from_hazard_logits
from survlab.models.precision import at_least_fp32
from survlab.tasks.losses import cox_partial_likelihood, nll_discrete_survival
from survlab.tasks.objective_base import SURVIVAL_METRICS, Objective


class SurvivalObjective(Objective):
    """Survival on one endpoint: discrete-time NLL (`loss: nll`, MCAT form with `alpha`) on hazard logits, or the Cox
    partial likelihood (`loss: cox`) on a risk. `endpoint: null` = the cohort's primary endpoint (`Batch.time`,
    `Prediction.hazard_logits` / `risk`); a named endpoint reads `Batch.endpoint_*[name]` and
    `Prediction.endpoint_hazard_logits` / `endpoint_risk` [name]. Patients without a value for the endpoint are
    masked. Metrics: Harrell / Uno C-index, td-AUC, IBS (IPCW from the fold's training patients)."""

    metric_names = SURVIVAL_METRICS
    primary_metric = "cindex"
    undefined_value = 0.5
    modes: ClassVar[dict[str, str]] = {"ibs": "min", "loss": "min"}
    LOSSES = ("nll", "cox")

    def __init__(
        self,
        endpoint: str | None = None,
        loss: str = "nll",
        alpha: float = 0.0,
        eval_alpha: float = 0.0,
        weight: float = 1.0,
    ) -> None:
        super().__init__(weight)
        if loss not in self.LOSSES:
            raise ValueError(f"survival objective loss must be one of {self.LOSSES}, got {loss!r}")
        self.endpoint, self.kind, self.alpha, self.eval_alpha = (
            endpoint,
            loss,
            float(alpha),
            float(eval_alpha),
        )
        self.bin_edges: np.ndarray | None = None
        self.train_time: np.ndarray | None = None
        self.train_event: np.ndarray | None = None
        self.train_risk: np.ndarray | None = (
            None  # Cox: training risks of the selected model (Breslow baseline)
        )

    # ------------------------------------------------------------------ targets and outputs
    def _targets(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        if self.endpoint is None:
            return batch.time, batch.event, batch.time_bin
        try:
            return (
                batch.endpoint_time[self.endpoint],
                batch.endpoint_event[self.endpoint],
                batch.endpoint_time_bin[self.endpoint],
            )
        except (AttributeError, KeyError):
            raise ValueError(
                f"survival objective on endpoint {self.endpoint!r}: the cohort has no such endpoint; "
                f"declare it under data.endpoints"
            ) from None

    def _outputs(self, pred: Prediction) -> tuple[Tensor | None, Tensor | None]:
        if self.endpoint is None:
            return pred.hazard_logits, pred.risk
        hz, risk = pred.endpoint_hazard_logits.get(self.endpoint), pred.endpoint_risk.get(self.endpoint)
        if hz is None and risk is None:
            raise ValueError(
                f"the network predicts nothing for endpoint {self.endpoint!r} "
                f"(Prediction.endpoint_hazard_logits / endpoint_risk)"
            )
        return hz, risk

    def _risk(self, hazard_logits: Tensor | None, risk: Tensor | None) -> Tensor:
        if risk is not None:
            return at_least_fp32(risk)
        return -survival_from_hazard_logits(hazard_logits).sum(dim=-1)

    def loss(self, pred: Prediction, batch: Batch, eval_mode: bool = False) -> Tensor | None:
        time, event, time_bin = self._targets(batch)
        hz, risk = self._outputs(pred)
        valid = time_bin >= 0 if self.kind == "nll" else torch.isfinite(time)
        if self.endpoint is None and bool(valid.all()):
            valid = None  # the primary endpoint is complete: no indexing (keeps today's numbers bit for bit)
        elif not bool(valid.any()):
            return None
        pick = (lambda t: t) if valid is None else (lambda t: t[valid])  # noqa: E731
        if self.kind == "nll":
            if hz is None:
                raise ValueError("the network returns no hazard_logits; use loss: cox for a risk output")
            return nll_discrete_survival(
                pick(hz), pick(time_bin), pick(event), alpha=self.eval_alpha if eval_mode else self.alpha
            )
        return cox_partial_likelihood(pick(self._risk(hz, risk)), pick(time), pick(event))

    # ------------------------------------------------------------------ evaluation
    def fit_reference(self, fitted: Any) -> None:
        """Bin edges and training outcomes of the endpoint from the fold's `FoldPreprocessing`."""
        self.bin_edges = np.asarray(fitted.bin_edges_of(self.endpoint), dtype=np.float64)
        time, event = fitted.train_survival(self.endpoint)
        self.set_reference(self.bin_edges, time, event)

    def set_baseline(self, train_risk: Any, train_time: Any, train_event: Any) -> None:
        """The training patients' predicted risks [N] and outcomes [N] of a Cox objective (its Breslow baseline)."""
        self.train_risk = np.asarray(train_risk, float)
        self.train_time = np.asarray(train_time, float)
        self.train_event = np.asarray(train_event, bool)

    def set_reference(self, bin_edges: np.ndarray, train_time: np.ndarray, train_event: np.ndarray) -> None:
        ok = np.isfinite(np.asarray(train_time, dtype=np.float64))
        self.bin_edges = np.asarray(bin_edges, dtype=np.float64)
        self.train_time = np.asarray(train_time, dtype=np.float64)[ok]
        self.train_event = np.asarray(train_event, dtype=bool)[ok]

    def collect(self, pred: Prediction, batch: Batch) -> dict[str, Tensor]:
        time, event, _ = self._targets(batch)
        hz, risk = self._outputs(pred)
        out = {"index": batch.index, "risk": self._risk(hz, risk).float(), "time": time, "event": event}
        if hz is not None:
            out["hazard_logits"] = hz.float()
        return out

    def notes(self, rows: dict[str, np.ndarray], metrics: dict[str, float]) -> dict[str, str]:
        ok = np.isfinite(rows["time"])
        return survival_notes(metrics, rows["time"][ok], rows["event"][ok])

    def score(self, rows: dict[str, np.ndarray]) -> dict[str, float]:
        if self.train_time is None:
            raise RuntimeError("SurvivalObjective: fit_reference(fitted) / set_reference(...) was not called")
        ok = np.isfinite(rows["time"])
        rows = {k: v[ok] for k, v in rows.items()}
        eval_times = default_eval_times(rows["time"], rows["event"], self.train_time, self.train_event)
        surv = None
        if eval_times is not None and len(eval_times):
            if "hazard_logits" in rows and self.bin_edges is not None:
                surv = survival_at_times(rows["hazard_logits"], self.bin_edges, eval_times)
            elif self.train_risk is not None:
                surv = breslow_survival(
                    self.train_risk, self.train_time, self.train_event, rows["risk"], eval_times
                )
        return survival_metrics(
            rows["risk"],
            rows["time"],
            rows["event"],
            self.train_time,
            self.train_event,
            surv_at_times=surv,
            eval_times=eval_times,
        )
