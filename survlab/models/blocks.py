"""Shared building blocks for every architecture: masked pooling, gated attention MIL pooling, SNN blocks,
cross-attention with key padding masks. Masks are boolean with True = real token (as in `Batch.wsi_mask`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from survlab.data.batch import Batch
from survlab.models.precision import at_least_fp32, full_precision


def masked_softmax(scores: Tensor, mask: Tensor | None, dim: int = -1) -> Tensor:
    """Softmax over `dim` ignoring positions where mask is False (they get weight exactly 0).

    Computed in fp32 (bf16/fp16 scores are lifted; fp64 stays fp64), so weights over thousands of patches sum to 1
    under autocast too; the result is fp32 (the attention map a network reports).
    """
    scores = at_least_fp32(scores)
    if mask is None:
        return torch.softmax(scores, dim=dim)
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=dim).masked_fill(~mask, 0.0)


def masked_adaptive_avg_pool(x: Tensor, mask: Tensor | None, n_bins: int) -> Tensor:
    """Average real tokens of x [B, N, D] into `n_bins` contiguous bins per bag (like adaptive_avg_pool1d over
    each bag's OWN length, so padding never leaks in); -> [B, n_bins, D] in x's dtype.

    Bin boundaries are exact integer arithmetic and the averages are taken in fp32 (autocast off), so a bf16/fp16
    bag under autocast pools exactly the patches an fp32 one does (bf16 cannot count past 256: in the activation
    dtype a 3,001-patch bag had patches in the wrong bins, and fp16 overflowed k·L > 65504 into empty bins).
    """
    b, n, _ = x.shape
    lengths = mask.sum(dim=1) if mask is not None else torch.full((b,), n, device=x.device)
    length = lengths.long().view(b, 1, 1)
    # bin k of a bag of length L covers [floor(k L / n_bins), ceil((k+1) L / n_bins))
    k = torch.arange(n_bins, device=x.device).view(1, n_bins, 1)
    start = torch.div(k * length, n_bins, rounding_mode="floor")
    end = torch.div((k + 1) * length + n_bins - 1, n_bins, rounding_mode="floor")
    pos = torch.arange(n, device=x.device).view(1, 1, n)
    member = (pos >= start) & (pos < end)  # [B, n_bins, N]
    if mask is not None:
        member = member & mask.unsqueeze(1)
    w = member.to(torch.promote_types(x.dtype, torch.float32))
    with full_precision(x.device):
        pooled = torch.bmm(w, x.to(w.dtype)) / w.sum(dim=-1, keepdim=True).clamp_min(1.0)
    return pooled.to(x.dtype)


def masked_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of the real tokens of x [B, N, ...] (mask [B, N], True = real) -> [B, ...]; padding never leaks in.

    >>> x = torch.tensor([[[1.0], [3.0], [100.0]]])          # one bag: 2 real patches + 1 padded
    >>> masked_mean(x, torch.tensor([[True, True, False]]))
    tensor([[2.]])
    """
    if mask is None:
        return x.mean(dim=1)
    w = mask.to(x.dtype).view(*mask.shape, *([1] * (x.dim() - 2)))
    return (x * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)


def masked_max(x: Tensor, mask: Tensor | None) -> Tensor:
    """Maximum over the real tokens of x [B, N, ...] (mask [B, N], True = real) -> [B, ...], taken separately per
    trailing entry (e.g. per class logit); padding is never the maximum.

    >>> x = torch.tensor([[[1.0, -5.0], [-2.0, 4.0], [9.0, 9.0]]])   # 2 real patches x 2 logits + 1 padded
    >>> masked_max(x, torch.tensor([[True, True, False]]))
    tensor([[1., 4.]])
    """
    if mask is None:
        return x.amax(dim=1)
    keep = mask.view(*mask.shape, *([1] * (x.dim() - 2)))
    return x.masked_fill(~keep, float("-inf")).amax(dim=1)


def mlp(
    dims: Sequence[int],
    dropout: float = 0.0,
    act: type[nn.Module] = nn.ReLU,
    last_act: bool = True,
    drop: type[nn.Module] = nn.Dropout,
) -> nn.Sequential:
    """Linear → act → Dropout stack through `dims` (e.g. [in, 256, 256]); the last activation is optional; `drop`
    e.g. nn.AlphaDropout (PathGen's Mish + AlphaDropout blocks)."""
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(d_in, d_out))
        if last_act or i < len(dims) - 2:
            layers += [act(), drop(dropout)]
    return nn.Sequential(*layers)


