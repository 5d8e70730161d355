"""One (model, cohort, fold) job: fit, select on the inner validation split, test once, write outputs (`train`);
and the job around it (`run_job`: skip a completed job of the same identity, record it, mark DONE / FAILED)."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from survlab.config.check_task import resolve_auto
from survlab.data.fitted import write_preprocessing
from survlab.data.fitted_plan import FILENAME as PREPROCESSING_FILE
from survlab.runner.build import (
    LastCheckpoint,
    build_datamodule,
    build_loggers,
    build_net,
    build_task,
    build_trainer,
    finish_loggers,
    resolve_ckpt_path,
    task_reporter,
)
from survlab.runner.conformal import check_conformal, run_conformal
from survlab.runner.predict import attention_spec, run_test_pass
from survlab.runner.selection import selection_warning, small_split_line
from survlab.tasks.outcome import OutcomeTask
from survlab.utils import job_hydra, jobs
from survlab.utils.ddp import release_process_group
from survlab.utils.job_dirs import JobLock
from survlab.utils.job_identity import check_identity, identity_of, write_record
from survlab.utils.malloc import reuse_from_env
from survlab.utils.outputs import write_json

log = logging.getLogger("survlab.run")
# the identity Hydra's record is checked against (survlab.utils.job_hydra.may_write_hydra_record) is the job's own
if resolve_auto not in job_hydra.IDENTITY_PREPARE:
    job_hydra.IDENTITY_PREPARE.append(resolve_auto)


def train(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Fit on the fold's training patients, select a checkpoint, test on the fold's test patients once."""
    started = time.time()
    resolve_auto(cfg)
    L.seed_everything(cfg.seed, workers=True)
    if reuse_from_env():  # reuse freed batch buffers (survlab/utils/malloc.py); SURVLAB_MALLOC_REUSE=0: off
        log.info(
            "glibc malloc: freed blocks below 1 GiB stay in the heap (SURVLAB_MALLOC_REUSE=0 turns this off)"
        )
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    if small := small_split_line(str(cfg.selection), datamodule):
        log.warning("%s", small)
    task = build_task(cfg, build_net(cfg, datamodule.dims))
    reporter = task_reporter(task)  # the writer of survlab/report/ the task class names (before any training)
    # the fold's fitted preprocessing (survlab.data.fitted); a task without one (segmentation) gets None
    task.fit_references(datamodule.fitted if task.FITTED_PREPROCESSING else None)
    check_conformal(cfg, task, datamodule)  # conformal.alphas: a calibration part, an objective with sets

    loggers = build_loggers(cfg, out_dir)
    try:
        trainer = build_trainer(cfg, out_dir, loggers)
        fitted: dict[str, Any] = {}
        if cfg.model.get("estimator") is not None:  # fitted exactly by a classical estimator (model=coxnet)
            from survlab.runner.estimators.coxnet import fit_estimator

            ckpt, fitted = fit_estimator(cfg, task, datamodule, trainer, out_dir)
        else:
            trainer.fit(
                task,
                datamodule=datamodule,
                ckpt_path=resolve_ckpt_path(cfg.ckpt_path, out_dir),
                weights_only=True,
            )
            ckpt = _selected_checkpoint(cfg, trainer)
        log.info(
            "selection=%s → testing checkpoint %s on fold %s (test patients, used once)",
            cfg.selection,
            ckpt,
            cfg.fold,
        )
        extra: dict[str, Any] = {"protocol_card": {"estimator": fitted["estimator"]}} if fitted else {}
        if isinstance(task, OutcomeTask):
            # the one prediction pass: test rows (+ attention) from trainer.test's own forward calls, the training
            # patients' rows once (Cox baseline, KM cutoffs); every writer reads these rows
            extra["predictions"] = run_test_pass(
                task,
                trainer,
                datamodule=datamodule,
                ckpt_path=ckpt,
                attention=attention_spec(cfg, datamodule),
            )
        else:  # e.g. segmentation: its writer reads the task's own test rows
            trainer.test(task, datamodule=datamodule, ckpt_path=ckpt, weights_only=True, verbose=False)
        if trainer.global_rank != 0:  # a child rank: rank 0 writes the outputs; nothing collective follows
            release_process_group()
            return {}
        metrics = reporter(
            cfg, out_dir, task, datamodule, trainer, ckpt, wall_s=time.time() - started, **extra
        )
        if not task.FITTED_PREPROCESSING:  # e.g. segmentation: its writer wrote everything
            return metrics
        # what was fitted on the training patients, as plain JSON: `survlab eval run=<run dir>` reuses it
        write_preprocessing(datamodule.fitted, out_dir / PREPROCESSING_FILE, task)
        if fitted:
            metrics["val/best"] = fitted["val/best"]
        # conformal.alphas: split-conformal sets of the test patients into conformal/
        metrics.update(run_conformal(cfg, task, datamodule, out_dir, trainer))
        metrics["selection_warning"] = warn_below_chance(cfg, task, metrics.get("val/best"))
        if cfg.get("external_data"):  # the selected model on another cohort, written to <run dir>/external/
            from survlab.runner.eval_external import run_external

            metrics["external_cohort"] = str(cfg.external_data)
            metrics.update(run_external(cfg, task, datamodule, out_dir, ckpt, metrics))
        for logger in loggers:
            logger.log_metrics({f"final/{k}": v for k, v in metrics.items() if isinstance(v, float)})
        return metrics
    finally:
        finish_loggers(loggers)


