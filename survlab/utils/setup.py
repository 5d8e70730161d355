"""Build Lightning callbacks and loggers from the Hydra config; resolve resume checkpoints."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def build_callbacks(cfg: DictConfig) -> list[Callback]:
    """Instantiate `cfg.callbacks`; with selection=last, checkpointing keeps only the last epoch and no early stopping
    (nothing may look at validation to pick the model)."""
    callbacks: list[Callback] = []
    for name, cb_cfg in (cfg.get("callbacks") or {}).items():
        if cb_cfg is None or "_target_" not in cb_cfg:
            continue
        callback = hydra.utils.instantiate(cb_cfg)
        if cfg.selection == "last":
            if isinstance(callback, EarlyStopping):
                log.info("selection=last: early stopping disabled")
                continue
            if isinstance(callback, ModelCheckpoint):
                # monitor=None + top-1 keeps the latest epoch (Lightning writes last.ckpt only when it saved one)
                callback = ModelCheckpoint(dirpath=callback.dirpath, filename="epoch{epoch:03d}", save_last=True,
                                           save_top_k=1, monitor=None, auto_insert_metric_name=False)
        callbacks.append(callback)
        log.debug("callback %s: %s", name, type(callback).__name__)
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
        if name == "wandb":
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        loggers.append(logger)
    return loggers


def finish_loggers(loggers: list[Logger]) -> None:
    """Always close W&B runs (called in a `finally`), so one failing job does not break the next one of a sweep."""
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger":
            try:
                import wandb

                if wandb.run is not None:
                    wandb.finish()
            except Exception as exc:  # never mask the job's own outcome
                log.warning("wandb.finish() failed: %s", exc)


def resolve_ckpt_path(ckpt_path: str | None, out_dir: Path) -> str | None:
    """`ckpt_path=last` resumes from `<run dir>/checkpoints/last.ckpt` when it exists (fresh start otherwise);
    any other value is used as a path."""
    if ckpt_path in (None, "", "null"):
        return None
    if ckpt_path == "last":
        last = out_dir / "checkpoints" / "last.ckpt"
        if last.exists():
            log.info("resuming from %s", last)
            return str(last)
        log.info("ckpt_path=last but %s does not exist: starting from scratch", last)
        return None
    if not Path(ckpt_path).exists():
        raise FileNotFoundError(f"ckpt_path={ckpt_path} does not exist; pass ckpt_path=last to resume this run dir")
    return ckpt_path