class SNNBlock(nn.Sequential):
    """Self-normalising block: Linear → ELU → AlphaDropout (Klambauer et al.; the SNN/MCAT genomic encoder)."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.25) -> None:
        linear = nn.Linear(in_dim, out_dim)
        super().__init__(linear, nn.ELU(), nn.AlphaDropout(dropout))
        nn.init.normal_(linear.weight, std=1.0 / math.sqrt(in_dim))  # LeCun normal, as SNNs require
        nn.init.zeros_(linear.bias)


def snn_encoder(in_dim: int, hidden: Sequence[int], dropout: float = 0.25) -> nn.Sequential:
    """Stack of SNNBlocks in_dim → hidden[0] → ... → hidden[-1]."""
    dims = [in_dim, *hidden]
    return nn.Sequential(*(SNNBlock(a, b, dropout) for a, b in zip(dims[:-1], dims[1:], strict=True)))


class GatedAttentionPool(nn.Module):
    """Gated attention MIL pooling (Ilse et al. 2018): a_i ∝ exp(w·(tanh(V h_i) ⊙ σ(U h_i))).

    x [B, N, D], mask [B, N] → (pooled [B, D], attention [B, N] summing to 1 over real tokens, 0 on padding).
    """

    def __init__(self, dim: int, hidden: int = 128, dropout: float = 0.0) -> None:
        super().__init__()
        self.value = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Dropout(dropout))
        self.gate = nn.Sequential(nn.Linear(dim, hidden), nn.Sigmoid(), nn.Dropout(dropout))
        self.score = nn.Linear(hidden, 1)

    def scores(self, x: Tensor) -> Tensor:
        """Unnormalised attention score of every token: x [..., N, D] -> [..., N] (ranking patches, top-k)."""
        return self.score(self.value(x) * self.gate(x)).squeeze(-1)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        scores = self.scores(x)  # [B, N]
        attn = masked_softmax(scores, mask, dim=-1)  # fp32
        return torch.bmm(attn.unsqueeze(1).to(x.dtype), x).squeeze(1), attn


class CrossAttention(nn.Module):
    """Multi-head attention of queries [B, Q, D] over keys/values [B, N, D_kv] with a key mask [B, N].

    Returns (out [B, Q, D], attention [B, Q, N] averaged over heads, exactly 0 on padded keys).
    Padded keys never influence the output, so a bag alone and padded inside a batch give the same result.
    """

    def __init__(self, dim: int, heads: int = 8, dropout: float = 0.0, kv_dim: int | None = None) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(
            dim, heads, dropout=dropout, batch_first=True, kdim=kv_dim or dim, vdim=kv_dim or dim
        )

    def forward(
        self, query: Tensor, context: Tensor, context_mask: Tensor | None = None, need_weights: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        key_padding_mask = None if context_mask is None else ~context_mask
        out, weights = self.attn(
            query,
            context,
            context,
            key_padding_mask=key_padding_mask,
            need_weights=need_weights,
            average_attn_weights=True,
        )
        return out, weights


def pool_per_slide(
    pool: GatedAttentionPool, x: Tensor, mask: Tensor | None, slide_index: Tensor, n_slides: int
) -> tuple[Tensor, Tensor]:
    """Attention-pool each slide of each bag on its own: x [B, N, H], mask [B, N], slide_index [B, N] (-1 on padding)
    -> (slide embeddings [B, S, H], attention [B, S, N] summing to 1 over the slide's real patches). A slide slot with
    no patch (fewer slides than S) gets a zero embedding and zero attention."""
    real = mask if mask is not None else torch.ones_like(slide_index, dtype=torch.bool)
    pooled, attn = zip(*(pool(x, real & (slide_index == s)) for s in range(n_slides)), strict=True)
    return torch.stack(pooled, dim=1), torch.stack(attn, dim=1)


def init_trunc_normal(module: nn.Module, std: float = 0.02) -> None:
    """ViT-style init used by TransMIL/CrossFusion: Linear trunc-normal(std) + zero bias, LayerNorm (1, 0)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class AbsentModalities(nn.Module):
    """Learned stand-ins for absent modalities (data.missing=keep) and modality dropout: the one mechanism every
    network that accepts absence (`accepts_absent`) uses.

    `shapes`: modality -> shape of what it replaces per patient, e.g. {"wsi": (128,)} for a WSI embedding [B, 128]
    or {"genomics": (G, d)} for genomic tokens [B, G, d]; modalities not in `accepted` get no stand-in.
    `presence(batch)` -> modality -> [B] bool (True = use the patient's own input); `self(m, x, present)` replaces
    the rows of x [B, *shape] of patients without m by the learned stand-in (torch.where, so nothing computed from
    a placeholder reaches the output or the gradients of those rows). A modality absent from `present` (no patient
    marked, no dropout) leaves x untouched, bit for bit (in training the stand-in still joins the graph with a zero
    gradient, so DDP finds every parameter used).

    Modality dropout (`dropout` = p, training only): each accepted modality of each patient that has it is marked
    absent with probability p, but never all of a patient's modalities unless the network also reads an input that
    is never absent (`anchored`: clinical, CT): a patient who would lose all is given one of its present ones back,
    chosen at random (so with two modalities the realised rate per modality is p - p^2/2). Eval mode never drops.

    The stand-ins are drawn N(0, std^2) from a private generator seeded by `torch.initial_seed()` (the run's seed),
    so creating them draws nothing from the global RNG: the other parameters' initialisation and the dropout masks
    of a run without absent patients are unchanged. A checkpoint written before the stand-ins existed loads with
    them at that initial value (pre-hook), as such a run never had an absent patient to train them on.
    """

    def __init__(
        self,
        shapes: Mapping[str, Sequence[int]],
        accepted: Collection[str],
        dropout: float = 0.0,
        anchored: bool = False,
        std: float = 0.02,
        owner: str = "network",
    ) -> None:
        super().__init__()
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"{owner}: model.net.modality_dropout must be in [0, 1), got {dropout}")
        if dropout and not accepted:
            raise ValueError(
                f"{owner} accepts no absent modality, so model.net.modality_dropout must be 0 (got {dropout}); "
                f"use a network that accepts absence (late_fusion, mcat, ggmf, coxmlp, mmdls)"
            )
        self.dropout, self.anchored = float(dropout), anchored
        gen = torch.Generator().manual_seed(torch.initial_seed())
        self.embeddings = nn.ParameterDict(
            {
                m: nn.Parameter(torch.randn(*(int(n) for n in shape), generator=gen) * std)
                for m, shape in shapes.items()
                if m in accepted
            }
        )
        self.register_load_state_dict_pre_hook(_keep_initial_stand_ins)

    def presence(self, batch: Batch) -> dict[str, Tensor]:
        """Modality -> [B] bool for each stand-in modality the batch marks or dropout hits (others: all present)."""
        present = {m: batch.present[m] for m in self.embeddings if m in batch.present}
        if not (self.training and self.dropout > 0.0 and len(self.embeddings)):
            return present
        names = list(self.embeddings)
        has = torch.stack([batch.has(m) for m in names], dim=1)  # [B, M]
        kept = has & (torch.rand(has.shape, device=has.device) >= self.dropout)
        if not self.anchored:
            lost = has.any(dim=1) & ~kept.any(dim=1)
            pick = torch.rand(has.shape, device=has.device).masked_fill(~has, -1.0).argmax(dim=1)
            kept = kept | (lost.unsqueeze(1) & nn.functional.one_hot(pick, len(names)).bool())
        return {m: kept[:, i] for i, m in enumerate(names)}

    def forward(self, modality: str, x: Tensor, present: Mapping[str, Tensor]) -> Tensor:
        """x [B, *shape] with the rows of patients without `modality` replaced by its stand-in [*shape]."""
        if modality not in self.embeddings:
            return x
        mask = present.get(modality)
        if mask is None:
            if not (self.training and torch.is_grad_enabled()):
                return x
            # nobody absent: still in the graph (zero gradient), as DDP without find_unused_parameters requires
            # every parameter in every step; torch.where of an all-True mask returns x bit for bit
            mask = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        stand_in = self.embeddings[modality].to(x.dtype).expand_as(x)
        return torch.where(mask.to(x.device).view(-1, *([1] * (x.dim() - 1))), x, stand_in)


