"""DDP inside a Hydra multirun: make it safe, or refuse it with a one-line message naming the fix.

The upstream problem: Lightning's ``ddp`` strategy starts ranks 1..N-1 by re-running the command line
(``_SubprocessScriptLauncher``). Under ``-m`` that command line is the whole sweep, so every child rank replays
every job of the sweep — jobs run several times, ranks of different jobs try to rendezvous, runs hang.

What :func:`check_multirun_strategy` (called by ``run.py`` at the start of every multirun job) does:

- one process per job (``devices: 1``, the default; ``trainer=gpu`` with one GPU per job; any launcher): nothing.
- ``ddp`` with N > 1 local processes and the default (basic, sequential) launcher: **fixed relaunch** — the child
  ranks are started as a *single run of this job only*: ``python -m survlab.run <this job's overrides>
  hydra.run.dir=<this job's dir>``, so they compose the identical config and share the job's output dir.
  Distributed state left by the previous job of the sweep (``LOCAL_RANK``/``WORLD_SIZE``/``MASTER_PORT`` in the
  environment, an initialised process group) is cleared first, otherwise job 2 would wait for ranks that never come.
- processes created by the cluster (SLURM ``srun`` with ``tasks_per_node`` = GPUs, ``torchrun``): nothing to fix —
  each task is already one rank of one job.
- ``ddp_spawn`` / ``ddp_fork`` / ``ddp_notebook`` with N > 1: refused (the test predictions live in the spawned
  processes, so the job could not write its ``predictions.csv``); use ``trainer=ddp_sim`` (ddp + fixed relaunch).
- ``ddp`` with N > 1 under a parallel launcher (joblib, submitit_local): refused — several jobs' ranks would compete
  for the same devices/ports; run DDP jobs with the basic launcher, or one GPU per job with a parallel launcher.

Single runs (no ``-m``) are not touched: Lightning's own relaunch is correct there.

Example (what run.py does):
    >>> from survlab.utils.ddp import check_multirun_strategy   # doctest: +SKIP
    >>> check_multirun_strategy(cfg)                            # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig

log = logging.getLogger(__name__)

__all__ = ["DDPMultirunError", "check_multirun_strategy", "num_processes", "strategy_name"]

SPAWN_STRATEGIES = ("ddp_spawn", "ddp_fork", "ddp_notebook", "spawn", "fork")
_DIST_ENV = ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "GROUP_RANK", "RANK")
ENTRY_MODULE = "survlab.run"
_PATCHED = False
_EXTERNAL_ENV: bool | None = None  # were the DDP variables set before the first job of this process?


class DDPMultirunError(RuntimeError):
    """A DDP configuration that cannot run safely inside a Hydra multirun."""


def strategy_name(trainer_cfg: Any) -> str:
    """Lower-case name of ``trainer.strategy`` (a string, or a ``_target_`` config → the class name)."""
    strategy = trainer_cfg.get("strategy", "auto") if trainer_cfg is not None else "auto"
    if strategy is None:
        return "auto"
    if isinstance(strategy, str):
        return strategy.lower()
    target = strategy.get("_target_", "") if hasattr(strategy, "get") else type(strategy).__name__
    name = str(target).rsplit(".", 1)[-1].lower()
    start = str(strategy.get("start_method", "popen")) if hasattr(strategy, "get") else "popen"
    return f"ddp_{start}" if name == "ddpstrategy" and start in ("spawn", "fork") else name


def num_processes(trainer_cfg: Any) -> int:
    """Processes Lightning would start on this node × nodes: ``devices`` (int, list, str, "auto", -1) × ``num_nodes``."""
    devices = trainer_cfg.get("devices", "auto")
    nodes = int(trainer_cfg.get("num_nodes", 1) or 1)
    accelerator = str(trainer_cfg.get("accelerator", "auto")).lower()
    if isinstance(devices, int):
        n = devices
    elif isinstance(devices, str):
        d = devices.strip()
        if d.lstrip("-").isdigit():
            n = int(d)
        elif "," in d:
            n = len([x for x in d.split(",") if x.strip()])
        else:
            n = -1 if d == "auto" else 1
    elif isinstance(devices, Sequence):
        n = len(devices)
    else:
        n = 1
    if n == -1:  # all devices
        if accelerator == "cpu":
            n = 1 if devices == "auto" else (os.cpu_count() or 1)
        else:
            try:
                import torch

                n = max(torch.cuda.device_count(), 1)
            except Exception:  # noqa: BLE001
                n = 1
    return max(n, 1) * nodes


def _processes_created_externally() -> bool:
    """torchrun / SLURM srun started the ranks (each process is already one rank of this job)."""
    if "TORCHELASTIC_RUN_ID" in os.environ:
        return True
    try:
        ntasks = int(os.environ.get("SLURM_NTASKS", "1"))
    except ValueError:
        ntasks = 1
    return ntasks > 1 and os.environ.get("SLURM_JOB_NAME") not in ("bash", "interactive")


def _launcher_target() -> str:
    try:
        from hydra.core.hydra_config import HydraConfig

        return str(HydraConfig.get().launcher.get("_target_", ""))
    except Exception:  # noqa: BLE001
        return ""


def _reset_distributed_state() -> None:
    """Forget the rendezvous of the previous job run in this process (basic launcher runs jobs in sequence)."""
    global _EXTERNAL_ENV
    if _EXTERNAL_ENV is None:
        _EXTERNAL_ENV = "LOCAL_RANK" in os.environ
    if not _EXTERNAL_ENV:
        for var in _DIST_ENV:
            os.environ.pop(var, None)
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    except Exception as e:  # noqa: BLE001
        log.warning("could not destroy the previous job's process group: %s", e)


def release_process_group() -> None:
    """Destroy this process's process group, if any: a child rank whose job is done ends cleanly instead of leaving
    gloo's threads to the interpreter's exit (seen once under load as `terminate called without an active
    exception` and a non-zero exit of a DDP job in a multirun)."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    except Exception as e:  # noqa: BLE001
        log.warning("could not destroy the process group: %s", e)


