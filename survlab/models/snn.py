"""SNN: self-normalising network over the concatenated genomic groups (Klambauer et al. 2017; the genomics-only
baseline of MCAT/SurvPath).

    genomics [B, g_1] ... [B, g_k] → concat [B, Σg] → (Linear → ELU → AlphaDropout) × len(hidden) → heads
      (survival and/or class heads / endpoint heads: `OutcomeNet.init_heads`)

Example:
    >>> from survlab.data.sources.examples import random_batch
    >>> dims = ModalityDims(genomic_sizes=(10, 20), n_bins=4)
    >>> net = SNN(dims, hidden=(64, 64))
    >>> net(random_batch(dims)).hazard_logits.shape  # [B, 4]
    torch.Size([2, 4])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from survlab.data.batch import Batch
from survlab.models.base import Features, ModalityDims, OutcomeNet
from survlab.models.blocks import snn_encoder


class SNNEncoder(nn.Module):
    """List of genomic groups [B, g_i] → embedding [B, hidden[-1]]."""

    def __init__(self, in_dim: int, hidden: Sequence[int] = (256, 256), dropout: float = 0.25) -> None:
        super().__init__()
        hidden = [int(h) for h in hidden]
        if not hidden:
            raise ValueError("SNN needs at least one hidden layer (hidden=[...] is empty)")
        self.out_dim = hidden[-1]
        self.net = snn_encoder(in_dim, hidden, dropout)

    def forward(self, genomics: list[Tensor]) -> Tensor:
        return self.net(torch.cat(list(genomics), dim=-1))


class SNN(OutcomeNet):
    """Genomics-only outcome network.

    Args:
        dims: cohort sizes (needs `genomic_sizes`).
        hidden: widths of the SNN blocks (default [256, 256], as in MCAT).
        dropout: AlphaDropout rate.
        output: "hazards" → `hazard_logits` [B, n_bins]; "risk" → Cox log-hazard `risk` [B].
        targets: patient labels to classify (`class_logits[label]` [B, K]); default none; None = the primary label.
        survival: predict the primary endpoint (the default; the head keeps its parameter names `head.linear.*`).
        endpoints: further survival endpoints, one head each (`endpoint_hazard_logits` / `endpoint_risk`), e.g.
            [dfs] beside OS; None = every endpoint of the cohort after the primary.
    """

    modalities = ("genomics",)

    def __init__(
        self,
        dims: ModalityDims,
        hidden: Sequence[int] = (256, 256),
        dropout: float = 0.25,
        output: str = "hazards",
        targets: Sequence[str] | None = (),
        survival: bool = True,
        endpoints: Sequence[str] | None = (),
    ) -> None:
        super().__init__(dims)
        assert dims.genomic_sizes is not None  # SurvivalNet checked `modalities`
        self.encoder = SNNEncoder(sum(dims.genomic_sizes), hidden, dropout)
        self.init_heads(self.encoder.out_dim, targets, survival, output, endpoints=endpoints)

    def forward_features(self, batch: Batch) -> Features:
        """Patient embedding [B, hidden[-1]]."""
        return Features(self.encoder(batch.genomics))
