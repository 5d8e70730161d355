"""Helpers for tests and notebooks: compose/run a job in-process, a callback simulating a killed run, and one
recording what every optimiser step really did (learning rate, patients)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import lightning as L
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict
from torch.optim import Optimizer

from survlab.config.search_path import PACKAGE_CONF_DIR as CONF_DIR  # noqa: E402


class KillAtEpoch(L.Callback):
    """Raise at the start of training epoch `epoch` (or, with `batch`, before that batch of the epoch), simulating a
    job killed mid-run (as kill -9 would: nothing is saved on the way out):
    `+callbacks.kill._target_=tests.helpers.runs.KillAtEpoch +callbacks.kill.epoch=2 +callbacks.kill.batch=1`.
    With `env`, it fires only while that environment variable is "1" (so a re-run with the same config resumes).
    `hard=true` ends the process at once with exit status 137 instead (`os._exit`, as kill -9: no Python cleanup,
    no exception handlers, no markers)."""

    def __init__(
        self, epoch: int, batch: int | None = None, env: str | None = None, hard: bool = False
    ) -> None:
        self.epoch, self.batch, self.hard = epoch, batch, hard
        self.armed = env is None or os.environ.get(env) == "1"

    def _kill(self, message: str) -> None:
        if self.hard:
            os._exit(137)
        raise RuntimeError(message)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.armed and self.batch is None and trainer.current_epoch == self.epoch:
            self._kill(f"simulated kill at the start of epoch {self.epoch}")

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if (
            self.armed
            and self.batch is not None
            and trainer.current_epoch == self.epoch
            and batch_idx == self.batch
        ):
            self._kill(f"simulated kill at epoch {self.epoch}, batch {self.batch}")


class OptimizerStepRecorder(L.Callback):
    """Record each optimiser step as it runs in training: epoch, lr of the first param group, and the number of
    patients whose gradients it applies (sum of the batch sizes since the previous step, i.e. batch x accumulation).
    Written as a JSON list to `path` when fitting ends:
    `+callbacks.steps._target_=tests.helpers.runs.OptimizerStepRecorder +callbacks.steps.path=steps.json`."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.steps: list[dict[str, float | int]] = []
        self._patients = 0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._patients += len(batch)

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer
    ) -> None:
        self.steps.append(
            {
                "epoch": trainer.current_epoch,
                "lr": optimizer.param_groups[0]["lr"],
                "patients": self._patients,
            }
        )
        self._patients = 0

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.path.write_text(json.dumps(self.steps))


def compose_config(output_dir: Path, overrides: list[str]) -> DictConfig:
    """Compose `conf/config.yaml` exactly as `python -m survlab.run <overrides>` would, with the run's output dir set
    to `output_dir` (so `${hydra:runtime.output_dir}` resolves) — for tests and notebooks."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", return_hydra_config=True, overrides=list(overrides))
    output_dir.mkdir(parents=True, exist_ok=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.runtime.cwd = str(Path.cwd())
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    return cfg


def run_job(output_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """Run one job in-process (no subprocess, no Hydra job markers) and return its metrics dict."""
    from survlab.runner.train import train

    cfg = compose_config(output_dir, overrides)
    return train(cfg, output_dir)
