"""Mean-pooling MIL: the simplest WSI baseline — every patch weighs the same.

    patches [B, N, D] → Linear(D→H) → ReLU → Dropout → masked mean over real patches [B, H] → class heads / survival

Padding never changes the output (the mean runs over real patches only).

Example (two patients, bags of 5 and 3 patches of 32 features):
    >>> import torch
    >>> from survlab.data.batch import PatientItem, collate
    >>> from survlab.data.dims import ModalityDims
    >>> batch = collate([PatientItem("a", 0, wsi=torch.randn(5, 32)), PatientItem("b", 1, wsi=torch.randn(3, 32))])
    >>> net = MeanMIL(ModalityDims(wsi_dim=32, n_classes={"subtype": 2}), hidden_dim=64)
    >>> net(batch).class_logits["subtype"].shape  # [B, 2]
    torch.Size([2, 2])
"""

from __future__ import annotations

from survlab.data.batch import Batch
from survlab.models.base import Features
from survlab.models.blocks import masked_mean
from survlab.models.patch_mil import PatchMIL


class MeanMIL(PatchMIL):
    """WSI-only mean-pooling MIL network (arguments: `PatchMIL`); the heads act on the mean patch embedding."""

    def forward_features(self, batch: Batch) -> Features:
        """Mean of the real patches' embeddings [B, H]."""
        return Features(masked_mean(self.patch_fc(batch.wsi), batch.wsi_mask))
