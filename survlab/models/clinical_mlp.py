"""ClinicalMLP: a small MLP over the encoded clinical table, the clinical-only baseline (survival, classification
of patient labels, several endpoints: heads from `OutcomeNet.init_heads`).

    clinical [B, C] → (Linear → ReLU → Dropout) × len(hidden) → survival head and/or class heads / endpoint heads

Example:
    >>> from survlab.data.sources.examples import random_batch
    >>> dims = ModalityDims(clinical_dim=5, n_bins=4)
    >>> net = ClinicalMLP(dims, hidden=(32,))
    >>> net(random_batch(dims)).hazard_logits.shape  # [B, 4]
    torch.Size([2, 4])
"""

from __future__ import annotations

from collections.abc import Sequence

from survlab.data.batch import Batch
from survlab.models.base import Features, ModalityDims, OutcomeNet
from survlab.models.blocks import mlp


class ClinicalMLP(OutcomeNet):
    """Clinical-only outcome network.

    Args:
        dims: cohort sizes (needs `clinical_dim`).
        hidden: hidden widths (default [64]).
        dropout: dropout after each hidden layer.
        output: "hazards" → `hazard_logits` [B, n_bins]; "risk" → Cox log-hazard `risk` [B].
        targets: patient labels to classify (`class_logits[label]` [B, K]); default none; None = the primary label.
        survival: predict the primary endpoint (the default; the head keeps its parameter names `head.linear.*`).
        endpoints: further survival endpoints, one head each (`endpoint_hazard_logits` / `endpoint_risk`), e.g.
            [dfs] beside OS; None = every endpoint of the cohort after the primary.
    """

    modalities = ("clinical",)

    def __init__(
        self,
        dims: ModalityDims,
        hidden: Sequence[int] = (64,),
        dropout: float = 0.25,
        output: str = "hazards",
        targets: Sequence[str] | None = (),
        survival: bool = True,
        endpoints: Sequence[str] | None = (),
    ) -> None:
        super().__init__(dims)
        widths = [int(h) for h in hidden]
        self.encoder = mlp([dims.clinical_dim, *widths], dropout=dropout)
        self.init_heads(
            widths[-1] if widths else dims.clinical_dim, targets, survival, output, endpoints=endpoints
        )

    def forward_features(self, batch: Batch) -> Features:
        """Patient embedding [B, hidden[-1]]."""
        return Features(self.encoder(batch.clinical))
