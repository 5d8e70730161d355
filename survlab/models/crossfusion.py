"""CrossFusion: multi-scale cross-attention + convolutional fusion of 5x/10x/20x WSI feature bags
(arXiv 2503.02064; spec: docs/specs/crossfusion.md).

Pipeline for one patient (d = `dim`):

1. per-scale projection Linear(D_s → d) + LayerNorm (identity if D_s == d);
2. two cross-attention blocks: the 10x ("source") tokens query the 5x ("coarse") and the 20x ("fine") tokens
   (padded keys masked, a learned scale embedding added to query and context), then LN(x10 + CA) and a
   residual FFN → two sequences of N10 tokens;
3. three Pad-Transformer branches (projected 10x, fine-fused, coarse-fused): pad each bag's N10 tokens to the
   square H = ⌈√N10⌉ by repeating ITS OWN first real tokens, Block → PPEG → Block → LayerNorm;
4. Conv fusion: stack [3, d, H, H] (order 10x, 20x, 5x) → Conv3d(3→1, k=1) → grouped multi-kernel Conv2d
   (7/5/3, d → d/2, groups d/2) + grouped 1×1 residual → ReLU → Dropout2d → Linear(d/2 → d) + LayerNorm;
5. final Pad-Transformer with a learned CLS token (CLS bypasses the PPEG convs), LayerNorm, CLS → Linear(n_bins).

Batching (survlab fix of the reference, which has no per-bag lengths): everything up to the cross-attention
works on the padded batch with masks (padded keys get weight exactly 0; padded 10x queries are computed but
dropped). From step 3 on, each bag is padded to its OWN square and bags are processed in groups of equal side
H_i — inside a group all bags have exactly H_i² real tokens, so no mask is needed and a bag's output does not
depend on the other bags in the batch (tested: bag alone == bag inside a batch, eval mode).

Memory: the fine cross-attention materialises a [heads, N10, N20] attention matrix per bag (the coarse one
[heads, N10, N5]), and the Pad-Transformers [heads, H², H²] ≈ [heads, N10, N10]. With the training caps of the
recipes (x10 2048, x20 4096, 4 heads, fp32) that is ≈ 134 MB per bag for the fine block (kept for backward).
The patch caps live in the data layer (`data.max_patches_per_scale`); `query_chunk` additionally splits the 10x
queries of the cross-attention into chunks (exact: queries are independent), which bounds inference memory
for uncapped evaluation bags.

Dropout (incl. attention dropout) is active only in training mode, so evaluation is deterministic.

Example:
    >>> from survlab.data.sources.examples import random_batch
    >>> dims = ModalityDims(scale_dims={"x5": 8, "x10": 8, "x20": 8}, n_bins=4)
    >>> net = CrossFusion(dims, dim=16, heads=2, mlp_dim=32)
    >>> pred = net(random_batch(dims, bag_sizes=(6, 4)))  # batch.scales["x5"|"x10"|"x20"]: [B, N_s, 8]
    >>> pred.hazard_logits.shape, pred.attention["x20"].shape  # ([B, 4], [B, N20])
    (torch.Size([2, 4]), torch.Size([2, 6]))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from survlab.data.batch import Batch
from survlab.models.base import Features, ModalityDims, OutcomeNet
from survlab.models.blocks import CrossAttention, init_trunc_normal, mlp
from survlab.models.precision import full_precision

__all__ = ["CrossFusion", "default_init_std", "pad_to_square", "square_side"]

PAPER_DIM, PAPER_INIT_STD = 512, 0.02


def default_init_std(dim: int) -> float:
    """Width-scaled init std 0.02·√(512/d): the paper's 0.02 at d = 512, and the same attention-path gain
    (init_std·√d)² ≈ 0.2 at any width d (see `CrossFusion`, arg `init_std`)."""
    return PAPER_INIT_STD * math.sqrt(PAPER_DIM / dim)


def square_side(n: int) -> int:
    """Side of the smallest square holding n tokens: ⌈√n⌉ (exact integer arithmetic); n >= 1."""
    if n < 1:
        raise ValueError(f"square_side needs n >= 1 tokens, got {n}")
    return math.isqrt(n - 1) + 1


def pad_to_square(x: Tensor, mask: Tensor, side: int | None = None) -> tuple[Tensor, int]:
    """Pad each bag of x [G, N, d] (real tokens where mask [G, N] is True) to side² tokens by repeating the bag's
    OWN real tokens cyclically from its first one (never padding tokens). Real tokens keep their order.

    `side` defaults to ⌈√L⌉ of the longest bag; bags of one group normally share it (see `CrossFusion`).
    Returns (tokens [G, side², d], side).
    """
    lengths = mask.sum(dim=1)
    if bool((lengths == 0).any()):
        raise ValueError(
            "pad_to_square got an empty bag (no real 10x tokens); readers must reject empty bags"
        )
    if side is None:
        side = square_side(int(lengths.max()))
    # real positions first, in order (stable sort of the padding flag)
    order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices  # [G, N]
    pos = torch.arange(side * side, device=x.device).unsqueeze(0) % lengths.unsqueeze(1)  # [G, side²]
    src = torch.gather(order, 1, pos)
    return torch.gather(x, 1, src.unsqueeze(-1).expand(-1, -1, x.shape[-1])), side


def _feed_forward(dim: int, hidden: int, dropout: float) -> nn.Sequential:
    """Linear → GELU → Dropout → Linear → Dropout."""
    return nn.Sequential(
        mlp([dim, hidden, dim], dropout=dropout, act=nn.GELU, last_act=False), nn.Dropout(dropout)
    )


class ScaleProjection(nn.Module):
    """Linear(D → d) + LayerNorm, or identity when D == d."""

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.proj = (
            nn.Identity() if in_dim == dim else nn.Sequential(nn.Linear(in_dim, dim), nn.LayerNorm(dim))
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class ScaleCrossAttentionBlock(nn.Module):
    """10x queries attend over another scale's tokens: y = LN(q + CA(q + e, c + e)); y = y + FFN(y).

    `e` is the block's learned scale embedding. Returns (y [B, Nq, d], attention [B, Nq, Nc] averaged over
    heads, 0 on padded context tokens). Queries are processed in chunks of `query_chunk` (exact).
    """

    def __init__(
        self, dim: int, heads: int, mlp_dim: int, dropout: float, query_chunk: int | None = None
    ) -> None:
        super().__init__()
        self.scale_embedding = nn.Parameter(torch.zeros(dim))
        nn.init.trunc_normal_(self.scale_embedding, std=0.02)
        self.attn = CrossAttention(dim, heads)
        self.norm = nn.LayerNorm(dim)
        self.ffn = _feed_forward(dim, mlp_dim, dropout)
        self.query_chunk = query_chunk

    def forward(self, query: Tensor, context: Tensor, context_mask: Tensor) -> tuple[Tensor, Tensor]:
        q, c = query + self.scale_embedding, context + self.scale_embedding
        step = self.query_chunk or q.shape[1]
        outs, weights = [], []
        for start in range(0, q.shape[1], step):
            out, w = self.attn(q[:, start : start + step], c, context_mask)
            outs.append(out)
            weights.append(w)
        y = self.norm(query + torch.cat(outs, dim=1))
        return y + self.ffn(y), torch.cat(weights, dim=1)


class PadTransformerBlock(nn.Module):
    """x = LN(x); x = x + MHA(x); x = LN(x); x = x + FFN(x) (as specified; attention dropout only in training)."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float, attn_dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = CrossAttention(
            dim, heads, dropout=attn_dropout
        )  # nn.MultiheadAttention: dropout gated on .training
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = _feed_forward(dim, mlp_dim, dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.norm1(x)
        x = x + self.attn(x, x, None, need_weights=False)[0]
        x = self.norm2(x)
        return x + self.ffn(x)


class PPEG(nn.Module):
    """TransMIL positional encoding generator: x + DWConv7(x) + DWConv5(x) + DWConv3(x) on the H×H token grid."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim) for k in (7, 5, 3))

    def forward(self, tokens: Tensor, side: int) -> Tensor:
        g, n, d = tokens.shape
        grid = tokens.transpose(1, 2).reshape(g, d, side, side)
        grid = grid + sum(conv(grid) for conv in self.convs)
        return grid.flatten(2).transpose(1, 2)


class PadTransformer(nn.Module):
    """Block → PPEG → Block → LayerNorm on square token grids [G, H², d]; with `cls=True` a learned CLS token is
    prepended (it skips the PPEG convs) and the CLS output [G, d] is returned instead of the tokens."""

    def __init__(
        self, dim: int, heads: int, mlp_dim: int, dropout: float, attn_dropout: float, cls: bool = False
    ):
        super().__init__()
        self.block1 = PadTransformerBlock(dim, heads, mlp_dim, dropout, attn_dropout)
        self.ppeg = PPEG(dim)
        self.block2 = PadTransformerBlock(dim, heads, mlp_dim, dropout, attn_dropout)
        self.norm = nn.LayerNorm(dim)
        self.cls_token = None
        if cls:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
            nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, tokens: Tensor, side: int) -> Tensor:
        if self.cls_token is None:
            x = self.block1(tokens)
            return self.norm(self.block2(self.ppeg(x, side)))
        x = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        x = self.block1(x)
        x = torch.cat([x[:, :1], self.ppeg(x[:, 1:], side)], dim=1)
        return self.norm(self.block2(x))[:, 0]


class ConvFusion(nn.Module):
    """[G, 3, d, H, H] → Conv3d(3→1, k=1) → Σ_k grouped Conv2d_k(d→d/2) + grouped 1×1 residual → ReLU →
    Dropout2d → tokens [G, H², d/2] → Linear(d/2 → d) + LayerNorm."""

    def __init__(self, dim: int, n_maps: int, dropout: float) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(
                f"CrossFusion needs an even dim for the grouped conv fusion (d/2 groups), got {dim}"
            )
        half = dim // 2
        self.scale_weight = nn.Conv3d(n_maps, 1, kernel_size=1)
        self.convs = nn.ModuleList(nn.Conv2d(dim, half, k, padding=k // 2, groups=half) for k in (7, 5, 3))
        self.residual = nn.Conv2d(dim, half, 1, groups=half)
        self.drop = nn.Dropout2d(dropout)
        self.out = nn.Sequential(nn.Linear(half, dim), nn.LayerNorm(dim))

    def forward(self, maps: Tensor) -> Tensor:
        grid = self.scale_weight(maps).squeeze(1)  # [G, d, H, H]
        fused = sum(conv(grid) for conv in self.convs) + self.residual(grid)
        fused = self.drop(torch.relu(fused))
        return self.out(fused.flatten(2).transpose(1, 2))


class CrossFusion(OutcomeNet):
    """CrossFusion survival network over multi-scale bags (`batch.scales`, masks in `batch.scale_masks`).

    Args:
        dims: `dims.scale_dims` must contain the three `scales`; `dims.n_bins` sets the output size.
        dim: token width d (paper 512; must be even). heads: attention heads (paper 4). mlp_dim: FFN hidden (1024).
        dropout: FFN / Dropout2d rate (0.3). attn_dropout: Pad-Transformer attention dropout (0.2, training only).
        scales: (coarse, source, fine) scale names; the source (10x) tokens are the queries.
        query_chunk: optional chunk size over 10x queries in the cross-attention (exact; bounds memory).
        init_std: trunc-normal std of Linear/attention weights. None (default) = the width-scaled rule
            0.02·√(512/d), which is exactly the paper's 0.02 at d = 512 (≈ 0.08 at d = 32, ≈ 0.11 at d = 16).
            Why: every attention path is a product W_o·W_v with gain ≈ (init_std·√d)²; the cross-attention enters
            the post-norm residual LN(x10 + CA) with that relative size and the final CLS reads the tokens only
            through attention. With a fixed 0.02 this is ≈ 0.2 at d = 512 but ≈ 0.013 at d = 32 (two such paths
            in series from the 5x/20x input to the CLS: ~1e-4), so a small model starts with the coarse/fine
            branches practically disconnected. The rule keeps (init_std·√d)² ≈ 0.2 at every width.
            NOTE (measured, see tests/e2e/test_learning_multiscale.py): the rule reconnects the branches but does
            NOT by itself make the small model learn a 5x-only signal: the 10x/20x noise tokens (which carry a
            per-slide offset, i.e. a patient identity) are then memorised instead.

    Heads (`OutcomeNet.init_heads` on the final CLS, trunc-normal initialised like every Linear): output
    ("hazards" | "risk"), targets (patient labels to classify), survival (default on), endpoints (further endpoints).

    Prediction: hazard_logits [B, n_bins], embedding [B, d] (final CLS), attention {coarse name: [B, N5],
    fine name: [B, N20]} = cross-attention weights averaged over heads and real 10x queries (sum 1, 0 on padding).
    """

    modalities = ("scales",)
    STATE_RENAMES: ClassVar[dict[str, str]] = {
        "head.weight": "head.linear.weight",
        "head.bias": "head.linear.bias",
    }

    def __init__(
        self,
        dims: ModalityDims,
        dim: int = 512,
        heads: int = 4,
        mlp_dim: int = 1024,
        dropout: float = 0.3,
        attn_dropout: float = 0.2,
        scales: Sequence[str] = ("x5", "x10", "x20"),
        query_chunk: int | None = None,
        init_std: float | None = None,
        output: str = "hazards",
        targets: Sequence[str] | None = (),
        survival: bool = True,
        endpoints: Sequence[str] | None = (),
    ) -> None:
        super().__init__(dims)
        scales = tuple(scales)
        if len(scales) != 3:
            raise ValueError(f"CrossFusion needs three scales (coarse, source, fine), got {list(scales)}")
        missing = [s for s in scales if s not in (dims.scale_dims or {})]
        if missing:
            raise ValueError(
                f"CrossFusion scales {list(scales)} not all in the cohort's scale_dims "
                f"{list((dims.scale_dims or {}).keys())} (missing: {missing}); set model.net.scales or the data config"
            )
        self.coarse, self.source, self.fine = scales
        self.scales = scales
        assert dims.scale_dims is not None  # checked above: every scale is in it
        self.proj = nn.ModuleDict({s: ScaleProjection(dims.scale_dims[s], dim) for s in scales})
        self.coarse_attn = ScaleCrossAttentionBlock(dim, heads, mlp_dim, dropout, query_chunk)
        self.fine_attn = ScaleCrossAttentionBlock(dim, heads, mlp_dim, dropout, query_chunk)
        # branch order = stacking order of the fusion: 10x, 20x (fine), 5x (coarse)
        self.branches = nn.ModuleList(
            PadTransformer(dim, heads, mlp_dim, dropout, attn_dropout) for _ in range(3)
        )
        self.fusion = ConvFusion(dim, 3, dropout)
        self.final = PadTransformer(dim, heads, mlp_dim, dropout, attn_dropout, cls=True)
        self.init_heads(dim, targets, survival, output, endpoints=endpoints)
        self.dim = dim
        self.init_std = init_std if init_std is not None else default_init_std(dim)
        self._init_weights(self.init_std)

    def _init_weights(self, std: float) -> None:
        init_trunc_normal(self, std=std)  # Linear trunc-normal(std) + zero bias, LayerNorm (1, 0)
        for m in self.modules():
            if isinstance(
                m, nn.MultiheadAttention
            ):  # its Q/K/V projection is a packed Parameter, not a Linear
                nn.init.trunc_normal_(m.in_proj_weight, std=std)
                nn.init.zeros_(m.in_proj_bias)
            elif isinstance(m, nn.Conv2d | nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _inputs(self, batch: Batch) -> dict[str, tuple[Tensor, Tensor]]:
        if batch.scales is None:
            raise ValueError(
                "CrossFusion needs multi-scale bags (batch.scales); use a *_multiscale data config"
            )
        out = {}
        for s in self.scales:
            if s not in batch.scales:
                raise ValueError(f"batch.scales lacks scale {s!r} (has {list(batch.scales)})")
            x = batch.scales[s]
            mask = batch.scale_masks[s] if batch.scale_masks is not None and s in batch.scale_masks else None
            if mask is None:
                mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
            out[s] = (self.proj[s](x), mask)
        return out

    def forward_features(self, batch: Batch) -> Features:
        """Final CLS embedding [B, d] and the coarse / fine cross-attention maps."""
        inputs = self._inputs(batch)
        (x5, m5), (x10, m10), (x20, m20) = (inputs[s] for s in self.scales)
        coarse, w5 = self.coarse_attn(x10, x5, m5)  # [B, N10, d], [B, N10, N5]
        fine, w20 = self.fine_attn(x10, x20, m20)

        with full_precision(m10.device):  # mean over real 10x queries, in fp32 (bf16 cannot count past 256)
            qw = m10.float()
            qw = (qw / qw.sum(dim=1, keepdim=True).clamp_min(1.0)).unsqueeze(1)
            attention = {
                self.coarse: torch.bmm(qw, w5.float()).squeeze(1).masked_fill(~m5, 0.0),
                self.fine: torch.bmm(qw, w20.float()).squeeze(1).masked_fill(~m20, 0.0),
            }

        lengths = m10.sum(dim=1).tolist()
        sides = torch.tensor([square_side(int(n)) for n in lengths], device=x10.device)
        groups, embeddings = [], []
        for side in sides.unique().tolist():  # bags with equal square side share one mask-free pass
            idx = (sides == side).nonzero(as_tuple=True)[0]
            mask = m10[idx]
            maps = []
            for branch, tokens in zip(self.branches, (x10, fine, coarse), strict=True):
                squared, _ = pad_to_square(tokens[idx], mask, side)
                maps.append(branch(squared, side).transpose(1, 2).reshape(len(idx), self.dim, side, side))
            fused = self.fusion(torch.stack(maps, dim=1))  # [G, H², d]
            groups.append(idx)
            embeddings.append(self.final(fused, side))
        # back to batch order (the groups' outputs may differ in dtype under autocast: cat promotes)
        embedding = torch.cat(embeddings)[torch.argsort(torch.cat(groups))]  # [B, d]
        return Features(embedding, attention=attention)
