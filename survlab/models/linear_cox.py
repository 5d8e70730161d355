"""LinearCox: a linear Cox model over the concatenated standardised genes and encoded clinical columns (whichever the
cohort has): risk = x · w − offset. Its weights are not trained by gradient descent: `model=coxnet` fits them
exactly with scikit-survival's penalised Cox (`survlab.runner.estimators.coxnet`) and loads them with `set_coefficients`, so the
run tests, predicts and reports through the same Lightning path as every network.

    genomics [B, Σg] ‖ clinical [B, C] → x [B, F] → risk [B]

Example:
    >>> import numpy as np
    >>> from survlab.data.dims import ModalityDims
    >>> net = LinearCox(ModalityDims(genomic_sizes=(76,), clinical_dim=5))
    >>> net.set_coefficients(np.zeros(81), offset=0.0)
    >>> net.n_features
    81
    >>> net(batch).risk.shape  # [B]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from survlab.data.batch import Batch
from survlab.models.base import ModalityDims, Prediction, SurvivalNet
from survlab.models.tabular import TABLE_MODALITIES, table_features, table_inputs, table_width


class LinearCox(SurvivalNet):
    """risk = x · w − offset on the patient's table row.

    Args:
        dims: cohort sizes (`genomic_sizes` and/or `clinical_dim`).
        inputs: table modalities to read (default: every one the cohort has, genomics then clinical).
    """

    modalities: ClassVar[tuple[str, ...]] = ()
    table_modalities: ClassVar[tuple[str, ...]] = TABLE_MODALITIES

    def __init__(self, dims: ModalityDims, inputs: Sequence[str] | None = None) -> None:
        super().__init__(dims)
        self.inputs = table_inputs(
            type(self).__name__, dims, tuple(inputs) if inputs else self.table_modalities
        )
        self.n_features = table_width(dims, self.inputs)
        self.linear = nn.Linear(self.n_features, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def set_coefficients(self, coef: np.ndarray, offset: float = 0.0) -> None:
        """Load fitted coefficients w [F] and the offset (risk = x · w − offset)."""
        coef = np.asarray(coef, dtype=np.float64).reshape(-1)
        if coef.shape[0] != self.n_features:
            raise ValueError(f"LinearCox expects {self.n_features} coefficients, got {coef.shape[0]}")
        with torch.no_grad():
            self.linear.weight.copy_(torch.as_tensor(coef, dtype=self.linear.weight.dtype).view(1, -1))
            self.linear.bias.fill_(-float(offset))

    def features(self, batch: Batch) -> Tensor:
        """The patient rows x [B, F] the coefficients apply to."""
        return table_features(batch, self.inputs)

    def forward(self, batch: Batch) -> Prediction:
        return Prediction(risk=self.linear(self.features(batch)).squeeze(-1))
