"""Entry point: one (model, cohort, fold) job — fit, select on the inner validation split, test once, write outputs.

python -m survlab.run                                   # default model on the embedded synthetic cohort
python -m survlab.run model=abmil data=tcga_luad fold=2
python -m survlab.run -m model=ggmf,mcat data=synthetic fold=0,1,2,3,4
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from survlab.data.fitted import FILENAME as PREPROCESSING_FILE
from survlab.data.fitted import write_preprocessing
from survlab.runner.config_check import check_config, resolve_auto
from survlab.runner.modalities import job_modalities
from survlab.runner.report import write_run_outputs
from survlab.runner.selection import selection_warning, small_split_line
from survlab.runner.setup import (
    AtomicCheckpointIO,
    LastCheckpoint,
    build_callbacks,
    build_loggers,
    finish_loggers,
    resolve_ckpt_path,
)
from survlab.tasks.outcome import OutcomeTask
from survlab.tasks.pretrained import apply_pretrained
from survlab.tasks.survival import SurvivalTask
from survlab.utils import jobs
from survlab.utils.malloc import reuse_from_env
from survlab.utils.outputs import write_json
from survlab.utils.quiet import quiet_console

log = logging.getLogger("survlab.run")
# the identity Hydra's record is checked against (survlab.utils.jobs.may_write_hydra_record) is the job's own
if resolve_auto not in jobs.IDENTITY_PREPARE:
    jobs.IDENTITY_PREPARE.append(resolve_auto)


def train(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Fit on the fold's training patients, select a checkpoint, test on the fold's test patients once."""
    started = time.time()
    resolve_auto(cfg)
    L.seed_everything(cfg.seed, workers=True)
    if reuse_from_env():  # reuse freed batch buffers (survlab/utils/malloc.py); SURVLAB_MALLOC_REUSE=0: off
        log.info(
            "glibc malloc: freed blocks below 1 GiB stay in the heap (SURVLAB_MALLOC_REUSE=0 turns this off)"
        )
    net_cls = hydra.utils.get_class(cfg.model.net._target_)
    modalities = job_modalities(
        net_cls, cfg.data, cfg.model.net
    )  # table nets: whichever of genes / clinical exist
    datamodule = _instantiate_clean(cfg.data, modalities=modalities, _recursive_=False)
    datamodule.prepare_data()
    datamodule.setup("fit")
    if small := small_split_line(str(cfg.selection), datamodule):
        log.warning("%s", small)
    # partial first: Hydra would turn the ModalityDims dataclass into a DictConfig if passed to instantiate
    net = _instantiate_clean(cfg.model.net, _partial_=True)(dims=datamodule.dims)
    apply_pretrained(
        cfg.model, net
    )  # e.g. HMF's attention filter from a CLAM checkpoint (model.filter_checkpoint)
    task = build_task(cfg, net)
    task.fit_references(datamodule)

    loggers = build_loggers(cfg, out_dir)
    try:
        callbacks = build_callbacks(cfg, out_dir)
        trainer = hydra.utils.instantiate(
            cfg.trainer,
            callbacks=callbacks,
            logger=loggers,
            default_root_dir=str(out_dir),
            plugins=[AtomicCheckpointIO()],
        )
        fitted: dict[str, Any] = {}
        if cfg.model.get("estimator") is not None:  # fitted exactly by a classical estimator (model=coxnet)
            from survlab.runner.coxnet import fit_estimator

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
        trainer.test(task, datamodule=datamodule, ckpt_path=ckpt, weights_only=True, verbose=False)
        if trainer.global_rank != 0:
            return {}
        if hasattr(
            task, "CONFIG_METRICS"
        ):  # a segmentation task: its own outputs (survlab.runner.seg_report)
            from survlab.runner.seg_report import write_segmentation_outputs

            return write_segmentation_outputs(
                cfg, out_dir, task, datamodule, trainer, ckpt, time.time() - started
            )
        metrics = write_run_outputs(
            cfg, out_dir, task, datamodule, trainer, ckpt, wall_s=time.time() - started
        )
        # what was fitted on the training patients, as plain JSON: `python -m survlab.evaluate run=<run dir>` reuses it
        write_preprocessing(datamodule, out_dir / PREPROCESSING_FILE, task)
        if fitted:
            from survlab.runner.coxnet import add_to_protocol

            metrics["val/best"] = fitted["val/best"]
            add_to_protocol(out_dir, "estimator", fitted["estimator"])
        metrics["selection_warning"] = warn_below_chance(cfg, task, metrics.get("val/best"))
        if cfg.get("external_data"):  # the selected model on another cohort, written to <run dir>/external/
            from survlab.external import run_external

            metrics["external_cohort"] = str(cfg.external_data)
            metrics.update(run_external(cfg, task, datamodule, trainer, out_dir, ckpt))
        for logger in loggers:
            logger.log_metrics({f"final/{k}": v for k, v in metrics.items() if isinstance(v, float)})
        return metrics
    finally:
        finish_loggers(loggers)


