"""MCAT — Multimodal Co-Attention Transformer (Chen et al., ICCV 2021) for discrete-time survival.

Pipeline (d = `dim`, G gene groups, e.g. MCAT's 6 families or P pathways):

1. `encode_tokens`: WSI projection Linear(D→d) → ReLU → Dropout → W [B, N, d];
   one SNN per gene group (widths `omic_hidden`, last = d) → omic tokens O [B, G, d]
2. `coattend`: co-attention, Q = O, K = V = W with the patch padding mask → genomics-guided path tokens [B, G, d]
   and the co-attention map [B, G, N] (0 on padding)
3. `encode_branches`: path branch = TransformerEncoder(`layers`) → GatedAttentionPool → Linear+ReLU+Dropout → h_path;
   omic branch = same structure on O → h_omic (returned with the encoded token sequences, see `MCATBranches`)
4. `fuse`: "concat" → [Linear(2d→d) → ReLU → Linear(d→d) → ReLU], or "bilinear" → Bilinear(d, d→d) → ReLU
   (a simplified stand-in for MCAT's gated BilinearFusion)
5. heads (`OutcomeNet.init_heads`, on the fused z): Linear(d→n_bins) hazard logits (`output="hazards"`) or
   Linear(d→1) Cox risk (`output="risk"`); `targets: [label]` adds class heads, `endpoints` further survival heads.

`forward_features` returns z, the attention maps and the branches (`Features.extra["branches"]`, an `MCATBranches`).
Built to be extended (PathGen's MCAT_GR adds a grade head with its own gated pool over `branches.path_tokens`):
subclass and override `predict` (call `super().predict(features)` first), no layer is duplicated.

Absent modalities (data.missing=keep; `accepts_absent` = wsi, genomics): genomics absent -> the patient's omic tokens
O are replaced by learned absent tokens [G, d] before the co-attention (the co-attention then attends from them over
the patient's patches, and the omic branch encodes them); WSI absent -> the path branch's pooled h_path is replaced by
a learned absent embedding [d] before the fusion. Either way the output does not depend on the placeholder input;
the attention maps of a WSI-absent patient are over its placeholder patch. Optional modality dropout in training.

Attention output: "coattn" [B, G, N]; "patch" [B, N] = the path branch's pooling weights over the G path tokens mapped
back to patches through the co-attention, patch_n = Σ_g pool_g · coattn[g, n] (sums to 1 over real patches, 0 on
padding); "omic" [B, G] = the omic branch's pooling weights; "path_tokens" [B, G] = the path branch's pooling weights.

Example:
    >>> from survlab.data.sources.examples import random_batch
    >>> dims = ModalityDims(wsi_dim=32, genomic_sizes=(8, 31, 49, 41, 131, 42))  # MCAT's 6 families, smaller
    >>> net = MCAT(dims, dim=32, omic_hidden=(32, 32), heads=2, ff_dim=64)
    >>> net(random_batch(dims, bag_sizes=(5, 3))).hazard_logits.shape  # [B, 4]
    torch.Size([2, 4])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from survlab.data.batch import Batch
from survlab.models.base import Features, ModalityDims, OutcomeNet
from survlab.models.blocks import AbsentModalities, CrossAttention, GatedAttentionPool, mlp, snn_encoder
from survlab.models.precision import FullPrecisionBilinear


@dataclass
class MCATBranches:
    """Outputs of the two branches: encoded token sequences [B, G, d], pooled vectors [B, d], pool weights [B, G]."""

    path_tokens: Tensor
    omic_tokens: Tensor
    h_path: Tensor
    h_omic: Tensor
    path_weights: Tensor
    omic_weights: Tensor


class TokenBranch(nn.Module):
    """TransformerEncoder over unpadded tokens → gated attention pool → Linear+ReLU+Dropout."""

    def __init__(self, dim: int, layers: int, heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=ff_dim, dropout=dropout, activation="relu", batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
        self.pool = GatedAttentionPool(dim, hidden=dim, dropout=dropout)
        self.rho = mlp([dim, dim], dropout=dropout)

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """tokens [B, G, d] → (encoded tokens [B, G, d], h [B, d], pool weights [B, G])."""
        encoded = self.encoder(tokens)
        pooled, weights = self.pool(encoded)
        return encoded, self.rho(pooled), weights


class MCAT(OutcomeNet):
    """Multimodal co-attention transformer over WSI patches and gene-group tokens.

    Hparams: dim d (MCAT 256), omic_hidden (SNN widths per group, default [d, d]; the last width is forced to d),
    coattn_heads (1 as in MCAT), layers (2), heads (8, branch transformers), ff_dim (512), dropout (0.25, WSI
    projection / branches / fusion), omic_dropout (0.25, AlphaDropout), fusion ("concat" | "bilinear"),
    output ("hazards" | "risk"), modality_dropout (0; training only: the probability that a patient's WSI or
    genomics is treated as absent, never both).
    Absent genomics: learned absent omic tokens; absent WSI: a learned absent h_path (module docstring).
    Heads (`OutcomeNet.init_heads`, from YAML): targets (patient labels to classify, `class_logits[label]`; default
    none), survival (the primary endpoint's head, default on), endpoints (further endpoints' survival heads).
    """

    modalities: ClassVar[tuple[str, ...]] = ("wsi", "genomics")
    accepts_absent: ClassVar[frozenset[str]] = frozenset({"wsi", "genomics"})
    STATE_RENAMES: ClassVar[dict[str, str]] = {"survival_head.": "head.linear."}

    def __init__(
        self,
        dims: ModalityDims,
        dim: int = 256,
        omic_hidden: Sequence[int] | None = None,
        coattn_heads: int = 1,
        layers: int = 2,
        heads: int = 8,
        ff_dim: int = 512,
        dropout: float = 0.25,
        omic_dropout: float = 0.25,
        fusion: Literal["concat", "bilinear"] = "concat",
        output: Literal["hazards", "risk"] = "hazards",
        targets: Sequence[str] | None = (),
        survival: bool = True,
        endpoints: Sequence[str] | None = (),
        modality_dropout: float = 0.0,
    ) -> None:
        super().__init__(dims)
        assert dims.wsi_dim is not None and dims.genomic_sizes is not None  # SurvivalNet checked `modalities`
        if fusion not in ("concat", "bilinear"):
            raise ValueError(f"MCAT: fusion must be 'concat' or 'bilinear', got {fusion!r}")
        if output not in ("hazards", "risk"):
            raise ValueError(f"MCAT: output must be 'hazards' or 'risk', got {output!r}")
        self.dim, self.fusion, self.output = dim, fusion, output
        hidden = [*(omic_hidden or [dim, dim])]
        hidden[-1] = dim

        self.wsi_proj = nn.Sequential(nn.Linear(dims.wsi_dim, dim), nn.ReLU(), nn.Dropout(dropout))
        self.omic_encoders = nn.ModuleList(snn_encoder(g, hidden, omic_dropout) for g in dims.genomic_sizes)
        self.coattention = CrossAttention(dim, coattn_heads)
        self.path_branch = TokenBranch(dim, layers, heads, ff_dim, dropout)
        self.omic_branch = TokenBranch(dim, layers, heads, ff_dim, dropout)
        if fusion == "concat":
            self.fusion_net = mlp([2 * dim, dim, dim], dropout=0.0)
        else:
            self.bilinear = FullPrecisionBilinear(dim, dim, dim)
            self.fusion_net = nn.Sequential(nn.ReLU(), nn.Dropout(dropout))
        self.init_heads(dim, targets, survival, output, endpoints=endpoints)
        self.absent = AbsentModalities(  # last: draws nothing from the global RNG (see AbsentModalities)
            {"genomics": (len(dims.genomic_sizes), dim), "wsi": (dim,)},
            self.accepts_absent,
            modality_dropout,
            owner=type(self).__name__,
        )

    # --- overridable stages -------------------------------------------------------------------------------------
    def encode_tokens(self, batch: Batch) -> tuple[Tensor, Tensor | None, Tensor]:
        """→ (patch tokens W [B, N, d], patch mask [B, N], omic tokens O [B, G, d])."""
        w = self.wsi_proj(batch.wsi)
        o = torch.stack([enc(x) for enc, x in zip(self.omic_encoders, batch.genomics, strict=True)], dim=1)
        return w, batch.wsi_mask, o

    def coattend(self, omic: Tensor, patches: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """Q = omic tokens, K = V = patches (masked) → (guided path tokens [B, G, d], co-attention [B, G, N])."""
        return self.coattention(omic, patches, mask)

    def encode_branches(self, path_tokens: Tensor, omic_tokens: Tensor) -> MCATBranches:
        """Both transformer branches with gated pooling."""
        p_seq, h_path, p_w = self.path_branch(path_tokens)
        o_seq, h_omic, o_w = self.omic_branch(omic_tokens)
        return MCATBranches(p_seq, o_seq, h_path, h_omic, p_w, o_w)

    def fuse(self, h_path: Tensor, h_omic: Tensor) -> Tensor:
        """[B, d] × [B, d] → fused embedding [B, d]."""
        if self.fusion == "concat":
            return self.fusion_net(torch.cat([h_path, h_omic], dim=-1))
        return self.fusion_net(self.bilinear(h_path, h_omic))

    # --- the trunk ------------------------------------------------------------------------------------------------
    def forward_features(self, batch: Batch) -> Features:
        """Fused z [B, d], attention maps, and the branches (`extra["branches"]`) for subclasses' own heads."""
        present = self.absent.presence(batch)
        w, mask, o = self.encode_tokens(batch)
        o = self.absent("genomics", o, present)  # [B, G, d]: absent tokens for patients without genomics
        path_tokens, coattn = self.coattend(o, w, mask)
        branches = self.encode_branches(path_tokens, o)
        branches = replace(branches, h_path=self.absent("wsi", branches.h_path, present))
        z = self.fuse(branches.h_path, branches.h_omic)
        patch = torch.bmm(branches.path_weights.unsqueeze(1), coattn).squeeze(1)  # [B, N]
        attention = {
            "coattn": coattn,
            "patch": patch,
            "omic": branches.omic_weights,
            "path_tokens": branches.path_weights,
        }
        return Features(z, attention=attention, extra={"branches": branches})


__all__ = ["MCAT", "MCATBranches", "TokenBranch"]
