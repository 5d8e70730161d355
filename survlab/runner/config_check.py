"""Check a composed job configuration before any data is read, so a typo fails in seconds with one line.

What is checked:
- the top-level keys of `conf/config.yaml` (`TOP_LEVEL`: allowed values / types), `monitor` (a validation metric
  the task logs) and `optimized_metric` (a key of metrics.json);
- every `_target_` node (data, model.net, trainer, callbacks, loggers): the class imports and each given key is a
  parameter of its constructor (unless it takes **kwargs) — so `model.net.dimm=64` or `trainer.max_epoch=5` fail
  here instead of deep inside a constructor, after the cohort was read;
- `model.task`: its keys against the task's constructor, and its choice-valued options.

The defaults live in one place, the YAML files (`python -m survlab.run --cfg job` shows them).

Example:
    >>> from omegaconf import OmegaConf
    >>> check_config(OmegaConf.create({"selection": "bestval"}))
    Traceback (most recent call last):
    ...
    survlab.runner.config_check.ConfigError: selection='bestval' is not one of best_val, last
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

__all__ = ["ConfigError", "check_config", "TOP_LEVEL"]


class ConfigError(ValueError):
    """A configuration value or key that survlab cannot run with (one line: the key, what is wrong, the fix)."""


def _choice(*allowed: str) -> Callable[[str, Any], None]:
    def check(key: str, value: Any) -> None:
        if value not in allowed:
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(allowed)}")

    return check


def _int(minimum: int | None = None) -> Callable[[str, Any], None]:
    def check(key: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
            raise ConfigError(
                f"{key}={value!r} must be an integer{f' >= {minimum}' if minimum is not None else ''}"
            )

    return check


def _bool(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} must be true or false")


def _ckpt(key: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{key}={value!r} must be auto, null or a checkpoint path")


#: top-level keys of conf/config.yaml and how their values are checked
def _pn_rule(key: str, value: Any) -> None:
    keys = {"slide_objective", "patient_label"}
    if value is not None and (not hasattr(value, "keys") or set(value.keys()) != keys):
        raise ConfigError(
            f"{key}={value!r} must be null or {{slide_objective: <a slide-level objective>, patient_label: <the pN "
            f"label>}}"
        )


TOP_LEVEL: dict[str, Callable[[str, Any], None] | None] = {
    "seed": _int(0),
    "fold": _int(0),
    "selection": _choice("best_val", "last"),
    "km_groups": _choice("median", "tertiles"),
    "eval_times": None,
    "external_data": None,
    "skip_completed": _bool,
    "export_attention": _bool,
    "export_attention_h5": _bool,
    "attention_top_k": _int(1),
    "ckpt_path": _ckpt,
    "resume": None,
    "monitor": None,
    "monitor_mode": _choice("auto", "max", "min"),
    "optimized_metric": None,
    "tags": None,
    "pipeline": None,  # multi-stage recipes (experiment=pathgen_pipeline_*), see survlab.pipelines
    "pn_rule": _pn_rule,  # experiment=hmf_camelyon17: CAMELYON17's rule-based pN beside the patient head
}
GROUPS = (
    "data",
    "model",
    "trainer",
    "logger",
    "callbacks",
    "paths",
    "hydra",
    "experiment",
    "hparams_search",
    "debug",
    "local",
)
#: keys of metrics.json that are not `test/<metric>`
RUN_METRICS = (
    "val/best",
    "oracle_cindex",
    "bayes_accuracy",
    "n_test",
    "km_logrank_p",
    "epochs_trained",
    "wall_s",
)


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
    task = cfg.model.get("task") if cfg.get("model") is not None else None
    if task is not None and "_target_" in task:
        return _get_class(str(task._target_), "model.task")
    from survlab.tasks.survival import SurvivalTask

    return SurvivalTask


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


def task_metric_names(cfg: DictConfig) -> list[str]:
    """Metric names (without val/ or test/) a job with this config reports."""
    task = cfg.model.get("task") if cfg.get("model") is not None else None
    objectives = (task.get("objectives") if task is not None else None) or {}
    if (
        not objectives and task is not None and hasattr(_task_class(cfg), "CONFIG_METRICS")
    ):  # e.g. segmentation
        return ["loss", *_task_class(cfg).CONFIG_METRICS]
    if not objectives:
        from survlab.tasks.objectives import SURVIVAL_METRICS

        return ["loss", *SURVIVAL_METRICS, *(f"survival/{m}" for m in SURVIVAL_METRICS)]
    names = ["loss"]
    for i, (name, node) in enumerate(objectives.items()):
        cls = _get_class(str(node._target_), f"model.task.objectives.{name}")
        try:  # the objective's names for these options (e.g. auc_<h> per horizon of a HorizonObjective)
            metrics = list(
                cls.config_metric_names(node) if hasattr(cls, "config_metric_names") else cls.metric_names
            )
        except ValueError as err:
            raise ConfigError(f"model.task.objectives.{name}: {err}") from None
        names += (metrics if i == 0 else []) + [f"{name}/{m}" for m in metrics]
    return names


def _metric_mode(cfg: DictConfig, metric: str) -> str:
    """'max' / 'min' for a validation metric name (without val/), from the objective classes' `modes`."""
    task = cfg.model.get("task") if cfg.get("model") is not None else None
    objectives = (task.get("objectives") if task is not None else None) or {}
    if metric.rsplit("/", 1)[-1] == "loss":
        return "min"
    if not objectives:
        from survlab.tasks.objectives import SurvivalObjective

        return SurvivalObjective.mode(metric.rsplit("/", 1)[-1])
    for i, (name, node) in enumerate(objectives.items()):
        head, _, leaf = metric.rpartition("/")
        if head == name or (not head and i == 0):
            cls = _get_class(str(node._target_), f"model.task.objectives.{name}")
            return cls.mode(leaf) if hasattr(cls, "mode") else cls.modes.get(leaf, "max")
    return "max"


