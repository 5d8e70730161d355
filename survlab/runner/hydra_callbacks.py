"""Hydra callbacks: build the sweep summary when a multirun ends.

Registered in ``conf/hydra/default.yaml``::

    callbacks:
      sweep_summary:
        _target_: survlab.runner.hydra_callbacks.SweepSummaryCallback
        reference: null          # model compared against (null: first alphabetically)
        metric: test/cindex

or for one sweep: ``++hydra.callbacks.sweep_summary._target_=survlab.runner.hydra_callbacks.SweepSummaryCallback``.
The same files can be rebuilt at any time with ``python -m survlab.summarize <sweep_dir>``.

Nothing raised here reaches Hydra: a summary problem is logged, the sweep's own outcome is untouched.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

__all__ = ["SweepKeysCallback", "SweepSummaryCallback", "log_summary_to_wandb"]


def _wandb_enabled(config: DictConfig) -> bool:
    if os.environ.get("WANDB_MODE", "").lower() == "disabled":
        return False
    logger_cfg = OmegaConf.select(config, "logger", default=None)
    return bool(logger_cfg) and "wandb" in logger_cfg and logger_cfg.get("wandb") is not None


def _reinit() -> bool | str:
    """wandb.init's `reinit` for a second run in this process: "finish_previous" (wandb >= 0.19.10; `True` is
    deprecated there and warns on every sweep), `True` before."""
    import wandb
    from packaging.version import Version

    return "finish_previous" if Version(wandb.__version__) >= Version("0.19.10") else True


def log_summary_to_wandb(summary: Any, config: DictConfig) -> None:
    """One W&B run (job_type ``summary``) in the sweep's group: the summary as a ``wandb.Table``, the paired
    differences, summary.md and the comparison plot. Offline by default (``wandb sync <sweep_dir>/wandb/offline-run-*``)."""
    import wandb

    sweep_dir = Path(summary.sweep_dir)
    wcfg = OmegaConf.select(config, "logger.wandb", default=None) or {}
    project = wcfg.get("project", "survlab") if hasattr(wcfg, "get") else "survlab"
    offline = bool(wcfg.get("offline", True)) if hasattr(wcfg, "get") else True
    run = wandb.init(
        project=project,
        group=sweep_dir.name,
        job_type="summary",
        name=f"summary-{sweep_dir.name}",
        dir=str(sweep_dir),  # -> <sweep_dir>/wandb/offline-run-*
        mode="offline" if offline else None,
        config={"sweep_dir": str(sweep_dir), "reference": summary.reference, "metric": summary.metric},
        reinit=_reinit(),
    )
    try:
        table = summary.table.copy()
        table.columns = [str(c) for c in table.columns]
        run.log({"sweep/summary": wandb.Table(dataframe=table.astype(object).where(table.notna(), None))})
        if not summary.paired.empty:
            run.log({"sweep/paired": wandb.Table(dataframe=summary.paired)})
        png = summary.files.get("comparison.png")
        if png is not None and Path(png).is_file():
            run.log({"sweep/comparison": wandb.Image(str(png))})
        failed = summary.jobs[summary.jobs["status"] != "done"]
        run.summary["jobs_done"] = int((summary.jobs["status"] == "done").sum())
        run.summary["jobs_failed_or_incomplete"] = len(failed)
    finally:
        run.finish()


class SweepKeysCallback(Callback):
    """Before a multirun launches: record the swept keys in `<sweep_dir>/sweep_keys.json`, so every job dir is named
    by its values of them (`-m seed=0,1` -> `.../fold0/seed=0`, `.../fold0/seed=1`). See survlab.utils.jobs.job_tag."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from survlab.utils.jobs import record_sweep_keys

        params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
        keys = record_sweep_keys(str(config.hydra.sweep.dir), list(config.hydra.overrides.task), list(params))
        log.info("sweep over %s", ", ".join(keys) or "nothing")


class SweepSummaryCallback(Callback):
    """Writes summary.csv / summary.md / paired.csv / comparison.png into the sweep dir at the end of a multirun."""

    def __init__(
        self,
        reference: str | None = None,
        metric: str | None = None,
        wandb: bool = True,
        over: list[str] | None = None,
    ) -> None:
        self.reference = reference
        self.metric = metric
        self.wandb = wandb
        self.over = list(over or [])

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            sweep_dir = Path(str(config.hydra.sweep.dir))
        except Exception as e:  # noqa: BLE001
            log.warning("sweep summary skipped: no hydra.sweep.dir (%s)", e)
            return
        try:
            from survlab.eval.summary import summarize_sweep

            reference = self.reference
            summary = summarize_sweep(sweep_dir, reference=None, metric=self.metric, write=False)
            if reference is not None and reference not in set(summary.jobs.get("model", [])):
                log.warning("sweep summary: reference %r not in this sweep; using the default", reference)
                reference = None
            summary = summarize_sweep(sweep_dir, reference=reference, metric=self.metric, over=self.over)
            n_bad = int((summary.jobs["status"] != "done").sum()) if not summary.jobs.empty else 0
            log.info(
                "sweep summary written to %s (%d jobs, %d failed or incomplete)",
                sweep_dir / "summary.md",
                len(summary.jobs),
                n_bad,
            )
        except Exception as e:  # noqa: BLE001 - never break the sweep's exit
            log.exception(
                "sweep summary failed (rebuild with `python -m survlab.summarize %s`): %s", sweep_dir, e
            )
            return
        if self.wandb and _wandb_enabled(config):
            try:
                log_summary_to_wandb(summary, config)
            except Exception as e:  # noqa: BLE001
                log.warning("logging the sweep summary to W&B failed: %s", e)
