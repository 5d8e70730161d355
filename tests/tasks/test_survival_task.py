"""SurvivalTask: a non-finite loss stops training with the batch's case_ids; loss choice is validated."""

from __future__ import annotations

import pytest
import torch

from survlab.data.batch import PatientItem, collate
from survlab.models.base import ModalityDims, Prediction, SurvivalNet
from survlab.tasks.survival import NonFiniteLossError, SurvivalTask


class ExplodingNet(SurvivalNet):
    """Hazard logits that are NaN for the patient whose clinical value is NaN (a corrupted input)."""

    modalities = ("clinical",)

    def __init__(self, dims: ModalityDims) -> None:
        super().__init__(dims)
        self.lin = torch.nn.Linear(dims.clinical_dim, dims.n_bins)

    def forward(self, batch) -> Prediction:
        return Prediction(hazard_logits=self.lin(batch.clinical))


def test_non_finite_loss_names_the_case_ids() -> None:
    dims = ModalityDims(clinical_dim=2, n_bins=4)
    items = [PatientItem(case_id=f"P{i}", index=i, time=5.0 + i, event=True, time_bin=i % 4,
                         clinical=torch.tensor([1.0, float("nan") if i == 2 else 0.5])) for i in range(4)]
    task = SurvivalTask(ExplodingNet(dims))
    with pytest.raises(NonFiniteLossError, match=r"non-finite training loss .* case_ids \['P0', 'P1', 'P2', 'P3'\]"):
        task.training_step(collate(items), 0)


def test_unknown_loss_is_rejected() -> None:
    with pytest.raises(ValueError, match="model.task.loss must be 'nll' or 'cox'"):
        SurvivalTask(ExplodingNet(ModalityDims(clinical_dim=2)), loss="mse")
