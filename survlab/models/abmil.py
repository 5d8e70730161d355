"""ABMIL: gated attention multiple-instance learning over WSI patch features (Ilse et al. 2018), the WSI-only
survival and classification baseline.

    patches [B, N, D] → Linear(D→H) → ReLU → Dropout → GatedAttentionPool (masked) → Linear(H→H) → ReLU → Dropout
      → survival head (`survival=True`, the default) and/or one class head per label in `targets`
    slide_targets: the same attention pooling within each slide (slide_index) → Linear → ReLU → one head per slide
      label → `slide_logits[label]` [B, S, K] (S = most slides of a patient in the batch, aligned with slide_labels)

Padding never changes the output: attention is exactly 0 on padded patches (`wsi_mask` False).

Example:
    >>> from survlab.data.sources.examples import random_batch
    >>> batch = random_batch(ModalityDims(wsi_dim=32), bag_sizes=(5, 3))
    >>> net = ABMIL(ModalityDims(wsi_dim=32, n_bins=4), hidden_dim=64)
    >>> pred = net(batch)
    >>> pred.hazard_logits.shape, pred.attention["patch"].shape  # [B, 4], [B, N]
    (torch.Size([2, 4]), torch.Size([2, 5]))
    >>> net = ABMIL(ModalityDims(wsi_dim=32, n_classes={"subtype": 2}), targets=["subtype"], survival=False)
    >>> net(batch).class_logits["subtype"].shape  # [B, 2]
    torch.Size([2, 2])
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from survlab.data.batch import Batch
from survlab.models.base import Features, ModalityDims, OutcomeNet, Prediction
from survlab.models.blocks import GatedAttentionPool, mlp, pool_per_slide
from survlab.models.heads import ClassHeads


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
        targets: patient labels to classify (`class_logits[label]` [B, K]); default none; None = the primary label.
        survival: predict survival (the default; the head keeps its parameter names `head.linear.*`).
        slide_targets: slide labels to classify per slide (`slide_logits[label]` [B, S, K]), e.g. CAMELYON17 stage.
        endpoints: further survival endpoints, one head each (`endpoint_hazard_logits` / `endpoint_risk`).
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
        slide_targets: Sequence[str] = (),
        endpoints: Sequence[str] | None = (),
    ) -> None:
        super().__init__(dims)
        assert dims.wsi_dim is not None  # SurvivalNet checked `modalities`
        self.encoder = ABMILEncoder(dims.wsi_dim, hidden_dim, attn_dim, dropout)
        unknown = [t for t in slide_targets if t not in dims.slide_n_classes]
        if unknown:
            raise ValueError(
                f"ABMIL slide_targets {unknown} are not slide labels of the cohort (it has "
                f"{list(dims.slide_n_classes) or 'none'}); declare them under data.slide_labels"
            )
        self.slide_heads = ClassHeads(hidden_dim, {t: dims.slide_n_classes[t] for t in slide_targets})
        self.init_heads(
            hidden_dim, targets, survival, output, allow_empty=bool(slide_targets), endpoints=endpoints
        )

    def forward_features(self, batch: Batch) -> Features:
        """Patient embedding [B, hidden_dim] and patch attention [B, N]."""
        h, attn = self.encoder(batch.wsi, batch.wsi_mask)
        return Features(h, attention={"patch": attn})

    def forward(self, batch: Batch) -> Prediction:
        pred = self.predict(self.forward_features(batch))
        if len(self.slide_heads):
            n_slides = (
                int(batch.n_slides.max()) if batch.n_slides is not None else int(batch.slide_index.max()) + 1
            )
            e = self.encoder
            slides, slide_attn = pool_per_slide(
                e.pool, e.patch_fc(batch.wsi), batch.wsi_mask, batch.slide_index, n_slides
            )
            pred.slide_logits = self.slide_heads(e.rho(slides))
            pred.attention["slide_patch"] = slide_attn
        return pred