def job_relaunch_command(local_rank: int) -> tuple[list[str], str]:
    """The command that starts rank ``local_rank`` of THIS multirun job only (and the cwd to run it in)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    hc = HydraConfig.get()
    cmd = [sys.executable, "-m", ENTRY_MODULE]
    # keep an explicit primary config (-cp/-cn/-cd), drop -m and the sweep's comma lists
    argv = sys.argv[1:]
    for i, a in enumerate(argv):
        for flag in ("-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir"):
            if a == flag and i + 1 < len(argv):
                cmd += [a, argv[i + 1]]
            elif a.startswith(flag + "="):
                cmd.append(a)
    cmd += list(
        hc.overrides.task
    )  # this job's overrides, sweep values already expanded (model=abmil fold=1 ...)
    cmd += [
        f'hydra.run.dir="{hc.runtime.output_dir}"',
        f"hydra.job.name=train_ddp_process_{local_rank}",
        "hydra.output_subdir=null",
    ]
    return cmd, get_original_cwd()


def _install_job_relaunch() -> None:
    """Replace Lightning's Hydra relaunch command (the whole sweep) by :func:`job_relaunch_command` in both the
    Fabric and the Trainer launcher modules (the latter imports the function by name)."""
    global _PATCHED
    if _PATCHED:
        return
    import importlib

    modules = [
        importlib.import_module(m)
        for m in (
            "lightning.fabric.strategies.launchers.subprocess_script",
            "lightning.pytorch.strategies.launchers.subprocess_script",
        )
    ]
    if not all(hasattr(m, "_hydra_subprocess_cmd") for m in modules):
        raise DDPMultirunError(
            "this Lightning version has no _hydra_subprocess_cmd to fix; DDP inside a multirun is refused — run each "
            "DDP job as a single run, or one GPU per job (trainer=gpu hydra/launcher=submitit_slurm)"
        )
    for m in modules:
        m._hydra_subprocess_cmd = job_relaunch_command
    _PATCHED = True


def check_multirun_strategy(cfg: DictConfig) -> None:
    """Called at the start of every job of a Hydra multirun; raises :class:`DDPMultirunError` (one line)."""
    trainer_cfg = cfg.get("trainer")
    if trainer_cfg is None:
        return
    n = num_processes(trainer_cfg)
    name = strategy_name(trainer_cfg)
    if n <= 1 or name in ("single_device", "singledevicestrategy"):
        return
    if any(s in name for s in SPAWN_STRATEGIES):
        raise DDPMultirunError(
            f"trainer.strategy={name} with {n} processes in a multirun is not supported (test predictions stay in the "
            "spawned processes): use trainer=ddp_sim / trainer.strategy=ddp (each job relaunches only its own ranks), "
            "or one GPU per job with hydra/launcher=submitit_slurm"
        )
    if _processes_created_externally():
        log.info("DDP ranks created by the cluster (SLURM/torchrun): %d processes for this job", n)
        return
    launcher = _launcher_target()
    if launcher and not launcher.endswith("BasicLauncher"):
        raise DDPMultirunError(
            f"DDP with {n} processes per job under the parallel launcher {launcher.rsplit('.', 1)[-1]} is refused "
            "(jobs would compete for devices and ports): drop hydra/launcher (jobs run one after another, each with "
            "its own DDP ranks), or run one device per job (trainer.devices=1) in parallel"
        )
    _reset_distributed_state()
    _install_job_relaunch()
    log.warning(
        "DDP inside a multirun: strategy=%s, %d processes; child ranks are relaunched for THIS job only "
        "(survlab.utils.ddp fixed relaunch), never the whole sweep",
        name,
        n,
    )
