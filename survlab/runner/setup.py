"""Build Lightning callbacks and loggers from the Hydra config; resolve resume checkpoints."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, ProgressBar
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

from survlab.runner.config_check import resolve_auto
from survlab.utils.files import atomic_path

log = logging.getLogger(__name__)


LAST_CKPT = "last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary name beside the target, then renamed: a full disk or a kill while saving
    never leaves a truncated file under a checkpoint's name (the previous last.ckpt stays intact). A failed write
    raises OSError naming the checkpoint path."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)  # serialise first: a write error is then a plain OSError from the file
        try:
            with atomic_path(target) as tmp, open(tmp, "wb") as f:
                f.write(buffer.getbuffer())
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:
            raise OSError(err.errno, f"cannot write checkpoint {target} ({err.__cause__ or err})") from err


class LastCheckpoint(ModelCheckpoint):
    """`<run dir>/checkpoints/last.ckpt`, rewritten after every epoch's validation — whatever any monitored
    checkpoint decided (Lightning 2.6 writes `save_last` only when a top-k checkpoint was saved, so with
    selection=best_val its last.ckpt stayed at the best epoch). Lightning runs checkpoint callbacks after every other
    callback, and this one after the configured ones, so the file holds the final state of early stopping and of
    the best-checkpoint tracker: resuming from it repeats the uninterrupted run exactly."""

    def __init__(self, dirpath: str | Path) -> None:
        super().__init__(
            dirpath=str(dirpath),
            filename=Path(LAST_CKPT).stem,
            monitor=None,
            save_top_k=1,
            save_last=False,
            enable_version_counter=False,
            auto_insert_metric_name=False,
        )


def build_callbacks(cfg: DictConfig, out_dir: Path) -> list[Callback]:
    """Instantiate `cfg.callbacks` and append the `LastCheckpoint` used for resuming and for selection=last.

    selection=last: no early stopping and no monitored checkpoint (nothing may look at validation to pick the
    model); the tested weights are those of last.ckpt."""
    resolve_auto(cfg)  # monitor / monitor_mode: auto -> the primary objective's metric and direction
    callbacks: list[Callback] = []
    for name, cb_cfg in (cfg.get("callbacks") or {}).items():
        if cb_cfg is None or "_target_" not in cb_cfg:
            continue
        callback = hydra.utils.instantiate(cb_cfg)
        if isinstance(callback, ModelCheckpoint):
            callback.save_last = False  # last.ckpt belongs to LastCheckpoint
            if cfg.selection == "last":
                continue
        if isinstance(callback, EarlyStopping) and cfg.selection == "last":
            log.info("selection=last: early stopping disabled")
            continue
        if isinstance(callback, ProgressBar) and not OmegaConf.select(
            cfg, "trainer.enable_progress_bar", default=True
        ):
            continue  # Lightning refuses a progress-bar callback with enable_progress_bar=false
        callbacks.append(callback)
        log.debug("callback %s: %s", name, type(callback).__name__)
    callbacks.append(LastCheckpoint(out_dir / "checkpoints"))
    return callbacks


def _wandb_wanted(cfg: DictConfig) -> bool:
    return "wandb" in (cfg.get("logger") or {}) and os.environ.get("WANDB_MODE", "").lower() != "disabled"


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def build_loggers(cfg: DictConfig, out_dir: Path) -> list[Logger]:
    """CSV (always, when configured), TensorBoard and W&B. W&B is offline by default, its files inside the run dir,
    and skipped entirely when WANDB_MODE=disabled (tests/CI)."""
    loggers: list[Logger] = []
    for name, lg_cfg in (cfg.get("logger") or {}).items():
        if lg_cfg is None or "_target_" not in lg_cfg:
            continue
        if name == "wandb":
            if not _wandb_wanted(cfg):
                continue
            wandb_dir = out_dir / "wandb"
            wandb_dir.mkdir(parents=True, exist_ok=True)
            for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
                os.environ.setdefault(var, str(wandb_dir))
        if name == "wandb" and _in_multirun():
            # every job of one sweep shares one W&B group: the sweep dir's name (also used by the summary run)
            lg_cfg = OmegaConf.merge(lg_cfg, {"group": Path(str(HydraConfig.get().sweep.dir)).name})
        logger = hydra.utils.instantiate(lg_cfg)
        if name == "wandb" and getattr(logger, "_wandb_init", {}).get("anonymous", "") is None:
            # Lightning passes anonymous=None, which wandb >= 0.22 warns about on every run ("has no effect")
            logger._wandb_init.pop("anonymous")
        if name == "wandb":
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        loggers.append(logger)
    return loggers


def finish_loggers(loggers: list[Logger]) -> None:
    """Always close W&B runs (called in a `finally`), so one failing job does not break the next one of a sweep."""
    from survlab.utils.quiet import offline_run_line

    for logger in loggers:
        if type(logger).__name__ == "WandbLogger":
            try:
                import wandb

                if wandb.run is not None:
                    line = offline_run_line(wandb.run.dir)  # None unless an offline-run-* folder
                    wandb.finish()
                    if line:  # W&B itself is silent (survlab.utils.quiet): where the run is, how to upload it
                        print(line)
            except Exception as exc:  # never mask the job's own outcome
                log.warning("wandb.finish() failed: %s", exc)


def resolve_ckpt_path(ckpt_path: str | None, out_dir: Path) -> str | None:
    """`auto` (default) / `last`: resume from `<job dir>/checkpoints/last.ckpt` when it exists (a fresh start
    otherwise; run.py has checked that the dir holds this configuration's job); None: start afresh; else a path."""
    if ckpt_path in (None, "", "null"):
        return None
    if ckpt_path in ("auto", "last"):
        last = out_dir / "checkpoints" / LAST_CKPT
        if last.exists():
            log.info("resuming from %s", last)
            return str(last)
        return None
    if not Path(ckpt_path).exists():
        raise FileNotFoundError(
            f"ckpt_path={ckpt_path} does not exist; pass a checkpoint file, or resume=<run dir>"
        )
    return ckpt_path
