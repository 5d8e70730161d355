"""ClinicalMLP: a small MLP over the encoded clinical table, the clinical-only baseline.

    clinical [B, C] → (Linear → ReLU → Dropout) × len(hidden) → head

Example:
    >>> from survlab.data.sources.examples import random_batch
    >>> dims = ModalityDims(clinical_dim=5, n_bins=4)
    >>> net = ClinicalMLP(dims, hidden=(32,))
    >>> net(random_batch(dims)).hazard_logits.shape  # [B, 4]
    torch.Size([2, 4])
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from survlab.data.batch import Batch
from survlab.models.base import ModalityDims, Prediction, SurvivalNet
from survlab.models.blocks import SurvivalHead, mlp


class ClinicalMLP(SurvivalNet):
    """Clinical-only survival network.

    Args:
        dims: cohort sizes (needs `clinical_dim`).
        hidden: hidden widths (default [64]).
        dropout: dropout after each hidden layer.
        output: "hazards" → `hazard_logits` [B, n_bins]; "risk" → Cox log-hazard `risk` [B].
    """

    modalities = ("clinical",)

    def __init__(
        self,
        dims: ModalityDims,
        hidden: Sequence[int] = (64,),
        dropout: float = 0.25,
        output: str = "hazards",
    ) -> None:
        super().__init__(dims)
        widths = [int(h) for h in hidden]
        self.encoder = mlp([dims.clinical_dim, *widths], dropout=dropout)
        self.head = SurvivalHead(widths[-1] if widths else dims.clinical_dim, dims.n_bins, output)

    def encode(self, batch: Batch) -> Tensor:
        """Patient embedding [B, hidden[-1]]."""
        return self.encoder(batch.clinical)

    def forward(self, batch: Batch) -> Prediction:
        h = self.encode(batch)
        return Prediction(**self.head(h), embedding=h)
