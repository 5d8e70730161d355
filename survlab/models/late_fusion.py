"""LateFusion: ABMIL (WSI) + SNN (genomics) encoders, fused late — the standard multimodal baseline column.

    wsi → ABMILEncoder → h_wsi [B, Hw] ┐
                                       ├→ fusion ("concat" → MLP | "bilinear" → gated Kronecker fusion) → heads
    genomics → SNNEncoder → h_gen [B, Hg] ┘

The encoders are the same modules `ABMIL` and `SNN` use; "bilinear" is the Pathomic-Fusion style gated
Kronecker product (Chen et al. 2020) with small gate dims.

Absent modalities (data.missing=keep; `accepts_absent` = wsi, genomics): a patient without slides has h_wsi replaced
by a learned absent embedding [Hw], one without expression h_gen by one [Hg], before either fusion; optional
modality dropout (`modality_dropout`) trains them on patients who have both.

Example:
    >>> from survlab.data.sources.examples import random_batch
    >>> dims = ModalityDims(wsi_dim=32, genomic_sizes=(10, 20), n_bins=4)
    >>> net = LateFusion(dims, fusion="bilinear")
    >>> pred = net(random_batch(dims, bag_sizes=(5, 3)))
    >>> pred.hazard_logits.shape, pred.attention["patch"].shape  # [B, 4], [B, N]
    (torch.Size([2, 4]), torch.Size([2, 5]))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from survlab.data.batch import Batch
from survlab.models.abmil import ABMILEncoder
from survlab.models.base import Features, ModalityDims, OutcomeNet
from survlab.models.blocks import AbsentModalities, mlp
from survlab.models.precision import FullPrecisionBilinear
from survlab.models.snn import SNNEncoder

FUSIONS = ("concat", "bilinear")


class GatedBilinearFusion(nn.Module):
    """Pathomic-style fusion of a [B, A] and b [B, Bd] → [B, out_dim].

    Each modality is projected to `gate_dim` and gated by a bilinear function of both inputs; a constant 1 is
    appended to each gated vector so the Kronecker (outer) product keeps the unimodal terms; the flattened
    product (plus a skip of the gated vectors) goes through Linear → ReLU → Dropout.
    """

    def __init__(
        self, dim_a: int, dim_b: int, gate_dim: int = 16, out_dim: int = 64, dropout: float = 0.25
    ) -> None:
        super().__init__()
        self.proj_a = nn.Sequential(nn.Linear(dim_a, gate_dim), nn.ReLU())
        self.proj_b = nn.Sequential(nn.Linear(dim_b, gate_dim), nn.ReLU())
        self.gate_a = FullPrecisionBilinear(dim_a, dim_b, gate_dim)
        self.gate_b = FullPrecisionBilinear(dim_a, dim_b, gate_dim)
        self.out_a = mlp([gate_dim, gate_dim], dropout=dropout)
        self.out_b = mlp([gate_dim, gate_dim], dropout=dropout)
        k = gate_dim + 1
        self.post = mlp([k * k + 2 * k, out_dim], dropout=dropout)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        ga = self.out_a(torch.sigmoid(self.gate_a(a, b)) * self.proj_a(a))
        gb = self.out_b(torch.sigmoid(self.gate_b(a, b)) * self.proj_b(b))
        one = ga.new_ones(ga.shape[0], 1)
        ga, gb = torch.cat([ga, one], dim=-1), torch.cat([gb, one], dim=-1)
        kron = torch.einsum("bi,bj->bij", ga, gb).flatten(1)
        return self.post(torch.cat([kron, ga, gb], dim=-1))


class LateFusion(OutcomeNet):
    """ABMIL + SNN late fusion.

    Args:
        dims: cohort sizes (needs `wsi_dim` and `genomic_sizes`).
        wsi_hidden: ABMIL embedding size; attn_dim: ABMIL attention scorer size (default wsi_hidden).
        genomic_hidden: SNN block widths.
        fusion: "concat" (concat → Linear → ReLU → Dropout) or "bilinear" (gated Kronecker fusion).
        fusion_dim: fused embedding size; gate_dim: per-modality size inside the bilinear fusion.
        dropout: dropout everywhere.
        output: "hazards" → `hazard_logits` [B, n_bins]; "risk" → Cox log-hazard `risk` [B].
        targets, survival, endpoints: the heads (`OutcomeNet.init_heads`): patient labels to classify, the primary
            endpoint's survival head (default on), further endpoints' survival heads.
        modality_dropout: training only, the probability that a patient's WSI or genomics is treated as absent
            (never both); 0 = off.

    A patient without WSI / genomics (`Batch.has`) gets the learned absent embedding in place of that encoder's
    output, so its prediction does not depend on the placeholder input.
    """

    modalities = ("wsi", "genomics")
    accepts_absent: ClassVar[frozenset[str]] = frozenset({"wsi", "genomics"})

    def __init__(
        self,
        dims: ModalityDims,
        wsi_hidden: int = 128,
        attn_dim: int | None = None,
        genomic_hidden: Sequence[int] = (256, 256),
        fusion: str = "concat",
        fusion_dim: int = 128,
        gate_dim: int = 16,
        dropout: float = 0.25,
        output: str = "hazards",
        targets: Sequence[str] | None = (),
        survival: bool = True,
        endpoints: Sequence[str] | None = (),
        modality_dropout: float = 0.0,
    ) -> None:
        super().__init__(dims)
        assert dims.wsi_dim is not None and dims.genomic_sizes is not None  # SurvivalNet checked `modalities`
        if fusion not in FUSIONS:
            raise ValueError(f"LateFusion fusion must be one of {FUSIONS}, got {fusion!r}")
        self.wsi_encoder = ABMILEncoder(dims.wsi_dim, wsi_hidden, attn_dim, dropout)
        self.genomic_encoder = SNNEncoder(sum(dims.genomic_sizes), genomic_hidden, dropout)
        dim_w, dim_g = self.wsi_encoder.out_dim, self.genomic_encoder.out_dim
        self.fusion_kind = fusion
        if fusion == "concat":
            self.fusion = mlp([dim_w + dim_g, fusion_dim], dropout=dropout)
        else:
            self.fusion = GatedBilinearFusion(dim_w, dim_g, gate_dim, fusion_dim, dropout)
        self.init_heads(fusion_dim, targets, survival, output, endpoints=endpoints)
        self.absent = AbsentModalities(  # last: draws nothing from the global RNG (see AbsentModalities)
            {"wsi": (dim_w,), "genomics": (dim_g,)},
            self.accepts_absent,
            modality_dropout,
            owner=type(self).__name__,
        )

    def forward_features(self, batch: Batch) -> Features:
        """Fused patient embedding [B, fusion_dim] and the ABMIL patch attention [B, N]."""
        present = self.absent.presence(batch)
        h_wsi, attn = self.wsi_encoder(batch.wsi, batch.wsi_mask)
        h_gen = self.genomic_encoder(batch.genomics)
        h_wsi, h_gen = self.absent("wsi", h_wsi, present), self.absent("genomics", h_gen, present)
        if self.fusion_kind == "concat":
            h = self.fusion(torch.cat([h_wsi, h_gen], dim=-1))
        else:
            h = self.fusion(h_wsi, h_gen)
        return Features(h, attention={"patch": attn})
