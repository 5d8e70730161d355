"""ABMIL: gated attention multiple-instance learning over WSI patch features (Ilse et al. 2018), the WSI-only
survival and classification baseline.

    patches [B, N, D] → Linear(D→H) → ReLU → Dropout → GatedAttentionPool (masked) → Linear(H→H) → ReLU → Dropout
      → survival head (`survival=True`, the default) and/or one class head per label in `targets`

Padding never changes the output: attention is exactly 0 on padded patches (`wsi_mask` False).

Example:
    >>> net = ABMIL(ModalityDims(wsi_dim=32, n_bins=4), hidden_dim=64)
    >>> pred = net(batch)  # pred.hazard_logits [B, 4], pred.attention["patch"] [B, N]
    >>> net = ABMIL(ModalityDims(wsi_dim=32, n_classes={"subtype": 2}), targets=["subtype"], survival=False)
    >>> net(batch).class_logits["subtype"].shape  # [B, 2]
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from survlab.data.batch import Batch
from survlab.models.base import ModalityDims, Prediction
from survlab.models.blocks import GatedAttentionPool, mlp
from survlab.models.outcome import OutcomeNet


class ABMILEncoder(nn.Module):
    """Patch bag [B, N, D] + mask [B, N] → (patient embedding [B, hidden_dim], attention [B, N])."""

    def __init__(
        self, in_dim: int, hidden_dim: int = 128, attn_dim: int | None = None, dropout: float = 0.25
    ) -> None:
        super().__init__()
        self.out_dim = hidden_dim
        self.patch_fc = mlp([in_dim, hidden_dim], dropout=dropout)
        self.pool = GatedAttentionPool(hidden_dim, hidden=attn_dim or hidden_dim, dropout=dropout)
        self.rho = mlp([hidden_dim, hidden_dim], dropout=dropout)

    def forward(self, wsi: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        pooled, attn = self.pool(self.patch_fc(wsi), mask)
        return self.rho(pooled), attn


class ABMIL(OutcomeNet):
    """WSI-only attention-MIL network (survival and/or patient classification).

    Args:
        dims: cohort sizes (needs `wsi_dim`).
        hidden_dim: patch embedding / patient embedding size.
        attn_dim: hidden size of the gated attention scorer (default: hidden_dim).
        dropout: dropout after each layer (and inside the attention scorer).
        output: "hazards" → `hazard_logits` [B, n_bins] (NLL); "risk" → Cox log-hazard `risk` [B].
        targets: patient labels to classify (`class_logits[label]` [B, K]); default none; None = every label.
        survival: predict survival (the default; the head keeps its parameter names `head.linear.*`).
    """

    modalities = ("wsi",)

    def __init__(
        self,
        dims: ModalityDims,
        hidden_dim: int = 128,
        attn_dim: int | None = None,
        dropout: float = 0.25,
        output: str = "hazards",
        targets: Sequence[str] | None = (),
        survival: bool = True,
    ) -> None:
        super().__init__(dims)
        self.encoder = ABMILEncoder(dims.wsi_dim, hidden_dim, attn_dim, dropout)
        self.init_heads(hidden_dim, targets, survival, output)

    def encode(self, batch: Batch) -> Tensor:
        """Patient embedding [B, hidden_dim]."""
        return self.encoder(batch.wsi, batch.wsi_mask)[0]

    def forward(self, batch: Batch) -> Prediction:
        h, attn = self.encoder(batch.wsi, batch.wsi_mask)
        return Prediction(**self.predict_heads(h), attention={"patch": attn}, embedding=h)
