"""MM-DLS (HierMM_DLS): hierarchical multi-task network on CT lesion / lung-context stacks + PET + radiomics +
clinical tables -> subtype, TNM group, DFS and OS risks and 1/3/5-year horizon logits (docs/specs/mmdls.md; interval
hazards that `HorizonObjective` cumulates into P(event by 1 / 3 / 5 years), monotone in the horizon).

    lesion stack [B, S, H, W] --SliceEncoder--> [B, S, d] --ResidualSelfAttention (slice mask)--> masked mean [B, d]
    space stack  [B, S, H, W] --SliceEncoder (own weights)--> ... ------------------------------> [B, d]
    each stack embedding [B, d] --BatchNorm1d (running statistics of the training patients; `ct_norm`)--> [B, d]
    concat(lesion d, space d, radiomics -> d, PET [P], clinical [C]) -> Linear 256 -> ReLU -> Dropout -> Linear d -> ReLU = h
    stage 1: class_logits[label] = Linear(h) for every task label (subtype [2], tnm [3])
    soft task embeddings: softmax(logits) @ Embedding(K, e) per label
    stage 2: concat(h, embeddings) -> Linear d -> ReLU -> Dropout = g;
             endpoint_risk[ep] = Linear(g) [B], horizon_logits[ep] = Linear(g) [B, H] for every endpoint (DFS, OS)

The primary endpoint (the cohort's first) is also returned as `risk` and `horizon_logits["primary"]`. Padded slices
(mask False) never reach the output: per-slice convolutions, key-masked attention and a masked mean.
Absent PET (data.missing=keep; `accepts_absent` = pet): the PET vector of a patient without PET is replaced by a learned
absent vector of the same width before the concat (the CT stacks, radiomics and clinical are always there); optional
modality dropout of PET in training (`modality_dropout`).
Option `cross_attention: true` adds the lesion <-> space cross-attention the authors describe (unused in their code).

Deviation from docs/specs/mmdls.md ("Concat lesion 128 + space 128 + radiomics-projection 128 + PET 5 + clinical 6"): the
lesion and space embeddings are standardised (BatchNorm1d) before the concat, as the tables are z-scored with the
training patients' statistics. Without it (`ct_norm: none`, the reference) the pooled CT embeddings differ between
patients by ~1e-3 (median between-patient SD 0.0007 / 0.0015 at initialisation on the synthetic cohort, against 0.49
for the z-scored clinical columns), although a linear probe on them recovers the image-only risk part (R^2 0.98): the
fusion layer sees the CT as a constant and short training never learns the image-only signal (zeroing the CT at test
left the OS C-index unchanged).

Example:
    >>> net = MMDLS(ModalityDims(clinical_dim=9, n_classes={"subtype": 2, "tnm": 3}, endpoints=("os", "dfs"),
    ...             imaging={"stack_length": 8, "image_size": 32, "radiomics": 128, "pet": 5}))
    >>> pred = net(batch); pred.endpoint_risk["dfs"].shape, pred.horizon_logits["os"].shape  # doctest: +SKIP

(`batch`: CT stacks, PET and radiomics in `batch.extra`, as survlab.data.modalities.imaging builds them; tests/models/test_mmdls.py
runs it.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from survlab.data.batch import Batch
from survlab.models.base import ModalityDims, Prediction, SurvivalNet
from survlab.models.blocks import AbsentModalities, CrossAttention, ResidualSelfAttention, masked_mean, mlp
from survlab.models.heads import ClassHeads, resolve_targets
from survlab.models.precision import FullPrecisionLinear


class SliceEncoder(nn.Module):
    """Per-slice CNN: conv3x3 1->32, ReLU, conv3x3 32->64, ReLU, global average pool, Linear 64->dim, ReLU.
    [B, S, H, W] -> [B, S, dim] (each slice on its own)."""

    def __init__(self, dim: int = 128, channels: Sequence[int] = (32, 64)) -> None:
        super().__init__()
        c1, c2 = (int(c) for c in channels)
        self.conv = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.proj = nn.Sequential(nn.Linear(c2, dim), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        b, s = x.shape[:2]
        return self.proj(self.conv(x.reshape(b * s, 1, *x.shape[2:]))).reshape(b, s, -1)


class SliceFusion(nn.Module):
    """Self-attention over slices (key-masked, residual), then the masked mean: [B, S, d], mask [B, S] -> [B, d]."""

    def __init__(self, dim: int, heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.attn = ResidualSelfAttention(dim, heads, dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return masked_mean(self.attn(x, mask), mask)


class MMDLS(SurvivalNet):
    """MM-DLS multi-task network (see module docstring).

    Args:
        dims: cohort sizes (needs `imaging` and `clinical_dim`; task labels in `n_classes`; `endpoints`).
        dim: width d of slice embeddings and the fused representation (spec: 128).
        hidden: width of the first fusion layer (spec: 256).
        heads, attn_dropout: slice attention (spec: 4, 0.1).
        dropout: fusion / stage-2 dropout (spec: 0.3).
        labels: the stage-1 task labels, each with a soft task embedding (spec: subtype, tnm).
        task_embed_dim: size of each soft task embedding (spec: 32).
        endpoints: survival endpoints with a risk and a horizon head (None = every endpoint of the cohort).
        horizons: the horizons of the horizon heads (only their number matters here; the objective owns the times).
        cross_attention: lesion tokens attend to space tokens and vice versa before pooling.
        ct_norm: ``batch`` standardises the lesion / space embeddings (BatchNorm1d) before fusion; ``none`` = the
            reference (see the module docstring for why survlab does not default to it).
        modality_dropout: training only, the probability that a patient's PET is treated as absent; 0 = off.

    A patient without PET (`Batch.has("pet")`) gets the learned absent PET vector in place of its placeholder.
    """

    modalities = ("ct", "clinical")
    accepts_absent: ClassVar[frozenset[str]] = frozenset({"pet"})

    def __init__(
        self,
        dims: ModalityDims,
        dim: int = 128,
        hidden: int = 256,
        heads: int = 4,
        attn_dropout: float = 0.1,
        dropout: float = 0.3,
        labels: Sequence[str] | None = ("subtype", "tnm"),
        task_embed_dim: int = 32,
        endpoints: Sequence[str] | None = None,
        horizons: Sequence[float] = (12, 36, 60),
        cross_attention: bool = False,
        ct_norm: str = "batch",
        modality_dropout: float = 0.0,
    ) -> None:
        super().__init__(dims)
        if ct_norm not in ("batch", "none"):
            raise ValueError(f"MMDLS ct_norm={ct_norm!r}: use 'batch' (standardised CT embeddings) or 'none'")
        self.ct_norm = nn.ModuleList(
            [nn.BatchNorm1d(dim) if ct_norm == "batch" else nn.Identity() for _ in range(2)]
        )
        img = dims.imaging or {}
        self.lesion_encoder, self.space_encoder = SliceEncoder(dim), SliceEncoder(dim)
        self.lesion_fusion = SliceFusion(dim, heads, attn_dropout)
        self.space_fusion = SliceFusion(dim, heads, attn_dropout)
        self.cross = (
            nn.ModuleList([CrossAttention(dim, heads, attn_dropout) for _ in range(2)])
            if cross_attention
            else None
        )
        n_rad, n_pet = int(img.get("radiomics", 0)), int(img.get("pet", 0))
        self.radiomics_proj = nn.Sequential(nn.Linear(n_rad, dim), nn.ReLU()) if n_rad else None
        fused_in = 2 * dim + (dim if n_rad else 0) + n_pet + int(dims.clinical_dim or 0)
        self.fusion = nn.Sequential(*mlp([fused_in, hidden], dropout), nn.Linear(hidden, dim), nn.ReLU())
        self.labels = resolve_targets(type(self).__name__, labels, dims.n_classes, dims.primary_label)
        self.class_heads = ClassHeads(dim, self.labels)
        self.task_embeddings = nn.ModuleDict(
            {n: nn.Embedding(k, task_embed_dim) for n, k in self.labels.items()}
        )
        self.stage2 = mlp([dim + task_embed_dim * len(self.labels), dim], dropout)
        self.endpoints = tuple(endpoints) if endpoints is not None else tuple(dims.endpoints)
        unknown = [e for e in self.endpoints if e not in dims.endpoints]
        if unknown or not self.endpoints:
            raise ValueError(
                f"MMDLS endpoints {list(self.endpoints)} must be survival endpoints of the cohort "
                f"({list(dims.endpoints) or 'none'}); fix model.net.endpoints or data.endpoints"
            )
        self.risk_heads = nn.ModuleDict({e: FullPrecisionLinear(dim, 1) for e in self.endpoints})
        self.horizon_heads = nn.ModuleDict(
            {e: FullPrecisionLinear(dim, len(horizons)) for e in self.endpoints}
        )
        self.absent = AbsentModalities(  # last: draws nothing from the global RNG (see AbsentModalities)
            {"pet": (n_pet,)} if n_pet else {},
            self.accepts_absent,
            modality_dropout,
            anchored=True,
            owner="MMDLS",
        )

    def encode_stacks(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Lesion and space stack embeddings [B, d] each."""
        ex = batch.extra
        lesion_mask, space_mask = ex["ct_lesion_mask"], ex["ct_space_mask"]
        lesion, space = self.lesion_encoder(ex["ct_lesion"]), self.space_encoder(ex["ct_space"])
        if self.cross is not None:
            lesion = lesion + self.cross[0](lesion, space, space_mask, need_weights=False)[0]
            space = space + self.cross[1](space, lesion, lesion_mask, need_weights=False)[0]
        lesion, space = self.lesion_fusion(lesion, lesion_mask), self.space_fusion(space, space_mask)
        return self.ct_norm[0](lesion), self.ct_norm[1](space)

    def forward(self, batch: Batch) -> Prediction:
        lesion, space = self.encode_stacks(batch)
        parts = [lesion, space]
        if self.radiomics_proj is not None:
            parts.append(self.radiomics_proj(batch.extra["radiomics"]))
        if "pet" in batch.extra:
            parts.append(self.absent("pet", batch.extra["pet"], self.absent.presence(batch)))
        if batch.clinical is not None:
            parts.append(batch.clinical)
        h = self.fusion(torch.cat([p.to(lesion.dtype) for p in parts], dim=-1))
        logits = self.class_heads(h)
        soft = [
            torch.softmax(logits[n].float(), dim=-1).to(h.dtype) @ self.task_embeddings[n].weight.to(h.dtype)
            for n in self.labels
        ]
        g = self.stage2(torch.cat([h, *soft], dim=-1))
        risk = {e: head(g).squeeze(-1) for e, head in self.risk_heads.items()}
        horizons = {e: head(g) for e, head in self.horizon_heads.items()}
        primary = self.dims.endpoints[0] if self.dims.endpoints else None
        if primary in risk:
            horizons["primary"] = horizons[primary]
        return Prediction(
            risk=risk.get(primary),
            class_logits=logits,
            endpoint_risk=risk,
            horizon_logits=horizons,
            embedding=g,
        )


__all__ = ["MMDLS", "SliceEncoder", "SliceFusion"]
