"""`DiffusionTask`: trains an ε-prediction DDPM on the fold's training patients' scaled expression groups, conditioned
on the WSI bag, and samples synthetic expression (PathGen stage 1).

Noise schedule and samplers are diffusers' (`DDPMScheduler`, `DDIMScheduler`): T = `num_train_timesteps` (1000),
linear β from `beta_start` (1e-4) to `beta_end` (0.02); forward process x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε
(`add_noise`). Sampling:
- `ddpm`: ancestral sampling with `variance_type="fixed_small"`, whose `step()` adds √β̃_t · z, the posterior STANDARD
  DEVIATION (β̃_t = (1−ᾱ_{t−1})/(1−ᾱ_t) β_t; tests check it against a direct computation) — the reference added the
  variance β̃_t instead;
- `ddim`: deterministic DDIM (η = 0) over `steps` timesteps, the fast option.
Predicted x₀ is clipped to the scaled range [−`clip_range`, `clip_range`] at each step (diffusers `clip_sample`) and
the final sample is clamped to it; S = `n_samples` samples are averaged. Every patient's noise comes from its own
generator seeded by (seed, case_id, sample), so a patient's synthetic profile does not depend on which patients share
its batch.

Loss: per group (L1 + MSE)/2 between ε̂_g and ε_g, averaged over groups; `val/loss` uses fixed noise and timesteps.
`noise_draws` R: each patient enters a step R times with independent (t, ε) (the bag is attended once; R = 1 is the
reference) — more denoising targets per bag read, which a small cohort needs.

Example:
    >>> task = DiffusionTask(PathGenDenoiser(dims))                        # doctest: +SKIP
    >>> x0 = task.sample(batch, sampler="ddim", steps=50, n_samples=3)  # [B, sum n_g] in [-1, 1]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from torch import Tensor
from torch.nn import functional as F

from survlab.data.batch import Batch
from survlab.models.base import Denoiser
from survlab.tasks.base import Task

SAMPLERS = ("ddpm", "ddim")


def make_scheduler(
    sampler: str = "ddpm",
    num_train_timesteps: int = 1000,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    clip_range: float | None = 1.0,
) -> DDPMScheduler | DDIMScheduler:
    """The diffusers scheduler of `sampler` on the linear schedule (ε-prediction; `clip_range` None = no clipping)."""
    common = dict(
        num_train_timesteps=num_train_timesteps,
        beta_start=beta_start,
        beta_end=beta_end,
        beta_schedule="linear",
        prediction_type="epsilon",
        clip_sample=clip_range is not None,
        clip_sample_range=float(clip_range or 1.0),
    )
    if sampler == "ddpm":
        return DDPMScheduler(variance_type="fixed_small", **common)
    if sampler == "ddim":
        return DDIMScheduler(set_alpha_to_one=True, **common)
    raise ValueError(f"pathgen sampler must be one of {SAMPLERS}, got {sampler!r}")


def patient_seed(seed: int, case_id: str, sample: int) -> int:
    """A stable 63-bit seed for (run seed, patient, sample index): independent of batching and listing order."""
    return int(hashlib.sha256(f"{seed}:{case_id}:{sample}".encode()).hexdigest()[:15], 16)


def split_groups(x: Tensor, sizes: Sequence[int]) -> list[Tensor]:
    """[B, sum n_g] → G tensors [B, n_g]."""
    return list(torch.split(x, list(sizes), dim=1))


class DiffusionTask(Task):
    """ε-prediction DDPM training of `net` (a `Denoiser`, e.g. `PathGenDenoiser`) on `batch.genomics` (scaled groups) | `batch.wsi`."""

    def __init__(
        self,
        net: Denoiser,
        num_train_timesteps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        clip_range: float = 1.0,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        noise_draws: int = 1,
        max_epochs: int = 70,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.net = net
        self.noise_schedule = make_scheduler("ddpm", num_train_timesteps, beta_start, beta_end, clip_range)

    def _loss(self, batch: Batch, generator: torch.Generator | None = None) -> Tensor:
        """Mean over groups of (L1 + MSE)/2 between predicted and true noise at a uniform random timestep."""
        x0 = torch.cat(batch.genomics, dim=1).repeat_interleave(
            self.hparams.noise_draws, dim=0
        )  # [B·R, total]
        b, device = x0.shape[0], x0.device
        noise = torch.randn(x0.shape, generator=generator, device="cpu").to(device)
        t = torch.randint(0, self.hparams.num_train_timesteps, (b,), generator=generator, device="cpu").to(
            device
        )
        x_t = self.noise_schedule.add_noise(x0, noise, t)
        eps_hat = self.net(split_groups(x_t, self.net.sizes), t, batch)
        losses = [
            0.5 * (F.l1_loss(e, n) + F.mse_loss(e, n))
            for e, n in zip(eps_hat, split_groups(noise, self.net.sizes), strict=True)
        ]
        return torch.stack(losses).mean()

    def on_train_epoch_start(self) -> None:
        L.seed_everything(self.hparams.seed * 10_007 + self.current_epoch, workers=True, verbose=False)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss = self._loss(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite diffusion loss at epoch {self.current_epoch}, case_ids "
                f"{batch.case_ids}; lower pipeline.generator.model.task.lr"
            )
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(batch))
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        generator = torch.Generator().manual_seed(
            self.hparams.seed * 1_000_003 + batch_idx
        )  # same noise each epoch
        self.log("val/loss", self._loss(batch, generator), on_epoch=True, batch_size=len(batch))

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(
            self.net.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )

    @torch.no_grad()
    def sample(
        self, batch: Batch, sampler: str = "ddpm", steps: int | None = None, n_samples: int = 1, seed: int = 0
    ) -> Tensor:
        """Average of `n_samples` samples of x₀ [B, sum n_g], clamped to [−clip_range, clip_range]."""
        hp = self.hparams
        scheduler = make_scheduler(sampler, hp.num_train_timesteps, hp.beta_start, hp.beta_end, hp.clip_range)
        scheduler.set_timesteps(steps or hp.num_train_timesteps)
        was_training = self.net.training
        self.net.eval()
        context, mask = self.net.encode_context(batch)
        total, device = sum(self.net.sizes), context.device
        # the S samples of a patient run together (patient-major rows), each from its own generator
        gens = [
            torch.Generator().manual_seed(patient_seed(seed, c, s))
            for c in batch.case_ids
            for s in range(n_samples)
        ]
        x = torch.cat([torch.randn(1, total, generator=g) for g in gens]).to(device)
        for t in scheduler.timesteps:
            eps = torch.cat(
                self.net.denoise(
                    split_groups(x, self.net.sizes), t.expand(len(gens)).to(device), context, mask
                ),
                dim=1,
            )
            kwargs = {"generator": gens} if sampler == "ddpm" else {"eta": 0.0}
            x = scheduler.step(eps, t, x, **kwargs).prev_sample
        self.net.train(was_training)
        return x.clamp(-hp.clip_range, hp.clip_range).reshape(len(batch), n_samples, total).mean(dim=1)


__all__ = ["DiffusionTask", "SAMPLERS", "make_scheduler", "patient_seed", "split_groups"]
