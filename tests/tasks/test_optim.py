"""Learning-rate schedule and optimiser factories, and the schedule as SurvivalTask runs it in a real fit."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from survlab.data.batch import PatientItem, collate
from survlab.models.base import ModalityDims, Prediction, SurvivalNet
from survlab.tasks.optim import build_optimizer, build_scheduler, lr_factor
from survlab.tasks.survival import SurvivalTask
from tests.helpers.runs import OptimizerStepRecorder


def _lrs(sched: torch.optim.lr_scheduler.LRScheduler, n_steps: int) -> list[float]:
    """The lr of each of `n_steps` optimiser steps, stepping the scheduler after each one (as the task does)."""
    lrs = []
    for _ in range(n_steps):
        lrs.append(sched.optimizer.param_groups[0]["lr"])
        sched.optimizer.step()
        sched.step()
    return lrs


def _adam(lr: float = 1e-4) -> torch.optim.Optimizer:
    return build_optimizer([torch.nn.Parameter(torch.zeros(1))], "adam", lr=lr, weight_decay=0.0)


def test_warmup_is_linear_over_the_first_epochs_optimizer_steps() -> None:
    # GGMF: 1 warm-up epoch of 10 steps, then a per-step cosine over the other 19 epochs down to the floor
    f = [
        lr_factor(
            s, "cosine", steps_per_epoch=10, max_epochs=20, warmup_epochs=1, min_factor=0.01, interval="step"
        )
        for s in range(200)
    ]
    assert f[:10] == pytest.approx(
        [(s + 1) / 10 for s in range(10)]
    )  # first step at 1/10, peak at the epoch's end
    assert f[10] == pytest.approx(1.0) and f[-1] > 0.01  # the last step still trains above the floor
    assert all(a > b for a, b in zip(f[10:], f[11:], strict=False))  # moves every step
    assert f[100] == pytest.approx(
        0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 90 / 190))
    )  # T_max = 190 steps
    # interval=epoch: the same per-step warm-up, then one lr per epoch
    g = [lr_factor(s, "cosine", 10, 20, 1, min_factor=0.01, interval="epoch") for s in range(200)]
    assert g[:10] == f[:10] and g[10:20] == [1.0] * 10 and len(set(g[20:30])) == 1
    assert g[-1] == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 18 / 19)))  # T_max = 19 epochs


def _torch_warmup_cosine(
    lr: float, steps_per_epoch: int, max_epochs: int, warmup_epochs: int, eta_min: float, interval: str
) -> list[float]:
    """The lr of every optimiser step from torch's own schedulers: LinearLR over the warm-up steps, then
    CosineAnnealingLR over the run's remaining steps (SequentialLR, stepped per step) or epochs (stepped per epoch)."""
    w = warmup_epochs * steps_per_epoch
    n = max_epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler
    if interval == "step":
        opt = _adam(lr)
        cosine = sched.CosineAnnealingLR(opt, T_max=n - w, eta_min=eta_min)
        if not w:
            return _lrs(cosine, n)
        warm = sched.LinearLR(opt, start_factor=1 / w, end_factor=1.0, total_iters=w - 1)
        return _lrs(sched.SequentialLR(opt, [warm, cosine], milestones=[w]), n)
    warm_lrs = _lrs(sched.LinearLR(_adam(lr), 1 / w, 1.0, total_iters=w - 1), w) if w else []
    per_epoch = _lrs(
        sched.CosineAnnealingLR(_adam(lr), T_max=max_epochs - warmup_epochs, eta_min=eta_min),
        max_epochs - warmup_epochs,
    )
    return warm_lrs + [x for x in per_epoch for _ in range(steps_per_epoch)]


