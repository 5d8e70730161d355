"""survlab's OmegaConf resolvers for the Hydra configs, and the check that keeps a refused job from writing.

`register_resolvers` (called on import) adds `${survlab.job_tag:...}`, `${survlab.pid:}`, `${survlab.hydra_subdir:}`,
`${survlab.job_log:}` and `${survlab.cwd:}`. Hydra writes `.hydra/` and the job log before any callback or the task
function can check the job dir, so `hydra_subdir` / `job_log` ask `may_write_hydra_record` first: a job survlab will
refuse (another configuration's job in the dir, or a live one) leaves every file of the existing run as it was.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from survlab.utils.job_dirs import job_tag
from survlab.utils.job_identity import check_identity, identity_of
from survlab.utils.jobs import DONE, LOCK, METRICS, RECORD

__all__ = ["IDENTITY_PREPARE", "may_write_hydra_record", "register_resolvers", "launch_cwd"]


IDENTITY_PREPARE: list[Callable[[Any], None]] = []


def _live_lock(out: Path) -> bool:
    """True when `out/.lock` is held by a running job (this call takes and releases nothing else)."""
    import fcntl

    try:
        fd = os.open(out / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def may_write_hydra_record(root: Any) -> bool:
    """Whether Hydra may write its record (`.hydra/`, the job log) into the job dir of the composed config `root`
    (task keys + `hydra`, as Hydra's run_job holds it just before it writes): the dir holds no job yet, or a job of
    the same identity (a resume / skip) that no other process is running. False when survlab will refuse the job,
    so a refused job leaves every file of an existing run as it was (Hydra writes `.hydra/` BEFORE any callback or
    the task function can check, hydra/core/utils.py run_job)."""
    from omegaconf import OmegaConf

    out = Path(str(OmegaConf.select(root, "hydra.runtime.output_dir")))
    if any(
        os.environ.get(v, "0").isdigit() and int(os.environ.get(v, "0")) > 0 for v in ("RANK", "LOCAL_RANK")
    ):
        return True  # a DDP child rank relaunched into its rank-0 job's (locked) dir: its own log file there
    if not (out / RECORD).exists() and not any((out / n).exists() for n in (DONE, METRICS, "checkpoints")):
        return True  # a new dir (or one holding only Hydra's record): nothing to protect
    if _live_lock(out):
        return False
    task = cast("dict[str, Any]", OmegaConf.to_container(root, resolve=False))  # root is a DictConfig
    task.pop("hydra", None)
    task_cfg = OmegaConf.create(task)
    try:
        for prepare in IDENTITY_PREPARE:  # what the job does to its config before it computes its identity
            prepare(task_cfg)
        check_identity(out, identity_of(task_cfg))
    except Exception:  # noqa: BLE001 - another configuration, or one the job will refuse as invalid
        return False
    return True


def _hydra_subdir(*, _root_: Any) -> str | None:
    """`hydra.output_subdir`: `.hydra`, or None (Hydra writes no record) for a job survlab will refuse."""
    try:
        return ".hydra" if may_write_hydra_record(_root_) else None
    except Exception:  # noqa: BLE001 - a config composed outside a job (no runtime.output_dir): Hydra's default
        return ".hydra"


def _job_log(*, _root_: Any) -> str:
    """The job log file `<job dir>/<job name>.log`, or os.devnull for a job survlab will refuse (its lines still reach
    the console) — a refused job appends nothing to an existing run's log."""
    from omegaconf import OmegaConf

    path = f"{OmegaConf.select(_root_, 'hydra.runtime.output_dir')}/{OmegaConf.select(_root_, 'hydra.job.name')}.log"
    try:
        return path if may_write_hydra_record(_root_) else os.devnull
    except Exception:  # noqa: BLE001 - as _hydra_subdir
        return path


def register_resolvers() -> None:
    """`${survlab.job_tag:<sweep dir>,<overrides>}`, `${survlab.pid:}`, `${survlab.hydra_subdir:}` and
    `${survlab.job_log:}` for conf/hydra/default.yaml, `${survlab.cwd:}` for conf/paths/default.yaml."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("survlab.hydra_subdir"):
        OmegaConf.register_new_resolver("survlab.hydra_subdir", _hydra_subdir)
    if not OmegaConf.has_resolver("survlab.job_log"):
        OmegaConf.register_new_resolver("survlab.job_log", _job_log)

    if not OmegaConf.has_resolver("survlab.job_tag"):
        OmegaConf.register_new_resolver("survlab.job_tag", lambda d, o: job_tag(str(d), list(o or [])))
    if not OmegaConf.has_resolver("survlab.pid"):
        OmegaConf.register_new_resolver("survlab.pid", lambda: str(os.getpid()), use_cache=True)
    if not OmegaConf.has_resolver("survlab.cwd"):
        OmegaConf.register_new_resolver("survlab.cwd", launch_cwd)


def launch_cwd() -> str:
    """The directory survlab was started from: Hydra's `runtime.cwd` inside a job, the process's working directory
    before one (a multirun resolves `hydra.sweep.dir` before any job, when `${hydra:runtime.cwd}` cannot resolve yet;
    `hydra.job.chdir` is false, so both are the same folder)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig, OmegaConf

    if HydraConfig.initialized():
        # HydraConfig.get() is typed as the HydraConf dataclass but returns its DictConfig
        cwd = OmegaConf.select(cast("DictConfig", HydraConfig.get()), "runtime.cwd", default=None)
        if cwd:
            return str(cwd)
    return os.getcwd()


register_resolvers()