def _keep_initial_stand_ins(
    module: AbsentModalities, state_dict: dict[str, Any], prefix: str, *_: Any
) -> None:
    """Load-state-dict pre-hook: a checkpoint without the stand-ins (written before they existed) keeps them at
    their initial value instead of failing a strict load."""
    for name, param in module.embeddings.items():
        state_dict.setdefault(f"{prefix}embeddings.{name}", param.detach().clone())


__all__ = [
    "AbsentModalities",
    "CrossAttention",
    "GatedAttentionPool",
    "ResidualSelfAttention",
    "SNNBlock",
    "init_trunc_normal",
    "masked_adaptive_avg_pool",
    "masked_max",
    "masked_mean",
    "masked_softmax",
    "mlp",
    "pool_per_slide",
    "snn_encoder",
]


class ResidualSelfAttention(nn.Module):
    """x + MultiheadSelfAttention(x) over tokens x [B, N, D] with a key mask [B, N] (True = real): padded tokens are
    never attended to, so a sequence alone and padded inside a batch give the same outputs at its real tokens.
    Used over CT slices (MM-DLS slice fusion) and over spatial tokens (the MM-DLS segmentor)."""

    def __init__(self, dim: int, heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.attn = CrossAttention(dim, heads, dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        out, _ = self.attn(x, x, mask, need_weights=False)
        return x + out
