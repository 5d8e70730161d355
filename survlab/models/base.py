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

from survlab.models.precision import at_least_fp32

#: modality names a cohort can provide and a network can require
MODALITIES = ("wsi", "scales", "genomics", "clinical", "text", "ct", "ct_seg")  # ct_seg: slices + lung/lesion masks


@dataclass(frozen=True)
class ModalityDims:
    """Sizes the data module derives from the cohort and hands to the network constructor.

    wsi_dim: patch feature dim D; scale_dims: scale name -> D_s for multi-scale bags (ordered, e.g. x5, x10, x20);
    genomic_sizes / genomic_names: genes per group (after matching) and group names; clinical_dim: number of
    clinical features after encoding; n_bins: discrete-time bins; n_classes: label name -> number of classes;
    slide_n_classes: slide label name -> number of classes; endpoints: survival endpoint names (primary first);
    prompts: label name -> {class: sentences} (text prompts, in the label's class order).
    """

    wsi_dim: int | None = None
    scale_dims: dict[str, int] | None = None
    genomic_sizes: tuple[int, ...] | None = None
    genomic_names: tuple[str, ...] | None = None
    clinical_dim: int | None = None
    clinical_names: tuple[str, ...] | None = None
    n_bins: int = 4
    primary_label: str | None = None  # the label a single-label network predicts when not told which
    n_classes: dict[str, int] = field(default_factory=dict)
    slide_n_classes: dict[str, int] = field(default_factory=dict)  # slide label name -> number of classes
    endpoints: tuple[str, ...] = ()  # survival endpoints, the primary first (empty: no survival)
    # text: label name -> {class name: sentences} in the label's class order (data.prompts; survlab.data.text)
    prompts: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    imaging: dict[str, int] | None = None  # CT/PET: stack_length, image_size, radiomics, pet dims (None: no CT)

    @property
    def provides(self) -> set[str]:
        """Modalities present in the cohort."""
        have = set()
        if self.wsi_dim is not None:
            have.add("wsi")
        if self.scale_dims:
            have.add("scales")
        if self.genomic_sizes:
            have.add("genomics")
        if self.clinical_dim:
            have.add("clinical")
        if self.prompts:
            have.add("text")
        if self.imaging:
            have.add("ct")
        return have


@dataclass
class Prediction:
    """What a network produces for a batch of B patients.

    hazard_logits [B, n_bins]: discrete-time hazard logits (MCAT convention, hazard = sigmoid(logit)).
    risk [B]: a Cox log-hazard (higher = worse). At least one of the two is set by survival networks.
    class_logits: label name -> [B, C] (patient level); slide_logits: label name -> [B, S, C] (slide level, slide j of
    patient b = the slide with Batch.slide_index == j, aligned with Batch.slide_labels); endpoint_hazard_logits /
    endpoint_risk: endpoint name -> [B, n_bins] / [B] for networks predicting several survival endpoints.
    horizon_logits: endpoint name (or "primary" for the primary endpoint) -> [B, H], logit of P(event by horizon h)
    for the H horizons of a `HorizonObjective` (in its order).
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
