"""`HorizonObjective`: survival probabilities at fixed horizons (one logit per horizon, masked by censoring), scored
per horizon with IPCW AUC and Brier score against the training patients' follow-up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from survlab.data.batch import Batch
from survlab.metrics.survival import (
    brier_score,
    time_dependent_auc,
    train_followup,
)
from survlab.models.base import Prediction
from survlab.models.precision import at_least_fp32
from survlab.tasks.objective_base import Objective


class HorizonObjective(Objective):
    """Censoring-aware probabilities of an event by fixed horizons on one endpoint (issue 10; metrics issue 21.4).

    The network predicts `Prediction.horizon_logits[endpoint or "primary"]` [B, H] for the H `horizons` (sorted
    ascending; same unit as the endpoint's times): logit k is the CONDITIONAL hazard of the interval
    (h_{k-1}, h_k] (h_0 = 0), and P(T <= h_k) = 1 − prod_{j<=k} (1 − sigmoid(logit_j)) (`probabilities`): the
    discrete-time survival model on the horizon grid, so the 1/3/5-year probabilities are non-decreasing in the
    horizon by construction (separate sigmoids per horizon were not). Target of patient i at horizon h: 1 if an
    event with time <= h, 0 if time > h (event or not), MASKED if censored with time <= h (status at h unknown) or if
    the patient lacks the endpoint (NaN time); masked cells form a suffix over the horizons, so a logit feeding only
    masked cells gets no gradient. Loss: binary cross-entropy of P(T <= h) averaged over the unmasked (patient,
    horizon) cells (None when no cell is unmasked).

    Metrics per horizon, on every test patient with the endpoint and the censoring distribution of the fold's
    TRAINING patients (`fit_reference`), as the survival objective's: `auc_<h>` = the cumulative/dynamic IPCW
    time-dependent AUC at h with marker P(T <= h) (`survlab.metrics.survival.time_dependent_auc`, = scikit-survival's
    `cumulative_dynamic_auc`; the same estimator as `auc_<t>` of `eval/subgroups.py`), `brier_<h>` = the IPCW Brier
    score at h of S(h) = 1 − P(T <= h) (`brier_score`, = scikit-survival's `brier_score`); NaN where undefined (no
    case or control, h outside the test follow-up, or h at / past the training follow-up, where the censoring
    weights end: then `ipcw_followup` and `n_horizons_past_followup` say so). `auc_mean`: mean over the horizons
    with an AUC (the primary metric). `<h>` is `f"{h:g}"`.

    Example (YAML, `model.task.objectives`):
        os_horizons: {_target_: survlab.tasks.objectives.HorizonObjective, horizons: [12, 36, 60], weight: 0.5}
    """

    #: generic names on the class; an instance (and `config_metric_names`) lists auc_<h> / brier_<h> per horizon
    metric_names = ("auc_mean",)
    primary_metric = "auc_mean"
    undefined_value = 0.5
    modes: ClassVar[dict[str, str]] = {"loss": "min"}
    PRIMARY_KEY = "primary"

    def __init__(self, horizons: Sequence[float], endpoint: str | None = None, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.horizons = self._checked_horizons(horizons)
        self.endpoint = endpoint
        self.metric_names = self._names(self.horizons)  # instance attribute: the exact names
        self.train_time: np.ndarray | None = None
        self.train_event: np.ndarray | None = None

    def fit_reference(self, fitted: Any) -> None:
        """The training patients' outcomes of the endpoint (from the fold's FoldPreprocessing): the censoring
        distribution of the IPCW metrics."""
        self.set_reference(*fitted.train_survival(self.endpoint))

    def set_reference(self, train_time: np.ndarray, train_event: np.ndarray) -> None:
        ok = np.isfinite(np.asarray(train_time, dtype=np.float64))
        self.train_time = np.asarray(train_time, dtype=np.float64)[ok]
        self.train_event = np.asarray(train_event, dtype=bool)[ok]

    @staticmethod
    def probabilities(logits: Tensor) -> Tensor:
        """P(T <= h_k) [B, H] from the interval hazard logits [B, H]: 1 − prod_{j<=k} (1 − sigmoid(logit_j))."""
        return -torch.expm1(torch.cumsum(nn.functional.logsigmoid(-logits), dim=-1))

    @staticmethod
    def _log_probabilities(logits: Tensor) -> tuple[Tensor, Tensor]:
        """(log P(T <= h_k), log P(T > h_k)) [B, H], computed stably from the interval hazard logits."""
        log_alive = torch.cumsum(nn.functional.logsigmoid(-logits), dim=-1)
        tiny = torch.finfo(logits.dtype).tiny
        return torch.log(torch.clamp(-torch.expm1(log_alive), min=tiny)), log_alive

    @staticmethod
    def _checked_horizons(horizons: Sequence[float] | None) -> tuple[float, ...]:
        """Horizons as sorted floats; ValueError for an empty list, non-positive / non-finite or duplicate values."""
        values = [float(h) for h in (horizons or [])]
        if not values or any(not math.isfinite(h) or h <= 0 for h in values):
            raise ValueError(
                f"horizon objective: horizons must be a non-empty list of positive finite times, "
                f"got {horizons!r}; e.g. horizons: [12, 36, 60]"
            )
        labels = [f"{h:g}" for h in values]
        if len(set(labels)) != len(labels):
            raise ValueError(f"horizon objective: duplicate horizons {labels}; give each horizon once")
        return tuple(sorted(values))

    @staticmethod
    def _names(horizons: Sequence[float]) -> tuple[str, ...]:
        return ("auc_mean", *(f"{m}_{h:g}" for h in horizons for m in ("auc", "brier")))

    @classmethod
    def config_metric_names(cls, options: Mapping[str, Any]) -> tuple[str, ...]:
        return cls._names(cls._checked_horizons(options.get("horizons")))

    @classmethod
    def mode(cls, metric: str) -> str:
        return "min" if metric.startswith("brier_") else cls.modes.get(metric, "max")

    # ------------------------------------------------------------------ targets and outputs
    def _survival(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """time [B] (NaN = patient lacks the endpoint), event [B] (bool) of the objective's endpoint."""
        if self.endpoint is None:
            return batch.time, batch.event
        if self.endpoint not in batch.endpoint_time:
            raise ValueError(
                f"horizon objective on endpoint {self.endpoint!r}: the cohort has no such endpoint; "
                f"declare it under data.endpoints"
            )
        return batch.endpoint_time[self.endpoint], batch.endpoint_event[self.endpoint]

    def _logits(self, pred: Prediction) -> Tensor:
        key = self.endpoint or self.PRIMARY_KEY
        logits = pred.horizon_logits.get(key)
        if logits is None:
            raise ValueError(
                f"the network returns no horizon logits for {key!r} (Prediction.horizon_logits[{key!r}] "
                f"[B, {len(self.horizons)}]); use a network with a horizon head"
            )
        if logits.ndim != 2 or logits.shape[1] != len(self.horizons):
            raise ValueError(
                f"Prediction.horizon_logits[{key!r}] has shape {tuple(logits.shape)}, expected "
                f"[B, {len(self.horizons)}] for horizons {list(self.horizons)}"
            )
        return at_least_fp32(logits)

    @staticmethod
    def targets(
        time: Tensor | np.ndarray, event: Tensor | np.ndarray, horizons: Sequence[float]
    ) -> tuple[Tensor, Tensor]:
        """-> target [B, H] (float, 1 = event by h) and known [B, H] (bool; False = masked: censored by h, or NaN)."""
        time = torch.as_tensor(time, dtype=torch.float64)[:, None]
        event = torch.as_tensor(event, dtype=torch.bool)[:, None]
        h = torch.as_tensor(horizons, dtype=torch.float64, device=time.device)[None, :]
        case, control = event & (time <= h), time > h  # NaN compares False: lacking the endpoint = masked
        return case.float(), case | control

    def loss(self, pred: Prediction, batch: Batch, eval_mode: bool = False) -> Tensor | None:
        logits = self._logits(pred)
        target, known = self.targets(*self._survival(batch), self.horizons)
        known = known.to(logits.device)
        if not bool(known.any()):
            return None
        log_p, log_q = self._log_probabilities(logits)
        target = target.to(logits)
        return -(target * log_p + (1.0 - target) * log_q)[known].mean()

    # ------------------------------------------------------------------ evaluation
    def collect(self, pred: Prediction, batch: Batch) -> dict[str, Tensor]:
        time, event = self._survival(batch)
        return {
            "index": batch.index,
            "probs": self.probabilities(self._logits(pred)).float(),
            "time": time,
            "event": event,
        }

    def score(self, rows: dict[str, np.ndarray]) -> dict[str, float]:
        """rows: probs [N, H] = P(T <= h), time [N], event [N] -> IPCW auc_<h>, brier_<h> per horizon and auc_mean
        (+ ipcw_followup / n_horizons_past_followup when a horizon is at or past the training follow-up)."""
        if self.train_time is None or self.train_event is None:
            raise RuntimeError("HorizonObjective: fit_reference(fitted) / set_reference(...) was not called")
        ok = np.isfinite(np.asarray(rows["time"], dtype=np.float64))
        probs = np.asarray(rows["probs"], dtype=np.float64)[ok]
        time = np.asarray(rows["time"], dtype=np.float64)[ok]
        event = np.asarray(rows["event"], dtype=bool)[ok]
        out: dict[str, float] = {}
        for j, h in enumerate(self.horizons):
            if len(time) and (event & (time <= h)).any() and (time > h).any():
                out[f"auc_{h:g}"] = float(
                    time_dependent_auc(probs[:, j], time, event, self.train_time, self.train_event, [h])[0][0]
                )
            else:
                out[f"auc_{h:g}"] = math.nan
            out[f"brier_{h:g}"] = (
                float(
                    brier_score(1.0 - probs[:, [j]], time, event, self.train_time, self.train_event, [h])[0]
                )
                if len(time)
                else math.nan
            )
        aucs = [out[f"auc_{h:g}"] for h in self.horizons if math.isfinite(out[f"auc_{h:g}"])]
        out["auc_mean"] = float(np.mean(aucs)) if aucs else math.nan
        followup = train_followup(self.train_time)
        past = [h for h in self.horizons if h >= followup]
        if past:
            out.update(ipcw_followup=followup, n_horizons_past_followup=float(len(past)))
        return out
