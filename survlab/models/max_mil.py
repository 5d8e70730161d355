"""Max-pooling MIL: an instance classifier scores every patch, the bag takes the maximum over its real patches.

    patches [B, N, D] → Linear(D→H) → ReLU → Dropout → heads per patch [B, N, K] → masked max over patches [B, K]

Each output entry (each class logit, each hazard bin, the Cox risk) is max-pooled separately (mi-Net style), so a
bag is called class k when its most class-k-looking patch is. Padding is never the maximum.

Example:
    >>> net = MaxMIL(ModalityDims(wsi_dim=32, n_classes={"tumour": 2}), hidden_dim=64)
    >>> net(batch).class_logits["tumour"].shape  # [B, 2]
"""

from __future__ import annotations

from collections.abc import Sequence

from survlab.data.batch import Batch
from survlab.models.base import ModalityDims, Prediction
from survlab.models.blocks import masked_max, mlp
from survlab.models.outcome import OutcomeNet


class MaxMIL(OutcomeNet):
    """WSI-only max-pooling MIL network.

    Args:
        dims: cohort sizes (needs `wsi_dim`; `n_classes` for the targets).
        hidden_dim: patch embedding size H.
        dropout: dropout after the patch layer.
        targets: patient labels to classify (`class_logits[label]` [B, K]); None = the cohort's primary label.
        survival: also predict survival (per-patch hazards / risk, max-pooled like the class logits).
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
        mask = batch.wsi_mask
        h = self.patch_fc(batch.wsi)  # [B, N, H]
        per_patch = self.predict_heads(h)  # class_logits[label] [B, N, K]; hazard_logits [B, N, bins] / risk [B, N]
        out = {k: masked_max(v, mask) for k, v in per_patch.items() if k != "class_logits"}
        out["class_logits"] = {label: masked_max(v, mask) for label, v in per_patch["class_logits"].items()}
        return Prediction(**out, embedding=masked_max(h, mask))