@pytest.mark.parametrize(
    ("steps_per_epoch", "max_epochs", "warmup_epochs", "interval"),
    [
        (1, 2, 0, "epoch"),
        (3, 2, 0, "epoch"),
        (4, 5, 1, "epoch"),
        (3, 6, 2, "step"),
        (5, 3, 0, "step"),
        (10, 20, 1, "step"),
    ],
)
def test_warmup_cosine_equals_torch_linear_then_cosine_annealing(
    steps_per_epoch: int, max_epochs: int, warmup_epochs: int, interval: str
) -> None:
    """survlab's schedule is torch's LinearLR + CosineAnnealingLR (T_max = the run's decay steps / epochs)."""
    ours = _lrs(
        build_scheduler(
            _adam(1e-3),
            "cosine",
            max_epochs,
            warmup_epochs,
            1e-6,
            steps_per_epoch=steps_per_epoch,
            interval=interval,
        ),
        steps_per_epoch * max_epochs,
    )
    ref = _torch_warmup_cosine(1e-3, steps_per_epoch, max_epochs, warmup_epochs, 1e-6, interval)
    assert ours == pytest.approx(ref, rel=1e-9, abs=1e-15)


def test_a_two_epoch_run_trains_its_second_epoch_well_above_eta_min() -> None:
    """trainer.max_epochs=2: the cosine is scaled to the 2 epochs; epoch 2 trains at half the peak (it was eta_min)."""
    lrs = _lrs(build_scheduler(_adam(1e-3), "cosine", 2, eta_min=1e-6, steps_per_epoch=3), 6)
    assert lrs[:3] == [1e-3] * 3
    assert lrs[3:] == pytest.approx([1e-6 + (1e-3 - 1e-6) * 0.5] * 3)  # 5.005e-4, ~500x eta_min
    # a one-epoch run is unchanged: the peak lr throughout
    assert _lrs(build_scheduler(_adam(1e-3), "cosine", 1, eta_min=1e-6, steps_per_epoch=3), 3) == [1e-3] * 3


@pytest.mark.parametrize("interval", ["step", "epoch"])
def test_cosine_restarts_equal_torch_warm_restarts(interval: str) -> None:
    steps_per_epoch, restart, n_epochs = 3, 4, 10
    ours = _lrs(
        build_scheduler(
            _adam(),
            "cosine_restarts",
            n_epochs,
            eta_min=1e-6,
            steps_per_epoch=steps_per_epoch,
            restart_epochs=restart,
            interval=interval,
        ),
        steps_per_epoch * n_epochs,
    )
    ref_opt = _adam()
    if interval == "step":  # reference stepped per iteration: period restart * steps_per_epoch iterations
        ref = _lrs(
            torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
                ref_opt, T_0=restart * steps_per_epoch, eta_min=1e-6
            ),
            steps_per_epoch * n_epochs,
        )
    else:  # reference stepped per epoch: one lr for all steps of an epoch
        per_epoch = _lrs(
            torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(ref_opt, T_0=restart, eta_min=1e-6), n_epochs
        )
        ref = [lr for lr in per_epoch for _ in range(steps_per_epoch)]
    assert ours == pytest.approx(ref, rel=1e-9, abs=1e-15)
    assert [ours[e * steps_per_epoch] for e in (0, 4, 8)] == pytest.approx([1e-4] * 3)  # back at the peak
    assert min(ours) > 1e-6


def test_cosine_floor_is_eta_min_not_zero():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], "adam", lr=1e-4, weight_decay=4e-6)
    sched = build_scheduler(opt, "cosine", max_epochs=100, eta_min=1e-6)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert min(lrs) == pytest.approx(1e-6 + (1e-4 - 1e-6) * 0.5 * (1 + math.cos(math.pi * 99 / 100)))
    assert (
        min(lrs) > 1e-6
    )  # the floor is approached, never trained at; the CrossFusion reference trains at lr 0
    assert lrs[50] == pytest.approx(1e-6 + (1e-4 - 1e-6) * 0.5 * (1 + math.cos(math.pi * 50 / 100)))


def test_bad_names_raise():
    p = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match="model.task.optimizer must be one of"):
        build_optimizer([p], "lbfgs", 1e-3, 0.0)
    with pytest.raises(ValueError, match="model.task.scheduler must be 'cosine' or 'none'"):
        build_scheduler(torch.optim.SGD([p], lr=0.1), "step", 10)
    with pytest.raises(ValueError, match="cosine_restarts needs model.task.restart_epochs >= 1"):
        build_scheduler(torch.optim.SGD([p], lr=0.1), "cosine_restarts", 10)
    with pytest.raises(ValueError, match="model.task.scheduler_interval must be one of"):
        build_scheduler(torch.optim.SGD([p], lr=0.1), "cosine", 10, interval="batch")
    with pytest.raises(ValueError, match="model.task.warmup_epochs a whole number >= 0, got 4 and 0.5"):
        build_scheduler(torch.optim.SGD([p], lr=0.1), "cosine", 10, warmup_epochs=0.5, steps_per_epoch=4)
    assert build_scheduler(torch.optim.SGD([p], lr=0.1), "none", 10) is None


