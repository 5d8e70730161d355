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
    items = [
        PatientItem(
            case_id=f"P{i}",
            index=i,
            time=5.0 + i,
            event=True,
            time_bin=i % 4,
            clinical=torch.tensor([1.0, float("nan") if i == 2 else 0.5]),
        )
        for i in range(4)
    ]
    task = SurvivalTask(ExplodingNet(dims))
    with pytest.raises(
        NonFiniteLossError, match=r"non-finite training loss .* case_ids \['P0', 'P1', 'P2', 'P3'\]"
    ):
        task.training_step(collate(items), 0)


def test_unknown_loss_is_rejected() -> None:
    with pytest.raises(ValueError, match="model.task.loss must be 'nll' or 'cox'"):
        SurvivalTask(ExplodingNet(ModalityDims(clinical_dim=2)), loss="mse")


def test_compiled_forward_equals_eager_and_checkpoints_stay_plain() -> None:
    """`compile`: the task runs torch.compile(net) (dynamic shapes: bags of another length reuse it); predictions
    equal the eager network's and the state dict has the plain network's keys (checkpoints load either way)."""
    from survlab.data.batch import Batch
    from survlab.models.abmil import ABMIL

    torch.manual_seed(0)
    dims = ModalityDims(wsi_dim=6, n_bins=4)
    plain = SurvivalTask(ABMIL(dims), scheduler="none").eval()
    compiled = SurvivalTask(ABMIL(dims), scheduler="none", compile={"backend": "eager"}).eval()
    compiled.load_state_dict(plain.state_dict())
    assert list(compiled.state_dict()) == list(plain.state_dict())
    for n in (5, 9):
        b = Batch(
            case_ids=["a", "b"],
            index=torch.arange(2),
            time=torch.ones(2),
            event=torch.ones(2, dtype=torch.bool),
            time_bin=torch.zeros(2, dtype=torch.long),
            wsi=torch.randn(2, n, 6),
            wsi_mask=torch.tensor([[True] * n, [True] * (n - 2) + [False] * 2]),
        )
        with torch.no_grad():
            torch.testing.assert_close(compiled(b).hazard_logits, plain(b).hazard_logits)
    assert "_compiled_net" in compiled.__dict__ and "_compiled_net" not in dict(compiled.named_modules())


@pytest.mark.slow
def test_compiled_training_step_draws_the_eager_dropout_masks() -> None:
    """With inductor (the default backend) a training-mode forward with dropout equals the eager one at the same
    seed, so `compile=true` changes a run's numbers by float noise only; `same_random: false` opts out (inductor's
    own generator: other masks)."""
    from survlab.data.sources.examples import random_batch
    from survlab.models.abmil import ABMIL

    torch.manual_seed(0)
    dims = ModalityDims(wsi_dim=16, n_bins=4)
    plain = SurvivalTask(ABMIL(dims), scheduler="none").train()
    same = SurvivalTask(ABMIL(dims), scheduler="none", compile=True).train()
    other = SurvivalTask(ABMIL(dims), scheduler="none", compile={"same_random": False}).train()
    same.load_state_dict(plain.state_dict())
    other.load_state_dict(plain.state_dict())
    batch = random_batch(dims, bag_sizes=(30, 20, 12))

    def out(task: SurvivalTask) -> torch.Tensor:
        torch.manual_seed(1)
        with torch.no_grad():
            return task(batch).hazard_logits

    eager = out(plain)
    torch._dynamo.reset()  # dynamo would reuse the first compiled graph for the second (equal code and guards)
    torch.testing.assert_close(out(same), eager, atol=1e-5, rtol=1e-5)
    torch._dynamo.reset()
    assert (out(other) - eager).abs().max() > 1e-3
    torch._dynamo.reset()
