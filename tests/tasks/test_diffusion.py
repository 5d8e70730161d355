"""PathGen's DDPM: schedule, forward process, posterior mean / STD of the ancestral step (direct numpy computation),
samplers (shape, range, exactness with the true noise, batching independence), the (L1 + MSE)/2 loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from survlab.data.batch import Batch
from survlab.models.base import ModalityDims
from survlab.models.pathgen import PathGenDenoiser
from survlab.tasks.diffusion import DiffusionTask, make_scheduler, patient_seed, split_groups

SIZES = (3, 4, 2, 5, 3, 4)


def _betas() -> np.ndarray:
    return np.linspace(1e-4, 0.02, 1000)


def test_linear_schedule_matches_direct_computation() -> None:
    s = make_scheduler("ddpm")
    betas = _betas()
    assert np.allclose(s.betas.numpy(), betas, atol=1e-9)
    assert np.allclose(s.alphas_cumprod.numpy(), np.cumprod(1 - betas), rtol=1e-5)


def test_forward_process_matches_direct_computation() -> None:
    s = make_scheduler("ddpm")
    rng = np.random.default_rng(0)
    x0, eps = rng.uniform(-1, 1, (5, 7)), rng.standard_normal((5, 7))
    t = np.array([0, 10, 250, 600, 999])
    abar = np.cumprod(1 - _betas())[t][:, None]
    expected = np.sqrt(abar) * x0 + np.sqrt(1 - abar) * eps
    got = s.add_noise(
        torch.tensor(x0, dtype=torch.float32), torch.tensor(eps, dtype=torch.float32), torch.tensor(t)
    ).numpy()
    assert np.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("t", [999, 500, 37, 1])
def test_ancestral_step_uses_posterior_mean_and_standard_deviation(t: int) -> None:
    s = make_scheduler("ddpm", clip_range=None)  # no clipping: the textbook posterior
    s.set_timesteps(1000)
    # the schedule itself is checked above; here the step's formula, on the scheduler's own (float32) ᾱ
    abar = s.alphas_cumprod.double().numpy()
    betas = 1 - abar / np.concatenate([[1.0], abar[:-1]])
    rng = np.random.default_rng(t)
    x_t, eps_hat = rng.standard_normal((3, 6)), rng.standard_normal((3, 6))
    seeds = [11, 12, 13]
    gens = [torch.Generator().manual_seed(k) for k in seeds]
    out = s.step(
        torch.tensor(eps_hat, dtype=torch.float64), t, torch.tensor(x_t, dtype=torch.float64), generator=gens
    ).prev_sample.numpy()
    z = np.concatenate(
        [
            torch.randn(1, 6, generator=torch.Generator().manual_seed(k), dtype=torch.float64).numpy()
            for k in seeds
        ]
    )
    x0 = (x_t - np.sqrt(1 - abar[t]) * eps_hat) / np.sqrt(abar[t])
    mean = (np.sqrt(abar[t - 1]) * betas[t] / (1 - abar[t])) * x0 + (
        np.sqrt(1 - betas[t]) * (1 - abar[t - 1]) / (1 - abar[t])
    ) * x_t
    var = (1 - abar[t - 1]) / (1 - abar[t]) * betas[t]
    assert np.allclose(out, mean + np.sqrt(var) * z, atol=2e-4)  # float32 ᾱ arithmetic inside diffusers
    assert not np.allclose(out, mean + var * z, atol=2e-4)  # the reference's bug: the variance as the scale


@pytest.mark.parametrize(("sampler", "steps"), [("ddpm", None), ("ddim", 20)])
def test_samplers_recover_x0_with_the_true_noise(sampler: str, steps: int | None) -> None:
    s = make_scheduler(sampler)
    s.set_timesteps(steps or 1000)
    x0 = torch.rand(4, 9) * 1.6 - 0.8
    x = torch.randn(4, 9, generator=torch.Generator().manual_seed(0))
    gens = [torch.Generator().manual_seed(i) for i in range(4)]
    for t in s.timesteps:
        abar = s.alphas_cumprod[t]
        eps = (x - abar.sqrt() * x0) / (1 - abar).sqrt()
        x = s.step(eps, t, x, **({"generator": gens} if sampler == "ddpm" else {})).prev_sample
    assert torch.allclose(x, x0, atol=1e-4)


def _batch(n_patches: list[int], dim: int = 6, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    b, n = len(n_patches), max(n_patches)
    wsi = torch.zeros(b, n, dim)
    mask = torch.zeros(b, n, dtype=torch.bool)
    for i, k in enumerate(n_patches):
        wsi[i, :k] = torch.randn(k, dim, generator=g)
        mask[i, :k] = True
    genomics = [torch.rand(b, s, generator=g) * 2 - 1 for s in SIZES]
    return Batch(
        case_ids=[f"P{i}" for i in range(b)],
        index=torch.arange(b),
        time=torch.ones(b),
        event=torch.ones(b, dtype=torch.bool),
        time_bin=torch.zeros(b, dtype=torch.long),
        wsi=wsi,
        wsi_mask=mask,
        genomics=genomics,
    )


def _task(**kw: object) -> DiffusionTask:
    torch.manual_seed(0)
    net = PathGenDenoiser(
        ModalityDims(wsi_dim=6, genomic_sizes=SIZES),
        dim=16,
        enc_hidden=[16],
        dec_hidden=[16],
        time_dim=8,
        time_hidden=16,
        rounds=2,
        heads=2,
        ff_dim=16,
        dropout=0.0,
    )
    return DiffusionTask(net, **kw)


@pytest.mark.parametrize(("sampler", "steps", "n_samples"), [("ddim", 5, 3), ("ddpm", 8, 2)])
def test_sampler_shape_range_and_batch_independence(sampler: str, steps: int, n_samples: int) -> None:
    task = _task()
    batch = _batch([5, 2, 7])
    x = task.sample(batch, sampler=sampler, steps=steps, n_samples=n_samples, seed=3)
    assert x.shape == (3, sum(SIZES))
    assert x.abs().max() <= 1.0 and torch.isfinite(x).all()
    # patient 1 alone (no padding, no neighbours) gets exactly the same profile: own generators + masks
    alone = Batch(
        case_ids=["P1"],
        index=batch.index[1:2],
        time=batch.time[1:2],
        event=batch.event[1:2],
        time_bin=batch.time_bin[1:2],
        wsi=batch.wsi[1:2, :2],
        wsi_mask=batch.wsi_mask[1:2, :2],
        genomics=[g[1:2] for g in batch.genomics],
    )
    assert torch.allclose(
        task.sample(alone, sampler=sampler, steps=steps, n_samples=n_samples, seed=3), x[1:2], atol=1e-5
    )
    assert not torch.allclose(
        task.sample(batch, sampler=sampler, steps=steps, n_samples=n_samples, seed=4), x
    )
    assert patient_seed(3, "P1", 0) != patient_seed(3, "P1", 1) != patient_seed(4, "P1", 0)


def test_loss_is_mean_over_groups_of_l1_plus_mse_halves() -> None:
    task = _task(noise_draws=2)
    task.net.eval()
    batch = _batch([4, 3])
    got = task._loss(batch, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    x0 = torch.cat(batch.genomics, 1).repeat_interleave(2, dim=0)
    noise = torch.randn(x0.shape, generator=g)
    t = torch.randint(0, 1000, (4,), generator=g)
    eps = task.net(split_groups(task.noise_schedule.add_noise(x0, noise, t), SIZES), t, batch)
    per_group = [
        0.5 * ((e - n).abs().mean() + ((e - n) ** 2).mean())
        for e, n in zip(eps, split_groups(noise, SIZES), strict=True)
    ]
    assert torch.allclose(got, torch.stack(per_group).mean())


def test_denoiser_ignores_padding_and_sees_the_bag() -> None:
    task = _task()
    net = task.net.eval()
    batch = _batch([3, 6])
    x_t = [torch.randn(2, s) for s in SIZES]
    t = torch.tensor([100, 700])
    both = torch.cat(net(x_t, t, batch), 1)
    first = Batch(
        case_ids=["P0"],
        index=batch.index[:1],
        time=batch.time[:1],
        event=batch.event[:1],
        time_bin=batch.time_bin[:1],
        wsi=batch.wsi[:1, :3],
        wsi_mask=batch.wsi_mask[:1, :3],
    )
    alone = torch.cat(net([x[:1] for x in x_t], t[:1], first), 1)
    assert torch.allclose(alone, both[:1], atol=1e-5)
    other = Batch(**{**first.__dict__, "wsi": first.wsi + 1.0})
    assert not torch.allclose(
        torch.cat(net([x[:1] for x in x_t], t[:1], other), 1), alone
    )  # conditioned on WSI


def test_unknown_sampler_is_a_one_line_error() -> None:
    with pytest.raises(ValueError, match="sampler must be one of"):
        make_scheduler("euler")
