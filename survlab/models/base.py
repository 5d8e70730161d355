"""The network contract: what a network is told about the data (`ModalityDims`), what it needs
(`modalities`) and what it returns (`Prediction`).

Every network is a plain `nn.Module` (no Lightning, no I/O) built as `Net(dims=ModalityDims(...), **hparams)`
whose `forward(batch: Batch) -> Prediction`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from survlab.data.dims import MODALITIES, ModalityDims  # noqa: F401  (re-exported: the network contract)
from survlab.models.precision import at_least_fp32


@dataclass
class Prediction:
    """What a network produces for a batch of B patients.

    hazard_logits [B, n_bins]: discrete-time hazard logits (MCAT convention, hazard = sigmoid(logit)).
    risk [B]: a Cox log-hazard (higher = worse). At least one of the two is set by survival networks.
    class_logits: label name -> [B, C] (patient level); slide_logits: label name -> [B, S, C] (slide level, slide j of
    patient b = the slide with Batch.slide_index == j, aligned with Batch.slide_labels); endpoint_hazard_logits /
    endpoint_risk: endpoint name -> [B, n_bins] / [B] for networks predicting several survival endpoints.
    horizon_logits: endpoint name (or "primary" for the primary endpoint) -> [B, H] for the H horizons of a
    `HorizonObjective` (in its order): logit k = the conditional hazard of the interval (h_{k-1}, h_k]; the
    objective cumulates them into P(event by h_k), non-decreasing in k (`HorizonObjective.probabilities`).
    aux_losses: name -> scalar, added to the task loss.
    attention: name -> tensor for interpretation, e.g. "patch" [B, N] (0 on padding), "pathway" [B, P],
    "topk" [B, k] (long indices). embedding [B, E]: the fused patient representation (optional).
    """

    hazard_logits: Tensor | None = None
    risk: Tensor | None = None
    class_logits: dict[str, Tensor] = field(default_factory=dict)
    slide_logits: dict[str, Tensor] = field(default_factory=dict)
    endpoint_hazard_logits: dict[str, Tensor] = field(default_factory=dict)
    endpoint_risk: dict[str, Tensor] = field(default_factory=dict)
    horizon_logits: dict[str, Tensor] = field(default_factory=dict)
    aux_losses: dict[str, Tensor] = field(default_factory=dict)
    attention: dict[str, Tensor] = field(default_factory=dict)
    embedding: Tensor | None = None


def survival_from_hazard_logits(hazard_logits: Tensor) -> Tensor:
    """S(t_k) = prod_{j<=k} (1 - h_j) for each bin k; [B, n_bins] -> [B, n_bins], at least fp32 (bf16 logits would
    give bf16 survival curves and tied risks)."""
    return torch.cumprod(1.0 - torch.sigmoid(at_least_fp32(hazard_logits)), dim=-1)


def risk_score(pred: Prediction) -> Tensor:
    """Scalar risk per patient [B] (higher = earlier event), at least fp32: Cox `risk` if given, else −Σ_k S(t_k)."""
    if pred.risk is not None:
        return at_least_fp32(pred.risk)
    if pred.hazard_logits is None:
        raise ValueError("Prediction has neither `risk` nor `hazard_logits`; a survival network must set one")
    return -survival_from_hazard_logits(pred.hazard_logits).sum(dim=-1)


class SurvivalNet(nn.Module):
    """Base class: subclasses set `modalities` (what they need) and implement forward(batch) -> Prediction."""

    modalities: ClassVar[tuple[str, ...]] = ()

    def __init__(self, dims: ModalityDims) -> None:
        super().__init__()
        self.dims = dims
        missing = [m for m in self.modalities if m not in dims.provides]
        if missing:
            raise ValueError(
                f"{type(self).__name__} needs modalities {list(self.modalities)} but the cohort provides "
                f"{sorted(dims.provides) or 'none'} (missing: {missing}); pick a data config that has them"
            )
