"""Mean-pooling MIL: the simplest WSI baseline — every patch weighs the same.

    patches [B, N, D] → Linear(D→H) → ReLU → Dropout → masked mean over real patches [B, H] → class heads / survival

Padding never changes the output (the mean runs over real patches only).

Example:
    >>> net = MeanMIL(ModalityDims(wsi_dim=32, n_classes={"subtype": 2}), hidden_dim=64)
    >>> net(batch).class_logits["subtype"].shape  # [B, 2]
"""

from __future__ import annotations

from collections.abc import Sequence

from survlab.data.batch import Batch
from survlab.models.base import ModalityDims, Prediction
from survlab.models.blocks import masked_mean, mlp
from survlab.models.outcome import OutcomeNet


class MeanMIL(OutcomeNet):
    """WSI-only mean-pooling MIL network.

    Args:
        dims: cohort sizes (needs `wsi_dim`; `n_classes` for the targets).
        hidden_dim: patch embedding size H.
        dropout: dropout after the patch layer.
        targets: patient labels to classify (`class_logits[label]` [B, K]); None = the cohort's primary label.
        survival: also predict survival (`output` "hazards" → `hazard_logits` [B, n_bins]; "risk" → `risk` [B]).
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
    ) -> None:
        super().__init__(dims)
        self.patch_fc = mlp([dims.wsi_dim, hidden_dim], dropout=dropout)
        self.init_heads(hidden_dim, targets, survival, output)

    def forward(self, batch: Batch) -> Prediction:
        h = masked_mean(self.patch_fc(batch.wsi), batch.wsi_mask)  # [B, H]
        return Prediction(**self.predict_heads(h), embedding=h)
