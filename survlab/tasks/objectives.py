"""Objectives: one head of a network's `Prediction` each, with its loss on a batch and its metrics on the gathered
per-patient predictions. A task is a weighted set of objectives (survival per endpoint, patient- or slide-level
classification) plus the network's auxiliary losses; a one-endpoint survival run is the one-objective case.

Every objective:
- `loss(pred, batch, eval_mode)` -> scalar or None (None: no labelled patient in the batch; missing labels and
  missing endpoint values are masked out, never imputed);
- `collect(pred, batch)` -> per-row tensors for evaluation (`index` identifies the row for DDP de-duplication);
- `score(rows)` -> metrics; `metric_names`, `primary_metric` and `mode` say what it reports (an objective whose
  metric names depend on its options, like the horizons of `HorizonObjective`, lists generic names on the class and
  the exact ones on the instance and in `config_metric_names(options)`);
- `fit_reference(fitted)` reads what it needs from the fold's fitted preprocessing (`survlab.data.fitted.
  FoldPreprocessing`: bin edges, training outcomes, class counts), never from the data module.

Example (YAML, `model.task`):
    objectives:
      grade: {_target_: survlab.tasks.objectives.ClassificationObjective, label: grade, loss: focal}
      os: {_target_: survlab.tasks.objectives.SurvivalObjective, loss: nll, alpha: 0.5}
      os_horizons: {_target_: survlab.tasks.objectives.HorizonObjective, horizons: [12, 36, 60]}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from survlab.data.batch import Batch
from survlab.metrics.classification import (
    CLASSIFICATION_METRICS,
    classification_metrics,
    classification_notes,
)
from survlab.metrics.survival import (
    breslow_survival,
    brier_score,
    default_eval_times,
    survival_at_times,
    survival_metrics,
    survival_notes,
    time_dependent_auc,
    train_followup,
)
from survlab.models.base import Prediction, survival_from_hazard_logits
from survlab.models.precision import at_least_fp32
from survlab.tasks.losses import classification_loss, cox_partial_likelihood, nll_discrete_survival

__all__ = [
    "Objective",
    "SurvivalObjective",
    "ClassificationObjective",
    "HorizonObjective",
    "SURVIVAL_METRICS",
    "SLIDE_STRIDE",
]

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
