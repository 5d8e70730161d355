"""GGMF — genome-guided multimodal fusion of WSI patch features and pathway expression (spec: docs/specs/ggmf.md).

Pipeline (d = `dim`, H = `heads`, P pathways, k = max(1, ⌊topk_ratio·P⌋)):

1. WSI projection Linear(D→d) → ReLU → Dropout                                     W [B, N, d]
2. one SNN per pathway (Linear → ELU → AlphaDropout, twice)                          G [B, P, d]
3. key-gene self-attention over the P pathway tokens (LayerNorm, joint QKV, H heads, dropout on the map,
   output projection; no residual, no FFN). Importance of token j = attention it receives, summed over heads and
   averaged over queries (computed before dropout, so Σ_j importance = H per patient). Hard top-k by importance,
   gathered from the self-attention output and ordered by importance                 Ĝ [B, k, d]
4. genome-guided WSI re-encoding: cross-attention Q = Ĝ, K = V = W with the patch padding mask → A [B, k, d];
   residual R = W average-pooled into k contiguous bins over the REAL patches only; P̂ = LayerNorm(A + R)
5. residual cross-modal interaction: p = mean_k P̂, g = mean_k Ĝ, b = Bilinear(p, g),
   f = [Linear → ReLU → Dropout] × 2 (b), z = LayerNorm(f + p)
6. head Linear(d → n_bins) (discrete-time hazard logits) or Linear(d → 1) (`output="risk"`, Cox); any other head
   from the shared constructor on z (e.g. `targets: [grade]` → class_logits["grade"], `survival: false` for a
   classification-only run; survlab/models/base.py `OutcomeNet`).

Absent modalities (data.missing=keep; `accepts_absent` = wsi, genomics): genomics absent -> the patient's pathway
tokens G are replaced by learned absent tokens [P, d] before the key-pathway self-attention (top-k and the
genome-guided cross-attention then run from them); WSI absent -> the pooled guided WSI vector p (mean_k P̂) is replaced
by a learned absent embedding [d] before the bilinear interaction and the residual. Either way the output does not
depend on the placeholder input. Optional modality dropout in training (`modality_dropout`).

Departures from the reference code (its known defects): the padding mask is used by the cross-attention and the
residual pooling, so a bag alone and the same bag padded inside a batch give the same output.

Example:
    >>> from survlab.data.sources.examples import random_batch
    >>> dims = ModalityDims(wsi_dim=32, genomic_sizes=(12, 40, 7))
    >>> net = GGMF(dims, dim=64, heads=4)
    >>> pred = net(random_batch(dims, bag_sizes=(6, 4)))
    >>> pred.hazard_logits.shape, sorted(pred.attention)  # [B, 4]
    (torch.Size([2, 4]), ['patch', 'pathway', 'topk'])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from survlab.data.batch import Batch
from survlab.models.base import Features, ModalityDims, OutcomeNet
from survlab.models.blocks import (
    AbsentModalities,
    CrossAttention,
    masked_adaptive_avg_pool,
    masked_softmax,
    snn_encoder,
)
from survlab.models.precision import FullPrecisionBilinear


class KeyTokenSelfAttention(nn.Module):
    """Multi-head self-attention over unpadded tokens [B, P, d] that also reports per-token importance.

    LayerNorm → joint QKV → softmax(QKᵀ/√(d/H)) → dropout on the map → output projection; no residual, no FFN.
    Returns (out [B, P, d], importance [B, P]) where importance_j = Σ_h mean_i A[h, i, j] (pre-dropout map),
    so each row of importance sums to H.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.1) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"GGMF: dim={dim} must be divisible by heads={heads}")
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_drop = nn.Dropout(dropout)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        b, p, d = x.shape
        h = self.heads
        q, k, v = (
            self.qkv(self.norm(x)).view(b, p, 3, h, d // h).permute(2, 0, 3, 1, 4)
        )  # each [B, H, P, d/H]
        # fp32 map (also under autocast): bf16 importances tie and flip the hard top-k
        attn = masked_softmax(q @ k.transpose(-2, -1) / math.sqrt(d // h), None)  # [B, H, P(query), P(key)]
        importance = attn.sum(dim=1).mean(dim=1)  # received attention: sum over heads, mean over queries
        out = (self.attn_drop(attn).to(v.dtype) @ v).transpose(1, 2).reshape(b, p, d)
        return self.proj(out), importance


class GGMF(OutcomeNet):
    """Genome-guided multimodal fusion (WSI + pathway tokens) for discrete-time survival (and/or classification).

    Hparams: dim d (paper 256), heads (16, used by self- and cross-attention), topk_ratio (0.8), wsi_dropout (0.1),
    omic_dropout (0.25, AlphaDropout of the pathway SNNs), attn_dropout (0.1, both attention maps),
    fusion_dropout (0.1), output ("hazards" → `hazard_logits` [B, n_bins]; "risk" → Cox `risk` [B]),
    modality_dropout (0; training only: the probability that a patient's WSI or genomics is treated as absent, never
    both). Absent genomics: learned absent pathway tokens; absent WSI: a learned absent p (module docstring).

    Prediction.attention: "pathway" [B, P] importance (rows sum to `heads`), "topk" [B, k] long indices of the kept
    pathways ordered by importance, "patch" [B, N] cross-attention averaged over heads and the k queries (rows sum to
    1 over real patches, exactly 0 on padding). Prediction.embedding: z [B, d].
    Heads (`OutcomeNet.init_heads`, from YAML): targets (patient labels to classify, `class_logits[label]`; default
    none), survival (the primary endpoint's head, default on), endpoints (further endpoints' survival heads).
    """

    modalities: ClassVar[tuple[str, ...]] = ("wsi", "genomics")
    accepts_absent: ClassVar[frozenset[str]] = frozenset({"wsi", "genomics"})
    STATE_RENAMES: ClassVar[dict[str, str]] = {
        "head.weight": "head.linear.weight",
        "head.bias": "head.linear.bias",
    }

    def __init__(
        self,
        dims: ModalityDims,
        dim: int = 256,
        heads: int = 16,
        topk_ratio: float = 0.8,
        wsi_dropout: float = 0.1,
        omic_dropout: float = 0.25,
        attn_dropout: float = 0.1,
        fusion_dropout: float = 0.1,
        output: Literal["hazards", "risk"] = "hazards",
        targets: Sequence[str] | None = (),
        survival: bool = True,
        endpoints: Sequence[str] | None = (),
        modality_dropout: float = 0.0,
    ) -> None:
        super().__init__(dims)
        assert dims.wsi_dim is not None and dims.genomic_sizes is not None  # SurvivalNet checked `modalities`
        if output not in ("hazards", "risk"):
            raise ValueError(f"GGMF: output must be 'hazards' or 'risk', got {output!r}")
        if not 0.0 < topk_ratio <= 1.0:
            raise ValueError(f"GGMF: topk_ratio must be in (0, 1], got {topk_ratio}")
        self.output = output
        n_paths = len(dims.genomic_sizes)
        self.k = max(1, math.floor(topk_ratio * n_paths))

        self.wsi_proj = nn.Sequential(nn.Linear(dims.wsi_dim, dim), nn.ReLU(), nn.Dropout(wsi_dropout))
        self.pathway_encoders = nn.ModuleList(
            snn_encoder(g, [dim, dim], omic_dropout) for g in dims.genomic_sizes
        )
        self.key_attention = KeyTokenSelfAttention(dim, heads, attn_dropout)
        self.guided_attention = CrossAttention(dim, heads, attn_dropout)
        self.guided_norm = nn.LayerNorm(dim)
        self.bilinear = FullPrecisionBilinear(dim, dim, dim)
        self.interaction = nn.Sequential(
            nn.Linear(dim, dim),
            nn.ReLU(),
            nn.Dropout(fusion_dropout),
            nn.Linear(dim, dim),
            nn.ReLU(),
            nn.Dropout(fusion_dropout),
        )
        self.out_norm = nn.LayerNorm(dim)
        self.init_heads(dim, targets, survival, output, endpoints=endpoints)
        self.absent = AbsentModalities(  # last: draws nothing from the global RNG (see AbsentModalities)
            {"genomics": (n_paths, dim), "wsi": (dim,)}, self.accepts_absent, modality_dropout, owner="GGMF"
        )

    def encode_pathways(self, genomics: list[Tensor]) -> Tensor:
        """Per-pathway SNNs: list of [B, g_i] → G [B, P, d]."""
        return torch.stack([enc(x) for enc, x in zip(self.pathway_encoders, genomics, strict=True)], dim=1)

    def select_key_pathways(self, tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Self-attention + hard top-k: G [B, P, d] → (Ĝ [B, k, d], importance [B, P], indices [B, k])."""
        attended, importance = self.key_attention(tokens)
        idx = torch.topk(importance, self.k, dim=-1, sorted=True).indices  # descending importance
        selected = torch.gather(attended, 1, idx.unsqueeze(-1).expand(-1, -1, attended.shape[-1]))
        return selected, importance, idx

    def forward_features(self, batch: Batch) -> Features:
        """z [B, d] and the attention maps "pathway" [B, P], "topk" [B, k], "patch" [B, N]."""
        present = self.absent.presence(batch)
        mask = batch.wsi_mask
        w = self.wsi_proj(batch.wsi)  # [B, N, d]
        g = self.absent("genomics", self.encode_pathways(batch.genomics), present)  # [B, P, d]
        g_hat, importance, idx = self.select_key_pathways(g)  # [B, k, d]

        a, patch_attn = self.guided_attention(g_hat, w, mask)  # [B, k, d], [B, k, N]
        r = masked_adaptive_avg_pool(w, mask, self.k)  # [B, k, d], real patches only
        p_hat = self.guided_norm(a + r)

        p, gm = self.absent("wsi", p_hat.mean(dim=1), present), g_hat.mean(dim=1)
        f = self.interaction(self.bilinear(p, gm))
        z = self.out_norm(f + p)
        return Features(z, attention={"pathway": importance, "topk": idx, "patch": patch_attn.mean(dim=1)})


__all__ = ["GGMF", "KeyTokenSelfAttention"]
