"""Learning-rate schedule and optimiser factories."""

import math

import pytest
import torch

from survlab.tasks.optim import build_optimizer, build_scheduler, cosine_warmup_factor


def test_cosine_warmup_shape():
    # 1 warm-up epoch of 20 (the GGMF recipe): epoch 0 at full lr after warm-up factor 1/1, then cosine to the floor
    f = [cosine_warmup_factor(e, 20, 1, 0.01) for e in range(20)]
    assert f[0] == pytest.approx(1.0)
    assert f[1] == pytest.approx(1.0)
    assert f[-1] == pytest.approx(0.01)
    assert all(a >= b for a, b in zip(f[1:], f[2:], strict=False))
    # 3 warm-up epochs ramp linearly
    assert [cosine_warmup_factor(e, 10, 3, 0.0) for e in range(3)] == pytest.approx([1 / 3, 2 / 3, 1.0])


def test_cosine_floor_is_eta_min_not_zero():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], "adam", lr=1e-4, weight_decay=4e-6)
    sched = build_scheduler(opt, "cosine", max_epochs=100, eta_min=1e-6)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert min(lrs) == pytest.approx(1e-6)
    assert all(lr > 0 for lr in lrs)  # the CrossFusion reference trains some epochs at lr 0
    assert lrs[50] == pytest.approx(1e-6 + (1e-4 - 1e-6) * 0.5 * (1 + math.cos(math.pi * 50 / 99)))


def test_bad_names_raise():
    p = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match="model.task.optimizer must be one of"):
        build_optimizer([p], "lbfgs", 1e-3, 0.0)
    with pytest.raises(ValueError, match="model.task.scheduler must be 'cosine' or 'none'"):
        build_scheduler(torch.optim.SGD([p], lr=0.1), "step", 10)
    assert build_scheduler(torch.optim.SGD([p], lr=0.1), "none", 10) is None
