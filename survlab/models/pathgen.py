"""PathGen denoiser (Dey et al., Nat. Commun. 2025): predicts the noise ε of a noisy 6-family expression vector x_t,
conditioned only on the patient's WSI bag (ε-prediction DDPM; the schedule and samplers live in
`survlab.tasks.diffusion`).

Pipeline (d = `dim`, G gene groups of sizes n_g, bag [B, N, D] with mask [B, N]):

1. each noisy group x_t,g [B, n_g] → its own encoder (Linear + Mish + AlphaDropout, widths n_g → *enc_hidden → d)
   → omic tokens O [B, G, d]
2. sinusoidal time embedding (diffusers `Timesteps`, `time_dim`; its period constant is 10000, the reference's
   1000: a documented deviation, kept because the published generator numbers were trained with it — the embedding
   still separates all T = 1000 steps) → Linear(time_dim → time_hidden) → Mish →
   Linear(→ d) → one time token, repeated G times as queries; survlab adds
   a learned group embedding [G, d] to them (the reference's G queries start identical, so only the attention over
   O can tell the groups apart; with the embedding each query knows its group from the start)
3. single-head cross-attention, Q = time tokens, K = V = O → tokens [B, G, d], added to the queries (survlab's
   residual: without it t reaches the tokens only through attention weights, and the denoiser barely knows the
   noise level — a small one did not learn on the synthetic cohort)
4. `rounds` × [multi-head cross-attention of the tokens over the projected WSI patches (masked; residual — survlab's
   choice, so the noisy-state information is not replaced by a patch average), then a TransformerEncoderLayer
   (d, `heads`, `ff_dim`, `dropout`)]
5. + O (residual), then each token → its own decoder (Mish + AlphaDropout, widths d → *dec_hidden) → Linear → ε̂_g;
   with `input_skip` (survlab's, default on) ε̂_g = decoder output + x_t,g: at large t the noise IS almost x_t, which
   the reference's nonlinear path has to learn as a near-identity map to ~1% (a small one had not after 2k steps)

Reference widths: dim 1024, enc_hidden [2048, 4096, 4096], time_dim 128, time_hidden 512, rounds 3, heads 8,
ff_dim 2048, dec_hidden [4096, 4096, 2048], dropout 0.25 (conf/experiment/pathgen_pipeline_tcga_*); the defaults are
small. `encode_context` (WSI projection) is separate from `denoise`, so a sampler projects the bag once.

Example:
    >>> from survlab.data.sources.examples import random_batch
    >>> dims = ModalityDims(wsi_dim=32, genomic_sizes=(12, 20, 20, 20, 30, 18))
    >>> net = PathGenDenoiser(dims)
    >>> batch = random_batch(dims)                      # the WSI bags condition the denoiser
    >>> x_t_groups, t = [torch.randn(2, n) for n in dims.genomic_sizes], torch.tensor([10, 900])
    >>> eps = net(x_t_groups, t, batch)   # list of G tensors [B, n_g]
    >>> [tuple(e.shape) for e in eps]
    [(2, 12), (2, 20), (2, 20), (2, 20), (2, 30), (2, 18)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from diffusers.models.embeddings import Timesteps
from torch import Tensor, nn

from survlab.data.batch import Batch
from survlab.models.base import Denoiser, ModalityDims
from survlab.models.blocks import CrossAttention, mlp


class PathGenDenoiser(Denoiser):
    """ε̂(x_t, t | WSI bag) over G gene groups. forward(x_t groups [B, n_g] × G, t [B] long, batch) → G tensors."""

    modalities: ClassVar[tuple[str, ...]] = ("wsi", "genomics")

    def __init__(
        self,
        dims: ModalityDims,
        dim: int = 64,
        enc_hidden: Sequence[int] = (128,),
        dec_hidden: Sequence[int] = (128,),
        time_dim: int = 32,
        time_hidden: int = 64,
        rounds: int = 3,
        heads: int = 4,
        ff_dim: int = 128,
        dropout: float = 0.1,
        group_embedding: bool = True,
        input_skip: bool = True,
    ) -> None:
        super().__init__(dims)
        assert dims.wsi_dim is not None  # SurvivalNet checked `modalities`
        sizes = tuple(dims.genomic_sizes or ())
        self.sizes, self.dim, self.input_skip = sizes, dim, input_skip
        self.encoders = nn.ModuleList(
            mlp([g, *enc_hidden, dim], dropout, act=nn.Mish, drop=nn.AlphaDropout) for g in sizes
        )
        self.time_embed = Timesteps(time_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_mlp = nn.Sequential(
            nn.Linear(time_dim, time_hidden), nn.Mish(), nn.Linear(time_hidden, dim)
        )
        self.group_embedding = nn.Parameter(torch.zeros(len(sizes), dim)) if group_embedding else None
        if self.group_embedding is not None:
            nn.init.normal_(self.group_embedding, std=0.02)
        self.time_attention = CrossAttention(dim, heads=1)
        self.wsi_proj = nn.Linear(dims.wsi_dim, dim)
        self.wsi_attention = nn.ModuleList(
            CrossAttention(dim, heads=heads, dropout=dropout) for _ in range(rounds)
        )
        self.mixers = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, dim_feedforward=ff_dim, dropout=dropout, batch_first=True)
            for _ in range(rounds)
        )
        self.decoders = nn.ModuleList(
            nn.Sequential(
                mlp([dim, *dec_hidden], dropout, act=nn.Mish, drop=nn.AlphaDropout),
                nn.Linear(dec_hidden[-1] if dec_hidden else dim, g),
            )
            for g in sizes
        )

    def encode_context(self, batch: Batch) -> tuple[Tensor, Tensor | None]:
        """WSI bag [B, N, D] → (patch tokens [B, N, d], mask [B, N]); computed once per batch by samplers."""
        return self.wsi_proj(batch.wsi), batch.wsi_mask

    def denoise(self, x_t: Sequence[Tensor], t: Tensor, context: Tensor, mask: Tensor | None) -> list[Tensor]:
        """x_t: G tensors [B·R, n_g] (R noisy copies per patient, patient-major); t [B·R] timesteps; context
        [B, N, d], mask [B, N] → ε̂: G tensors [B·R, n_g]. The R copies share the patient's bag: the WSI attention
        runs once per patient with R·G queries (queries never interact there, so this equals repeating the bag)."""
        omic = torch.stack([enc(x) for enc, x in zip(self.encoders, x_t, strict=True)], dim=1)  # [B·R, G, d]
        n_groups, b = len(self.sizes), context.shape[0]
        copies = omic.shape[0] // b
        time = self.time_mlp(self.time_embed(t.reshape(-1)).to(omic.dtype))  # [B·R, d]
        queries = time.unsqueeze(1).expand(-1, n_groups, -1)
        if self.group_embedding is not None:
            queries = queries + self.group_embedding
        attended, _ = self.time_attention(queries, omic, need_weights=False)
        tokens = (
            queries + attended
        )  # residual: the tokens keep t (the reference keeps only the attention output)
        for attend, mix in zip(self.wsi_attention, self.mixers, strict=True):
            attended, _ = attend(tokens.reshape(b, copies * n_groups, -1), context, mask, need_weights=False)
            tokens = mix(tokens + attended.reshape(b * copies, n_groups, -1))
        tokens = tokens + omic
        eps = [dec(tokens[:, g]) for g, dec in enumerate(self.decoders)]
        return [e + x for e, x in zip(eps, x_t, strict=True)] if self.input_skip else eps


__all__ = ["PathGenDenoiser"]
