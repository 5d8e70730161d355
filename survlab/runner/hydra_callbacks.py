"""Hydra callbacks: build the sweep summary when a multirun ends.

Registered in ``conf/hydra/default.yaml``::

    callbacks:
      sweep_summary:
        _target_: survlab.runner.hydra_callbacks.SweepSummaryCallback
        reference: null          # model compared against (null: first alphabetically)
        metric: test/cindex
        n_boot: 1000             # patient bootstrap resamples behind the pooled C-index / AUC CIs (0: none)

or for one sweep: ``++hydra.callbacks.sweep_summary._target_=survlab.runner.hydra_callbacks.SweepSummaryCallback``.
The same files can be rebuilt at any time with ``survlab summarize <sweep_dir>``.

Nothing raised here reaches Hydra: a summary problem is logged, the sweep's own outcome is untouched.
`SweepKeysCallback` also keeps the multirun's outcome: `<sweep dir>/outcomes.jsonl` is emptied when it starts, its
failed / refused jobs append to it (survlab.run), and when it ends `sweep_problems()` returns the one line saying
which did not complete, so `python -m survlab.run -m ...` exits non-zero.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Literal

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

__all__ = [
    "RunDirCallback",
    "SweepKeysCallback",
    "SweepSummaryCallback",
    "log_summary_to_wandb",
    "sweep_problems",
]

_PROBLEMS: list[str] = []  # the line of the last multirun of this process that had failed / refused jobs


def sweep_problems() -> str | None:
    """After a multirun in this process: '<sweep dir>: k of n jobs not completed (r refused, f failed) ...' when any
    job was refused or failed, else None."""
    return _PROBLEMS[-1] if _PROBLEMS else None


def outcome_line(sweep_dir: Path) -> str | None:
    """The one line for `sweep_problems` from `<sweep_dir>/outcomes.jsonl` (None when every job completed)."""
    from survlab.utils.jobs import read_outcomes

    outcomes = read_outcomes(sweep_dir)
    if not outcomes:
        return None
    kinds = [o["outcome"] for o in outcomes.values()]
    first = next(iter(outcomes.values()))["error"]
    return (
        f"sweep {sweep_dir}: {len(kinds)} job(s) not completed ({kinds.count('refused')} refused, "
        f"{kinds.count('failed')} failed; first: {first}); see {sweep_dir / 'summary.md'}"
    )


def _wandb_enabled(config: DictConfig) -> bool:
    if os.environ.get("WANDB_MODE", "").lower() == "disabled":
        return False
    logger_cfg = OmegaConf.select(config, "logger", default=None)
    return bool(logger_cfg) and "wandb" in logger_cfg and logger_cfg.get("wandb") is not None


def _reinit() -> bool | Literal["finish_previous"]:
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


def _exit_unwritable(err: OSError, what: str, key: str) -> None:
    """survlab's one line for a run / sweep dir that cannot be written (instead of Hydra's traceback), exit 1."""
    print(f"survlab: error: {what}: {err.strerror or err}; pass a writable {key}=<dir>", file=sys.stderr)
    raise SystemExit(1) from None


class RunDirCallback(Callback):
    """Before a single run: its dir (hydra.run.dir) must be writable, else one line and exit 1 (Hydra would fail
    creating it or writing .hydra/ with a traceback)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from survlab.utils.files import check_writable

        try:
            check_writable(str(config.hydra.run.dir))
        except OSError as err:
            _exit_unwritable(err, "run dir", "hydra.run.dir")


class SweepKeysCallback(Callback):
    """Before a multirun launches: record the swept keys in `<sweep_dir>/sweep_keys.json`, so every job dir is named
    by its values of them (`-m seed=0,1` -> `.../fold0/seed=0`, `.../fold0/seed=1`). See survlab.utils.job_dirs.job_tag."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from survlab.utils.files import check_writable
        from survlab.utils.job_dirs import record_sweep_keys
        from survlab.utils.jobs import start_outcomes

        params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
        sweep_dir = str(config.hydra.sweep.dir)
        try:  # a sweep dir that cannot be written: one line, before any job starts
            check_writable(sweep_dir)
            keys = record_sweep_keys(sweep_dir, list(config.hydra.overrides.task), list(params))
            start_outcomes(sweep_dir)
        except OSError as err:
            _exit_unwritable(err, "sweep dir", "hydra.sweep.dir")
        log.info("sweep over %s", ", ".join(keys) or "nothing")
        _PROBLEMS.clear()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        line = outcome_line(Path(str(config.hydra.sweep.dir)))
        if line:
            _PROBLEMS.append(line)


class SweepSummaryCallback(Callback):
    """Writes summary.csv / summary.md / paired.csv / comparison.png into the sweep dir at the end of a multirun."""

    def __init__(
        self,
        reference: str | None = None,
        metric: str | None = None,
        wandb: bool = True,
        over: list[str] | None = None,
        n_boot: int = 1000,
        boot_seed: int = 0,
    ) -> None:
        self.reference = reference
        self.n_boot, self.boot_seed = int(n_boot), int(boot_seed)
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
            from survlab.report.sweep import summarize_sweep

            reference = self.reference
            summary = summarize_sweep(sweep_dir, reference=None, metric=self.metric, write=False, n_boot=0)
            if reference is not None and reference not in set(summary.jobs.get("model", [])):
                log.warning("sweep summary: reference %r not in this sweep; using the default", reference)
                reference = None
            summary = summarize_sweep(
                sweep_dir,
                reference=reference,
                metric=self.metric,
                over=self.over,
                n_boot=self.n_boot,
                boot_seed=self.boot_seed,
            )
            n_bad = int((summary.jobs["status"] != "done").sum()) if not summary.jobs.empty else 0
            log.info(
                "sweep summary written to %s (%d jobs, %d failed, refused or incomplete)",
                sweep_dir / "summary.md",
                len(summary.jobs),
                n_bad,
            )
        except Exception as e:  # noqa: BLE001 - never break the sweep's exit
            log.exception("sweep summary failed (rebuild with `survlab summarize %s`): %s", sweep_dir, e)
            return
        if self.wandb and _wandb_enabled(config):
            try:
                log_summary_to_wandb(summary, config)
            except Exception as e:  # noqa: BLE001
                log.warning("logging the sweep summary to W&B failed: %s", e)