def warn_below_chance(cfg: DictConfig, task: Any, value: float | None) -> str | None:
    """Log one warning line when the selected checkpoint's inner-validation metric is below chance; the line (or
    None) goes to metrics.json as `selection_warning`."""
    if cfg.selection != "best_val":
        return None
    line = selection_warning(str(cfg.monitor), str(cfg.monitor_mode), value, task)
    if line:
        log.warning("%s", line)
    return line


def _selected_checkpoint(cfg: DictConfig, trainer: L.Trainer) -> str:
    """`best_val`: the checkpoint with the best inner-validation metric; `last`: the weights after the final epoch."""
    if cfg.selection == "best_val":
        best = [
            cb
            for cb in trainer.checkpoint_callbacks
            if isinstance(cb, ModelCheckpoint) and cb.monitor is not None and cb.best_model_path
        ]
        if not best:
            raise RuntimeError(
                "selection=best_val but no best checkpoint was written; is callbacks.model_checkpoint set?"
            )
        return best[0].best_model_path
    if cfg.selection == "last":
        last = [cb for cb in trainer.checkpoint_callbacks if isinstance(cb, LastCheckpoint)]
        return last[0].best_model_path
    raise ValueError(f"selection must be 'best_val' or 'last', got {cfg.selection!r}")


def run_job(
    cfg: DictConfig, out_dir: Path, multirun: bool, started: list[bool], lock: JobLock | None = None
) -> float:
    """Skip a completed job of the same identity, else record it, clear its markers and run it (appending to
    `started` first); raises JobError when the dir holds another configuration's job."""
    identity = identity_of(cfg)
    same = check_identity(out_dir, identity)
    if lock is not None:
        lock.claim()
    if same and cfg.get("skip_completed", True) and jobs.job_is_complete(out_dir):
        log.info(
            "skipping completed job %s (same configuration, DONE; set skip_completed=false to re-run)",
            out_dir,
        )
        return jobs.read_job_metric(out_dir, cfg.optimized_metric)
    write_record(out_dir, identity, list(HydraConfig.get().overrides.task))
    jobs.clear_markers(out_dir)
    started.append(True)
    try:
        if (
            cfg.get("pipeline") is not None
        ):  # a multi-stage recipe (PathGen): the stages call `train` themselves
            from survlab.runner.pipelines import run_pipeline

            metrics = run_pipeline(cfg, out_dir, train)
        else:
            metrics = train(cfg, out_dir)
    except Exception as exc:
        jobs.mark_failed(out_dir, exc)
        raise
    if metrics:
        write_json(out_dir / "metrics.json", metrics)
        jobs.mark_done(out_dir)
    value = metrics.get(cfg.optimized_metric, math.nan) if metrics else math.nan
    return float(value) if value is not None else math.nan