class ClinicalNet(SurvivalNet):
    """Linear hazards from clinical columns."""

    modalities = ("clinical",)

    def __init__(self, dims: ModalityDims) -> None:
        super().__init__(dims)
        self.lin = torch.nn.Linear(dims.clinical_dim, dims.n_bins)

    def forward(self, batch) -> Prediction:
        return Prediction(hazard_logits=self.lin(batch.clinical))


@pytest.mark.parametrize(
    ("accumulate", "limit", "expected_patients"), [(2, None, [4, 4, 2]), (1, 4, [2, 2, 2, 2])]
)
def test_task_warms_up_over_the_optimizer_steps_the_trainer_runs(
    tmp_path: Path, accumulate: int, limit: int | None, expected_patients: list[int]
) -> None:
    # 10 patients in batches of 2 = 5 batches per epoch; the trainer runs ceil(5 / accumulate) (or `limit` batches)
    items = [
        PatientItem(
            case_id=f"P{i}",
            index=i,
            time=5.0 + i,
            event=bool(i % 2),
            time_bin=i % 4,
            clinical=torch.tensor([float(i), 1.0]),
        )
        for i in range(10)
    ]
    task = SurvivalTask(
        ClinicalNet(ModalityDims(clinical_dim=2, n_bins=4)),
        lr=1e-3,
        scheduler="none",
        warmup_epochs=1,
        max_epochs=2,
    )
    recorder = OptimizerStepRecorder(str(tmp_path / "steps.json"))
    trainer = L.Trainer(
        max_epochs=2,
        accumulate_grad_batches=accumulate,
        limit_train_batches=limit,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[recorder],
    )
    trainer.fit(task, train_dataloaders=DataLoader(items, batch_size=2, collate_fn=collate))
    steps = json.loads((tmp_path / "steps.json").read_text())
    n = len(expected_patients)
    assert [s["patients"] for s in steps] == expected_patients * 2
    assert [s["lr"] for s in steps] == pytest.approx([1e-3 * (i + 1) / n for i in range(n)] + [1e-3] * n)


def test_task_scales_the_cosine_to_the_trainers_max_epochs_and_logs_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A task configured for 20 epochs run with trainer.max_epochs=2: the cosine spans the 2 epochs the trainer runs
    (epoch 2 at ~half the peak lr, far above eta_min), and the run log names the schedule that ran."""
    items = [
        PatientItem(
            case_id=f"P{i}",
            index=i,
            time=5.0 + i,
            event=bool(i % 2),
            time_bin=i % 4,
            clinical=torch.tensor([float(i), 1.0]),
        )
        for i in range(8)
    ]
    task = SurvivalTask(
        ClinicalNet(ModalityDims(clinical_dim=2, n_bins=4)),
        lr=1e-3,
        scheduler="cosine",
        eta_min=1e-6,
        max_epochs=20,
    )
    recorder = OptimizerStepRecorder(str(tmp_path / "steps.json"))
    trainer = L.Trainer(
        max_epochs=2,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[recorder],
    )
    with caplog.at_level("INFO", logger="survlab.tasks.outcome"):
        trainer.fit(task, train_dataloaders=DataLoader(items, batch_size=4, collate_fn=collate))
    steps = json.loads((tmp_path / "steps.json").read_text())
    assert [s["lr"] for s in steps] == pytest.approx([1e-3, 1e-3, 5.005e-4, 5.005e-4])
    assert (
        "lr schedule: cosine (CosineAnnealingLR T_max=2 epochs, eta_min 1e-06, per epoch) over 2 epochs; "
        "lr at epoch 1: 0.001, epoch 2: 0.0005005" in caplog.text
    )
