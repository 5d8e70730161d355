"""Optimiser and learning-rate schedule factories shared by every task.

A schedule is a pure function of the optimiser step (`lr_factor`), wrapped in a `LambdaLR` that the task steps after
every optimiser step. Warm-up is always linear over optimiser steps; the decay after it moves per step or per epoch
(`interval`), as the reference code of a recipe does. Both are scaled to the run: the warm-up covers `warmup_epochs`
of the run's own steps per epoch and the cosine's period is the run's remaining epochs (trainer.max_epochs), so every
requested epoch trains at a useful rate (`trainer.max_epochs=2`: epoch 2 at half the peak, not at eta_min).

The values are those of torch's schedulers, `SequentialLR([LinearLR(1/W, 1, W-1), CosineAnnealingLR(T_max, eta_min)])`
stepped per optimiser step (interval=step) or the cosine stepped per epoch (interval=epoch), and
`CosineAnnealingWarmRestarts` for restarts (tests/tasks/test_optim.py checks equality). One `LambdaLR` of the step
holds them because a warm-up per step and a decay per epoch cannot share one torch scheduler's `step()`, and a
`LambdaLR`'s state is only the step count: a resumed run continues the same sequence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import partial

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
SCHEDULES = ("cosine", "cosine_restarts", "none")
INTERVALS = ("step", "epoch")


def build_optimizer(
    params: Iterable[torch.nn.Parameter], name: str, lr: float, weight_decay: float
) -> Optimizer:
    """Adam / AdamW / SGD (momentum 0.9) over trainable parameters."""
    if name not in OPTIMIZERS:
        raise ValueError(f"model.task.optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    kwargs = {"momentum": 0.9} if name == "sgd" else {}
    return OPTIMIZERS[name](
        [p for p in params if p.requires_grad], lr=lr, weight_decay=weight_decay, **kwargs
    )


def lr_factor(
    step: int,
    schedule: str,
    steps_per_epoch: int,
    max_epochs: int,
    warmup_epochs: int = 0,
    restart_epochs: int | None = None,
    min_factor: float = 0.0,
    interval: str = "epoch",
) -> float:
    """LR multiplier of optimiser step `step` (0-based).

    - warm-up: (step + 1) / W over the W = warmup_epochs * steps_per_epoch first steps (the first step is already
      > 0, the last warm-up step is at the peak);
    - then 'none': 1; 'cosine': torch's CosineAnnealingLR with T_max = the decay's steps (or epochs) of the run,
      i.e. a half-cosine from 1 that would reach `min_factor` one unit after the run's last step (every unit of the
      run, the last one included, trains above the floor);
      'cosine_restarts': SGDR / CosineAnnealingWarmRestarts(T_0=restart_epochs, T_mult=1) — back at 1 every
      `restart_epochs` epochs after the warm-up, never exactly 0.
    `interval='epoch'` holds the decay constant within an epoch (a scheduler stepped per epoch); 'step' moves it
    every optimiser step. Unlike the CrossFusion reference (integer division), the floor is never exactly 0.

    Example (2 steps/epoch, 1 warm-up epoch, cosine over the other 2 epochs' 4 steps; then 1 step/epoch, 2 epochs):
        >>> [round(lr_factor(s, "cosine", 2, 3, 1, interval="step"), 2) for s in range(6)]
        [0.5, 1.0, 1.0, 0.85, 0.5, 0.15]
        >>> [round(lr_factor(s, "cosine", 1, 2), 2) for s in range(2)]
        [1.0, 0.5]
    """
    warmup_steps = warmup_epochs * steps_per_epoch
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "none":
        return 1.0
    units_per_epoch = steps_per_epoch if interval == "step" else 1
    position = step - warmup_steps if interval == "step" else step // steps_per_epoch - warmup_epochs
    if schedule == "cosine_restarts":
        assert restart_epochs is not None  # build_scheduler refuses cosine_restarts without it
        period = restart_epochs * units_per_epoch
        progress = (position % period) / period
    else:
        t_max = max(1, (max_epochs - warmup_epochs) * units_per_epoch)  # CosineAnnealingLR's T_max
        progress = min(1.0, position / t_max)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def describe_schedule(
    name: str | None,
    base_lr: float,
    max_epochs: int,
    warmup_epochs: int = 0,
    eta_min: float = 1e-6,
    steps_per_epoch: int = 1,
    restart_epochs: int | None = None,
    interval: str = "epoch",
) -> str:
    """One log line saying which schedule a run uses, scaled to its epochs, with the lr of each of its first and
    last epochs (at the epoch's first optimiser step).

        >>> describe_schedule("cosine", 1e-3, 2)
        'lr schedule: cosine (CosineAnnealingLR T_max=2 epochs, eta_min 1e-06, per epoch) over 2 epochs; lr at epoch 1: 0.001, epoch 2: 0.0005005'
    """
    name = "none" if name in (None, "constant") else name
    if not schedules_lr(name, warmup_epochs):
        return f"lr schedule: constant {base_lr:.4g} over {max_epochs} epochs"
    min_factor = min(1.0, eta_min / base_lr) if base_lr > 0 else 0.0
    unit = "steps" if interval == "step" else "epochs"
    decay = (max_epochs - warmup_epochs) * (steps_per_epoch if interval == "step" else 1)
    parts = []
    if warmup_epochs:
        parts.append(
            f"linear warm-up over {warmup_epochs * steps_per_epoch} steps ({warmup_epochs} epoch{'s' if warmup_epochs > 1 else ''})"
        )
    if name == "cosine":
        parts.append(
            f"cosine (CosineAnnealingLR T_max={max(1, decay)} {unit}, eta_min {eta_min:.4g}, per {interval})"
        )
    elif name == "cosine_restarts":
        parts.append(f"cosine restarts every {restart_epochs} epochs (eta_min {eta_min:.4g}, per {interval})")
    else:
        parts.append("constant")
    epochs = sorted({1, 2, max_epochs - 1, max_epochs} & set(range(1, max_epochs + 1)))
    lrs = ", ".join(
        f"epoch {e}: "
        f"{base_lr * lr_factor((e - 1) * steps_per_epoch, name, steps_per_epoch, max_epochs, warmup_epochs, restart_epochs, min_factor, interval):.4g}"
        for e in epochs
    )
    return f"lr schedule: {' then '.join(parts)} over {max_epochs} epochs; lr at {lrs}"


def schedules_lr(name: str | None, warmup_epochs: int = 0) -> bool:
    """Whether scheduler `name` with `warmup_epochs` changes the lr at all (False: 'none'/None without warm-up)."""
    return name not in (None, "none", "constant") or warmup_epochs > 0


def build_scheduler(
    opt: Optimizer,
    name: str | None,
    max_epochs: int,
    warmup_epochs: int = 0,
    eta_min: float = 1e-6,
    steps_per_epoch: int = 1,
    restart_epochs: int | None = None,
    interval: str = "epoch",
) -> LambdaLR | None:
    """A `LambdaLR` over `lr_factor`, to be stepped after EVERY optimiser step (`steps_per_epoch` of them per epoch);
    None when there is nothing to schedule ('none' without warm-up)."""
    name = "none" if name in (None, "constant") else name
    if name not in SCHEDULES:
        raise ValueError(
            f"model.task.scheduler must be 'cosine' or 'none' (or 'cosine_restarts' with "
            f"model.task.restart_epochs), got {name!r}"
        )
    if interval not in INTERVALS:
        raise ValueError(f"model.task.scheduler_interval must be one of {INTERVALS}, got {interval!r}")
    if name == "cosine_restarts" and (restart_epochs is None or int(restart_epochs) < 1):
        raise ValueError(
            f"model.task.scheduler=cosine_restarts needs model.task.restart_epochs >= 1 (the restart "
            f"period in epochs), got {restart_epochs!r}"
        )
    if steps_per_epoch < 1 or warmup_epochs < 0 or int(warmup_epochs) != warmup_epochs:
        raise ValueError(
            f"steps_per_epoch must be >= 1 and model.task.warmup_epochs a whole number >= 0, got "
            f"{steps_per_epoch} and {warmup_epochs}"
        )
    if not schedules_lr(name, warmup_epochs):
        return None
    base_lr = opt.param_groups[0]["lr"]
    min_factor = min(1.0, eta_min / base_lr) if base_lr > 0 else 0.0
    return LambdaLR(
        opt,
        partial(
            lr_factor,
            schedule=name,
            steps_per_epoch=int(steps_per_epoch),
            max_epochs=int(max_epochs),
            warmup_epochs=int(warmup_epochs),
            restart_epochs=None if restart_epochs is None else int(restart_epochs),
            min_factor=min_factor,
            interval=interval,
        ),
    )
