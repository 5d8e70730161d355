"""Checks of a job configuration that ask its task class: `model.task` keys and choice-valued options, the `_target_`
nodes' constructor parameters, `monitor` / `optimized_metric` against the metrics the task reports, and
`resolve_auto` (`monitor: auto` and friends from the task's primary metric).
"""

from __future__ import annotations

import inspect
from typing import Any

from omegaconf import DictConfig, OmegaConf

from survlab.config.check_values import RUN_METRICS, ConfigError, _choice


def _get_class(target: str, key: str) -> type:
    import hydra

    try:
        return hydra.utils.get_class(target)
    except Exception as err:  # noqa: BLE001 - any import problem is a config problem here
        raise ConfigError(f"{key}._target_={target}: cannot import it ({str(err).splitlines()[0]})") from None


def _check_params(node: DictConfig, key: str, skip: tuple[str, ...] = ()) -> None:
    """Every key of a `_target_` node must be a constructor parameter (unless the constructor takes **kwargs)."""
    cls = _get_class(str(node._target_), key)
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n in params if n != "self"]
    unknown = [k for k in node if not str(k).startswith("_") and k not in allowed and k not in skip]
    if unknown:
        raise ConfigError(
            f"{key}.{unknown[0]}: unknown option of {cls.__name__}; allowed: {', '.join(sorted(allowed))}"
        )


def _task_class(cfg: DictConfig) -> type:
    """The job's task class (`model.task._target_`; the flat survival keys of old model configs: SurvivalTask)."""
    from survlab.tasks.base import Task

    task = cfg.model.get("task") if cfg.get("model") is not None else None
    if task is None or "_target_" not in task:
        from survlab.tasks.survival import SurvivalTask

        return SurvivalTask
    cls = _get_class(str(task._target_), "model.task")
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ConfigError(
            f"model.task._target_={task._target_} is not a survlab task; name a subclass of survlab.tasks.base.Task "
            f"(e.g. survlab.tasks.outcome.OutcomeTask)"
        )
    return cls


def _init_params(cls: type) -> list[str]:
    """Constructor parameters of `cls` and of the bases its **kwargs are passed on to."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        names += [
            n for n, p in params.items() if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            break
    return names


def _check_task(cfg: DictConfig) -> None:
    task = cfg.model.get("task")
    if task is None:
        return
    cls = _task_class(cfg)
    allowed = _init_params(cls)
    unknown = [k for k in task if not str(k).startswith("_") and k not in allowed]
    if unknown:
        raise ConfigError(
            f"model.task.{unknown[0]}: unknown option of {cls.__name__}; allowed: "
            f"{', '.join(sorted(set(allowed) - {'net'}))}"
        )
    for name, choices in getattr(cls, "CHOICES", {}).items():
        value = task.get(name)
        if isinstance(value, DictConfig) and "_target_" in value:  # a partial torch optimiser / scheduler
            _get_class(str(value._target_), f"model.task.{name}")
        elif value is not None:
            _choice(*choices)(f"model.task.{name}", value)
    for name, node in (task.get("objectives") or {}).items():
        if node is not None and "_target_" in node:
            _check_params(node, f"model.task.objectives.{name}")


def _task_options(cfg: DictConfig) -> DictConfig:
    task = cfg.model.get("task") if cfg.get("model") is not None else None
    return task if task is not None else OmegaConf.create({})


def _ask_task(cfg: DictConfig, method: str, *args: str) -> Any:
    """A `config_*` answer of the job's task class (survlab.tasks.base.Task); its ValueError as a ConfigError."""
    try:
        return getattr(_task_class(cfg), method)(_task_options(cfg), *args)
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(str(err)) from None


def task_metric_names(cfg: DictConfig) -> list[str]:
    """Metric names (without val/ or test/) a job with this config reports (the task class says which)."""
    return list(_ask_task(cfg, "config_metric_names"))


def _metric_mode(cfg: DictConfig, metric: str) -> str:
    """'max' / 'min' for a validation metric name (without val/), from the task class."""
    return str(_ask_task(cfg, "config_metric_mode", metric))


def _primary_metric(cfg: DictConfig) -> str:
    """The task's headline metric: cindex (survival), balanced_accuracy (classification), dice (segmentation)."""
    return str(_ask_task(cfg, "config_primary_metric"))


def resolve_auto(cfg: DictConfig) -> None:
    """Replace `monitor: auto` by val/<primary objective's metric>, `monitor_mode: auto` by its direction and
    `optimized_metric: auto` by test/<that metric> (in place; idempotent)."""
    from omegaconf import open_dict

    primary = _primary_metric(cfg)
    with open_dict(cfg):
        if cfg.get("monitor", "auto") == "auto":
            cfg.monitor = f"val/{primary}"
        if cfg.get("monitor_mode", "auto") == "auto":
            cfg.monitor_mode = _metric_mode(cfg, str(cfg.monitor).removeprefix("val/"))
        if cfg.get("optimized_metric", "auto") == "auto":
            metric = str(cfg.monitor).removeprefix("val/")
            cfg.optimized_metric = f"test/{metric}" if metric != "loss" else f"test/{primary}"


def _check_metrics(cfg: DictConfig) -> None:
    names = task_metric_names(cfg) if cfg.get("model") is not None else []
    val = [f"val/{m}" for m in names]
    if cfg.get("monitor") not in (None, "auto") and names and cfg.monitor not in val:
        raise ConfigError(
            f"monitor={cfg.monitor!r} is not a validation metric; choose one of {', '.join(val)}"
        )
    known = [*(f"test/{m}" for m in names if m != "loss"), *RUN_METRICS]
    if cfg.get("optimized_metric") not in (None, "auto") and names and cfg.optimized_metric not in known:
        raise ConfigError(
            f"optimized_metric={cfg.optimized_metric!r} is not a metric a run reports; choose one of {', '.join(known)}"
        )
