"""The one build path of a job: data module, network, task, trainer (callbacks, loggers, atomic checkpoints) and
the checkpoint to resume from, all from the composed Hydra config. Train, evaluate, bench and pipelines build here."""

from __future__ import annotations

import inspect
import io
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    ProgressBar,
)
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

from survlab.config.check_task import resolve_auto
from survlab.config.cohorts import cohorts_providing
from survlab.data.datamodule import MissingModalityError
from survlab.runner.modalities import job_accepts_absent, job_modalities, models_accepting_absent
from survlab.tasks.base import Task
from survlab.tasks.pretrained import apply_pretrained
from survlab.utils.files import atomic_path

log = logging.getLogger(__name__)


LAST_CKPT = "last.ckpt"


def instantiate_clean(node: DictConfig, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate`, but a bad-input error raised by our own constructor surfaces as itself (one line
    naming the file/case and the fix) instead of wrapped in Hydra's InstantiationException."""
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as exc:
        if isinstance(exc.__cause__, ValueError | FileNotFoundError | KeyError):
            raise exc.__cause__ from None
        raise


#: the task class of a `model.task` without `_target_` (the flat survival keys of model configs before 0.x)
DEFAULT_TASK = "survlab.tasks.survival.SurvivalTask"


def build_task(cfg: DictConfig, net: Any) -> Task:
    """`model.task`, instantiated like the network (its objectives, a partial optimiser / scheduler too). A node
    without `_target_` (the flat survival keys of older model configs) is still read as a SurvivalTask, with a
    warning: that spelling goes in the next release."""
    common = {"max_epochs": cfg.trainer.max_epochs, "seed": cfg.seed}
    node = cfg.model.task
    if "_target_" not in node:
        log.warning(
            "model.task has no _target_: read as %s (flat survival keys); add `_target_: %s` to the model "
            "config's task (or list _survival in its defaults): the flat spelling goes in the next release",
            DEFAULT_TASK.rpartition(".")[2],
            DEFAULT_TASK,
        )
        flat = {
            k: hydra.utils.instantiate(v) if isinstance(v, dict) and "_target_" in v else v
            for k, v in cast(dict[str, Any], OmegaConf.to_container(node, resolve=True)).items()
        }  # partial optimiser/scheduler
        return hydra.utils.get_class(DEFAULT_TASK)(net=net, **common, **flat)
    return instantiate_clean(node, net=net, _convert_="partial", **common)


def task_reporter(task: Task) -> Callable[..., dict[str, Any]]:
    """The function of survlab/report/ that writes the finished run's outputs, as the task class names it
    (`Task.REPORTER`); a task without one (a pipeline stage such as PathGen's generator) is a one-line ValueError."""
    name = type(task).REPORTER
    if name is None:
        raise ValueError(
            f"{type(task).__name__} has no outputs of its own (a pipeline stage): run it inside its pipeline, "
            f"e.g. experiment=pathgen_pipeline_synthetic, not as model=... of a training job"
        )
    return hydra.utils.get_method(name)


def build_datamodule(cfg: DictConfig) -> Any:
    """The job's data module (`cfg.data`), told which modalities the network reads (table nets: whichever of genes /
    clinical exist) and which of them it takes absent (data.missing=keep: its setup() refuses, in one line naming
    the networks that would, patients lacking any other); not yet set up."""
    net_cls = hydra.utils.get_class(cfg.model.net._target_)
    modalities = job_modalities(net_cls, cfg.data, cfg.model.net)
    data_cls = hydra.utils.get_class(cfg.data._target_)
    told: dict[str, Any] = (
        {"accepts_absent": sorted(job_accepts_absent(net_cls))}
        if "accepts_absent" in inspect.signature(data_cls).parameters
        else {}
    )  # a data module without data.missing (segmentation slices) is not told
    try:
        dm = instantiate_clean(cfg.data, modalities=modalities, _recursive_=False, **told)
    except MissingModalityError as err:
        others = cohorts_providing(err.modality)
        hint = f"; cohorts with {err.modality}: {', '.join(others) or 'none'}" if others is not None else ""
        raise ValueError(f"{err}{hint}") from None
    if told:
        dm.network = f"model={cfg.model.get('name') or net_cls.__name__}"
        dm.absent_alternatives = models_accepting_absent
    return dm


def build_net(cfg: DictConfig, dims: Any) -> Any:
    """`cfg.model.net` for the cohort's `dims` (partial first: Hydra would turn the ModalityDims dataclass into a
    DictConfig if passed to instantiate), with any pretrained part loaded (e.g. HMF's attention filter from a CLAM
    checkpoint, `model.filter_checkpoint`)."""
    net = instantiate_clean(cfg.model.net, _partial_=True)(dims=dims)
    apply_pretrained(cfg.model, net)
    return net


def build_trainer(cfg: DictConfig, out_dir: Path, loggers: list[Logger]) -> Any:
    """`cfg.trainer` with the job's callbacks, its loggers and atomic checkpoint writes, rooted at `out_dir`."""
    return hydra.utils.instantiate(
        cfg.trainer,
        callbacks=build_callbacks(cfg, out_dir, has_logger=bool(loggers)),
        logger=loggers,
        default_root_dir=str(out_dir),
        plugins=[AtomicCheckpointIO()],
    )


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


def build_callbacks(cfg: DictConfig, out_dir: Path, has_logger: bool = True) -> list[Callback]:
    """Instantiate `cfg.callbacks` and append the `LastCheckpoint` used for resuming and for selection=last.

    selection=last: no early stopping and no monitored checkpoint (nothing may look at validation to pick the
    model); the tested weights are those of last.ckpt. Without a logger (`logger=none`) the learning-rate monitor
    is left out: it has nowhere to write, and Lightning refuses it."""
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
        if isinstance(callback, LearningRateMonitor) and not has_logger:
            log.info("logger=none: callback %s (LearningRateMonitor) left out, it needs a logger", name)
            continue
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
