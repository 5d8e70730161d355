"""Optimiser and learning-rate schedule factories shared by every task."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def build_optimizer(params: Iterable[torch.nn.Parameter], name: str, lr: float, weight_decay: float) -> Optimizer:
    """Adam / AdamW / SGD (momentum 0.9) over trainable parameters."""
    if name not in OPTIMIZERS:
        raise ValueError(f"model.task.optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    kwargs = {"momentum": 0.9} if name == "sgd" else {}
    return OPTIMIZERS[name]([p for p in params if p.requires_grad], lr=lr, weight_decay=weight_decay, **kwargs)


def cosine_warmup_factor(epoch: int, max_epochs: int, warmup_epochs: int, min_factor: float) -> float:
    """LR multiplier at `epoch`: linear warm-up over `warmup_epochs` ((e+1)/w), then cosine down to `min_factor`
    at the last epoch. Unlike the CrossFusion reference (integer division), the floor is never exactly 0."""
    if epoch < warmup_epochs:
        return (epoch + 1) / warmup_epochs
    span = max(1, max_epochs - warmup_epochs - 1)
    progress = min(1.0, (epoch - warmup_epochs) / span)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    opt: Optimizer, name: str, max_epochs: int, warmup_epochs: int = 0, eta_min: float = 1e-6
) -> LambdaLR | None:
    """Epoch-wise schedule: 'cosine' (with optional warm-up) or 'none'."""
    if name in (None, "none", "constant"):
        if warmup_epochs:
            return LambdaLR(opt, lambda e: min(1.0, (e + 1) / warmup_epochs))
        return None
    if name != "cosine":
        raise ValueError(f"model.task.scheduler must be 'cosine' or 'none', got {name!r}")
    base_lr = opt.param_groups[0]["lr"]
    min_factor = min(1.0, eta_min / base_lr) if base_lr > 0 else 0.0
    return LambdaLR(opt, lambda e: cosine_warmup_factor(e, max_epochs, warmup_epochs, min_factor))