def _primary_metric(cfg: DictConfig) -> str:
    """The primary objective's headline metric: cindex (survival), balanced_accuracy (classification)."""
    task = cfg.model.get("task") if cfg.get("model") is not None else None
    objectives = (task.get("objectives") if task is not None else None) or {}
    if not objectives and task is not None and hasattr(_task_class(cfg), "PRIMARY_METRIC"):
        return _task_class(cfg).PRIMARY_METRIC
    if not objectives:
        return "cindex"
    name, node = next(iter(objectives.items()))
    return _get_class(str(node._target_), f"model.task.objectives.{name}").primary_metric


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


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError (one line naming the key and the fix) for the first problem found; see module doc."""
    for key in cfg:
        if key not in TOP_LEVEL and key not in GROUPS:
            raise ConfigError(
                f"unknown top-level option {key!r} (a typo?); allowed: {', '.join(sorted(TOP_LEVEL))} and the "
                f"config groups {', '.join(GROUPS[:6])}"
            )
    for key, check in TOP_LEVEL.items():
        if check is not None and key in cfg:
            check(key, cfg[key])
    if cfg.get("model") is not None:
        _check_metrics(cfg)
        if "net" not in cfg.model or "_target_" not in cfg.model.net:
            raise ConfigError("model.net._target_ is missing; choose a model with model=<name>")
        _check_params(cfg.model.net, "model.net")
        if cfg.model.get("estimator") is not None and "_target_" in cfg.model.estimator:  # model=coxnet
            _check_params(cfg.model.estimator, "model.estimator")
        _check_task(cfg)
    for key in ("data", "trainer"):
        node = cfg.get(key)
        if node is not None and "_target_" in node:
            _check_params(node, key)
    for group in ("callbacks", "logger"):
        for name, node in (cfg.get(group) or {}).items():
            if node is not None and "_target_" in node:
                _check_params(node, f"{group}.{name}")
    _check_resident(cfg)


def _check_resident(cfg: DictConfig) -> None:
    """data.wsi.cache=device is built in the process that sets the data module up; spawned ranks get it without
    its features (run.py sets the data module up before fit)."""
    wsi = (cfg.get("data") or {}).get("wsi") or {}
    if str(wsi.get("cache", "")) != "device" or cfg.get("trainer") is None:
        return
    from survlab.utils.ddp import strategy_name

    strategy = strategy_name(cfg.trainer)
    if "spawn" in strategy:
        raise ConfigError(
            f"data.wsi.cache=device cannot be used with trainer.strategy={strategy} (spawned ranks receive the "
            "data module without its resident bags); use trainer.strategy=ddp, or data.wsi.cache=auto"
        )
