"""`survlab train ...` / `python -m survlab.run ...`: one (model, cohort, fold) job, or a sweep with -m.

python -m survlab.run                                   # default model on the embedded synthetic cohort
python -m survlab.run model=abmil data=tcga_luad fold=2
python -m survlab.run -m model=ggmf,mcat data=synthetic fold=0,1,2,3,4

Argv only: the command line is checked, `resume=` expanded, Hydra composes the config and `runner.train` runs it.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from survlab.config.check import check_config
from survlab.config.check_task import resolve_auto
from survlab.runner.train import run_job, train
from survlab.utils import jobs
from survlab.utils.job_dirs import JobLock
from survlab.utils.quiet import quiet_console

log = logging.getLogger("survlab.run")


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
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
        with JobLock(out_dir) as lock:
            return run_job(cfg, out_dir, multirun, started, lock)
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
        from survlab.config.check_cli import check_command_line
        from survlab.config.check_values import ConfigError

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