def build_task(cfg: DictConfig, net: Any) -> OutcomeTask:
    """`model.task` with a `_target_` (an OutcomeTask and its objectives, instantiated like the network), or the flat
    survival keys every survival model config has (-> SurvivalTask, one survival objective)."""
    common = {"max_epochs": cfg.trainer.max_epochs, "seed": cfg.seed}
    if "_target_" in cfg.model.task:
        return _instantiate_clean(cfg.model.task, net=net, _convert_="partial", **common)
    flat = {
        k: hydra.utils.instantiate(v) if isinstance(v, dict) and "_target_" in v else v
        for k, v in OmegaConf.to_container(cfg.model.task, resolve=True).items()
    }  # partial optimiser/scheduler
    return SurvivalTask(net=net, **common, **flat)


def warn_below_chance(cfg: DictConfig, task: Any, value: float | None) -> str | None:
    """Log one warning line when the selected checkpoint's inner-validation metric is below chance; the line (or
    None) goes to metrics.json as `selection_warning`."""
    if cfg.selection != "best_val":
        return None
    line = selection_warning(str(cfg.monitor), str(cfg.monitor_mode), value, task)
    if line:
        log.warning("%s", line)
    return line


def _instantiate_clean(node: DictConfig, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate`, but a bad-input error raised by our own constructor surfaces as itself (one line
    naming the file/case and the fix) instead of wrapped in Hydra's InstantiationException."""
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as exc:
        if isinstance(exc.__cause__, ValueError | FileNotFoundError | KeyError):
            raise exc.__cause__ from None
        raise


def _selected_checkpoint(cfg: DictConfig, trainer: L.Trainer) -> str:
    """`best_val`: the checkpoint with the best inner-validation metric; `last`: the weights after the final epoch."""
    if cfg.selection == "best_val":
        best = [cb for cb in trainer.checkpoint_callbacks if cb.monitor is not None and cb.best_model_path]
        if not best:
            raise RuntimeError(
                "selection=best_val but no best checkpoint was written; is callbacks.model_checkpoint set?"
            )
        return best[0].best_model_path
    if cfg.selection == "last":
        last = [cb for cb in trainer.checkpoint_callbacks if isinstance(cb, LastCheckpoint)]
        return last[0].best_model_path
    raise ValueError(f"selection must be 'best_val' or 'last', got {cfg.selection!r}")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def hydra_main(cfg: DictConfig) -> float:
    """Hydra entry for one job: check the config, lock the job dir, check its identity, skip / resume / run, record
    the outcome. survlab's errors reach the console as one line; the traceback goes to FAILED and the job log."""
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    quiet_console()  # Lightning's banners / tips, W&B's lines and warnings that ask nothing off the console
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if (
        _rank() > 0
    ):  # a DDP child rank relaunched into the job's dir: rank 0 owns the dir, its lock and markers
        train(cfg, out_dir)
        return math.nan
    started: list[bool] = []  # set once the job runs (markers cleared): an error after that is a failure
    try:
        check_config(cfg)
        resolve_auto(cfg)
        if multirun:
            from survlab.utils.ddp import check_multirun_strategy

            check_multirun_strategy(cfg)
        with jobs.JobLock(out_dir) as lock:
            return _run_job(cfg, out_dir, multirun, started, lock)
    except Exception as exc:
        line = jobs.error_line(exc)
        where = f" (traceback: {out_dir / jobs.FAILED})" if (out_dir / jobs.FAILED).is_file() else ""
        log.debug("job error", exc_info=exc)  # the full traceback, into the job's log file
        if multirun:
            outcome = "failed" if started else "refused"  # refused: never ran, its dir left untouched
            log.error("job %s %s: %s%s", out_dir, outcome, line, where if started else "")
            try:
                jobs.record_outcome(HydraConfig.get().sweep.dir, out_dir, outcome, line)
            except OSError as err:  # the sweep dir is not writable either: the log line above still says it
                log.error("could not record the job's outcome in the sweep dir: %s", err)
            return math.nan
        if os.environ.get("SURVLAB_TRACEBACK") == "1":
            raise
        print(f"survlab: error: {line}{where}", file=sys.stderr)
        raise SystemExit(1) from None


def _rank() -> int:
    """Global rank of this process from the launcher's environment (0 when not distributed)."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def _run_job(
    cfg: DictConfig, out_dir: Path, multirun: bool, started: list[bool], lock: jobs.JobLock | None = None
) -> float:
    """Skip a completed job of the same identity, else record it, clear its markers and run it (appending to
    `started` first); raises JobError when the dir holds another configuration's job."""
    identity = jobs.identity_of(cfg)
    same = jobs.check_identity(out_dir, identity)
    if lock is not None:
        lock.claim()
    if same and cfg.get("skip_completed", True) and jobs.job_is_complete(out_dir):
        log.info(
            "skipping completed job %s (same configuration, DONE; set skip_completed=false to re-run)",
            out_dir,
        )
        return jobs.read_job_metric(out_dir, cfg.optimized_metric)
    jobs.write_record(out_dir, identity, list(HydraConfig.get().overrides.task))
    jobs.clear_markers(out_dir)
    started.append(True)
    try:
        if (
            cfg.get("pipeline") is not None
        ):  # a multi-stage recipe (PathGen): the stages call `train` themselves
            from survlab.pipelines import run_pipeline

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


def resume_argv(argv: list[str]) -> list[str]:
    """`resume=<run dir>` -> that run's recorded overrides + `hydra.run.dir=<run dir>` (other arguments kept)."""
    given = [a for a in argv if a.startswith("resume=")]
    if not given:
        return argv
    run_dir = Path(given[-1].split("=", 1)[1]).expanduser()
    record = jobs.read_record(run_dir)
    if not record:
        raise SystemExit(
            f"survlab: resume={run_dir}: no job record ({run_dir / jobs.RECORD}); pass a run dir "
            f"written by survlab.run"
        )
    if any(a in ("-m", "--multirun") for a in argv):
        raise SystemExit(
            "survlab: resume=<run dir> resumes one run; to resume a sweep, re-run the same sweep "
            "command with hydra.sweep.dir=<sweep dir>"
        )
    recorded = [
        o for o in record.get("overrides", []) if jobs.override_key(o) not in ("hydra.run.dir", "resume")
    ]
    rest = [a for a in argv if not a.startswith("resume=")]
    return [*rest, *recorded, f"hydra.run.dir={run_dir.resolve()}"]


def main(check: bool = True) -> None:
    """`python -m survlab.run` / `survlab-run` (`check`: the command line's keys and values first, one-line errors;
    `survlab train` has checked them before importing this module)."""
    if check:
        from survlab.runner.config_check import ConfigError, check_command_line

        try:
            check_command_line(sys.argv[1:])
        except ConfigError as exc:
            print(f"survlab: error: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
    sys.argv = resume_argv(sys.argv)
    hydra_main()
    from survlab.runner.hydra_callbacks import sweep_problems

    problem = sweep_problems()  # a multirun with refused or failed jobs: say so, exit non-zero
    if problem:
        print(f"survlab: error: {problem}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
