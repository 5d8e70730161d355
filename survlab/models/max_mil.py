"""Max-pooling MIL: an instance classifier scores every patch, the bag takes the maximum over its real patches.

    patches [B, N, D] → Linear(D→H) → ReLU → Dropout → heads per patch [B, N, K] → masked max over patches [B, K]

Each output entry (each class logit, each hazard bin, the Cox risk) is max-pooled separately (mi-Net style), so a
bag is called class k when its most class-k-looking patch is. Padding is never the maximum.

Example (two patients, bags of 5 and 3 patches of 32 features):
    >>> import torch
    >>> from survlab.data.batch import PatientItem, collate
    >>> from survlab.data.dims import ModalityDims
    >>> batch = collate([PatientItem("a", 0, wsi=torch.randn(5, 32)), PatientItem("b", 1, wsi=torch.randn(3, 32))])
    >>> net = MaxMIL(ModalityDims(wsi_dim=32, n_classes={"tumour": 2}), hidden_dim=64)
    >>> net(batch).class_logits["tumour"].shape  # [B, 2]
    torch.Size([2, 2])
"""

from __future__ import annotations

from typing import Any

from survlab.data.batch import Batch
from survlab.models.base import Features, Prediction
from survlab.models.blocks import masked_max
from survlab.models.patch_mil import PatchMIL


class MaxMIL(PatchMIL):
    """WSI-only max-pooling MIL network (arguments: `PatchMIL`); the heads act on every patch embedding and each
    output entry is max-pooled over the real patches (survival too: per-patch hazards / risk). So its heads act
    before the pooling: `forward` is its own, and `forward_features` is the max-pooled patch embedding [B, H]."""

    def forward_features(self, batch: Batch) -> Features:
        return Features(masked_max(self.patch_fc(batch.wsi), batch.wsi_mask))

    def forward(self, batch: Batch) -> Prediction:
        mask = batch.wsi_mask
        h = self.patch_fc(batch.wsi)  # [B, N, H]
        per_patch = self.predict_heads(
            h
        )  # class_logits[label] [B, N, K]; hazard_logits [B, N, bins] / risk [B, N]
        out: dict[str, Any] = {
            k: {name: masked_max(x, mask) for name, x in v.items()}
            if isinstance(v, dict)
            else masked_max(v, mask)
            for k, v in per_patch.items()
        }  # class_logits / endpoint_* are dicts of per-patch outputs
        return Prediction(**out, embedding=masked_max(h, mask))
