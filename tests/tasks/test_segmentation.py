"""SegmentationTask's Dice (survlab.tasks.segmentation) and its chance reference (survlab.report.segmentation): Dice per
patient volume, so false lesions painted on lesion-free slices cost Dice; equal to MONAI's DiceMetric on the stacked
volume; the lesion-slice-only mean kept apart, labelled; the chance level on the same basis."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from survlab.report.segmentation import chance_dice
from survlab.tasks.segmentation import SegmentationTask


class _Echo(nn.Module):
    """'Predicts' the mask drawn in the image: logits +10 where image > 0.5, -10 elsewhere (both structures)."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        logits = (image > 0.5).float() * 20 - 10 + 0 * self.dummy
        return {"lung": logits, "lesion": logits}


def _issue_example() -> tuple[list[dict[str, Tensor]], np.ndarray, np.ndarray]:
    """One patient, 4 slices of 16x16: a 4x4 true lesion on slice 0 predicted exactly, and a 6x6 false lesion on each
    of the 3 lesion-free slices. -> (items, prediction [16, 16, 4], truth [16, 16, 4])."""
    truth, pred = np.zeros((4, 16, 16), bool), np.zeros((4, 16, 16), bool)
    truth[0, 2:6, 2:6] = pred[0, 2:6, 2:6] = True
    pred[1:, 8:14, 8:14] = True
    items = [
        {
            "image": torch.from_numpy(pred[z]).float()[None],
            "lung": torch.from_numpy(truth[z]).float()[None],
            "lesion": torch.from_numpy(truth[z]).float()[None],
            "case": torch.tensor(0),
            "slice": torch.tensor(z),
        }
        for z in range(4)
    ]
    return items, np.moveaxis(pred, 0, -1), np.moveaxis(truth, 0, -1)


@pytest.mark.filterwarnings("ignore:.*self.log")
def test_lesion_dice_is_per_patient_volume_and_counts_false_lesions_on_empty_slices() -> None:
    from monai.metrics import DiceMetric

    items, pred, truth = _issue_example()
    task = SegmentationTask(_Echo())
    task.on_test_epoch_start()  # the test loop's hooks, without a Trainer (self.log is then a no-op)
    for i, batch in enumerate(
        torch.utils.data.DataLoader(items, batch_size=3)
    ):  # the patient over two batches
        task.test_step(batch, i)
    task.on_test_epoch_end()
    m = task.test_metrics
    volume = DiceMetric(include_background=True, ignore_empty=False)(
        torch.from_numpy(pred)[None, None].float(), torch.from_numpy(truth)[None, None].float()
    )
    per_slice = DiceMetric(include_background=True, ignore_empty=True)(
        torch.from_numpy(np.moveaxis(pred, -1, 0))[:, None].float(),
        torch.from_numpy(np.moveaxis(truth, -1, 0))[:, None].float(),
    )
    assert float(volume) == pytest.approx(2 * 16 / (2 * 16 + 3 * 36))  # 0.229, the issue's number
    assert m["dice_lesion"] == pytest.approx(float(volume), abs=1e-6)  # MONAI: float32
    assert round(m["dice_lesion"], 3) == 0.229 and m["dice"] == pytest.approx(m["dice_lesion"])
    # the old number, blind to the three false lesions, is kept only under its own label
    assert m["dice_lesion_on_lesion_slices"] == pytest.approx(float(np.nanmean(per_slice.numpy()))) == 1.0
    assert m["lesion_fp_voxels"] == 3 * 36 and m["lesion_fp_slices"] == 1.0  # all 3 lesion-free slices


def test_chance_dice_is_on_the_basis_of_the_reported_dice() -> None:
    """The chance level per patient volume equals the mean Dice of seeded random masks (Monte Carlo reference)."""
    rng = np.random.default_rng(0)
    slices = []
    for case, n_slices in ((0, 6), (1, 4), (2, 5)):
        for z in range(n_slices):
            lesion = np.zeros((32, 32), bool)
            if z < 2 + case % 2:  # the lesion on the first slices only: lesion-free slices too
                lesion[4 : 10 + case, 5:12] = True
            slices.append((case, z, np.zeros((32, 32), np.uint8), np.ones((32, 32), bool), lesion))
    chance = chance_dice(slices)
    p = np.mean([it[4].mean() for it in slices])
    sims, sims_slices = [], []
    for _ in range(400):
        per_case = {}
        for case, _z, _img, _lung, lesion in slices:
            random = rng.random(lesion.shape) < p
            acc = per_case.setdefault(case, [0, 0, 0])
            acc[0] += (random & lesion).sum()
            acc[1] += random.sum()
            acc[2] += lesion.sum()
            if lesion.any():
                sims_slices.append(2 * (random & lesion).sum() / (random.sum() + lesion.sum()))
        sims.append(np.mean([2 * i / (a + b) for i, a, b in per_case.values()]))
    assert chance["chance_dice_lesion"] == pytest.approx(np.mean(sims), abs=0.005)
    assert chance["chance_dice_lesion_on_lesion_slices"] == pytest.approx(np.mean(sims_slices), abs=0.005)
    assert chance["chance_dice_lung"] == pytest.approx(1.0)  # lung everywhere: p = 1


def test_ce_weight_adds_binary_cross_entropy_to_the_soft_dice() -> None:
    """loss = sum over structures of soft Dice (batch) + ce_weight x BCE-with-logits; ce_weight 0 is the Dice alone."""
    gen = torch.Generator().manual_seed(0)
    out = {s: torch.randn(4, 1, 8, 8, generator=gen) for s in ("lung", "lesion")}
    batch = {s: (torch.rand(4, 1, 8, 8, generator=gen) > 0.8).float() for s in ("lung", "lesion")}

    def soft_dice(logits: Tensor, truth: Tensor) -> Tensor:  # MONAI's smooth terms 1e-5
        p = torch.sigmoid(logits)
        return 1 - (2 * (p * truth).sum() + 1e-5) / (p.sum() + truth.sum() + 1e-5)

    dice = sum(soft_dice(out[s], batch[s]) for s in out)
    bce = sum(nn.functional.binary_cross_entropy_with_logits(out[s], batch[s]) for s in out)
    assert float(SegmentationTask(_Echo()).loss(out, batch)) == pytest.approx(float(dice), abs=1e-6)
    with_ce = SegmentationTask(_Echo(), ce_weight=0.5).loss(out, batch)
    assert float(with_ce) == pytest.approx(float(dice + 0.5 * bce), abs=1e-6)
    with pytest.raises(ValueError, match="ce_weight must be >= 0"):
        SegmentationTask(_Echo(), ce_weight=-1.0)


def test_a_structure_not_above_chance_is_flagged() -> None:
    """The recipe's fold 2 segmentor (seed 0, Dice loss alone): lung 0.993, lesion 0.000 -> flagged 'lesion'."""
    from survlab.report.segmentation import below_chance

    fold2 = {
        "test/dice_lung": 0.993,
        "test/dice_lesion": 0.0,
        "chance_dice_lung": 0.148,
        "chance_dice_lesion": 0.006,
    }
    assert below_chance(fold2) == ["lesion"]
    assert below_chance({**fold2, "test/dice_lesion": 0.898}) == []
    assert below_chance({**fold2, "test/dice_lung": 0.148}) == [
        "lung",
        "lesion",
    ]  # equal to chance: not above
    assert below_chance({**fold2, "test/dice_lung": float("nan")}) == ["lung", "lesion"]  # no Dice at all
