"""Shared part of the pooling MIL baselines (MeanMIL, MaxMIL): one patch layer, then outcome heads.

patches [B, N, D] → Linear(D→H) → ReLU → Dropout (`patch_fc`) → [B, N, H]; subclasses pool and apply the heads.
"""

from __future__ import annotations

from collections.abc import Sequence

from survlab.models.base import ModalityDims, OutcomeNet
from survlab.models.blocks import mlp


class PatchMIL(OutcomeNet):
    """WSI-only MIL base: `patch_fc` embeds every patch to H; heads (survival and/or class) act on H.

    Args:
        dims: cohort sizes (needs `wsi_dim`; `n_classes` for the targets).
        hidden_dim: patch embedding size H.
        dropout: dropout after the patch layer.
        targets: patient labels to classify (`class_logits[label]` [B, K]); None = the cohort's primary label.
        survival: also predict survival (`output` "hazards" → `hazard_logits` [B, n_bins]; "risk" → `risk` [B]).
        endpoints: further survival endpoints, one head each (`endpoint_hazard_logits` / `endpoint_risk`).
    """

    modalities = ("wsi",)

    def __init__(
        self,
        dims: ModalityDims,
        hidden_dim: int = 128,
        dropout: float = 0.25,
        targets: Sequence[str] | None = None,
        survival: bool = False,
        output: str = "hazards",
        endpoints: Sequence[str] | None = (),
    ) -> None:
        super().__init__(dims)
        assert dims.wsi_dim is not None  # SurvivalNet checked `modalities`
        self.patch_fc = mlp([dims.wsi_dim, hidden_dim], dropout=dropout)
        self.init_heads(hidden_dim, targets, survival, output, endpoints=endpoints)
