"""Check a composed job configuration before any data is read, so a typo fails in seconds with one line.

What is checked:
- the top-level keys of `conf/config.yaml` (`TOP_LEVEL`: allowed values / types), `monitor` (a validation metric
  the task logs) and `optimized_metric` (a key of metrics.json);
- every `_target_` node (data, model.net, trainer, callbacks, loggers): the class imports and each given key is a
  parameter of its constructor (unless it takes **kwargs) — so `model.net.dimm=64` or `trainer.max_epoch=5` fail
  here instead of deep inside a constructor, after the cohort was read;
- `model.task`: its keys against the task's constructor, and its choice-valued options.

This module is the entry point (check_config, moved_targets, the data.wsi.cache=device check); the value checks
and ConfigError live in check_values.py, the checks that ask the task class in check_task.py, and the command-line
check in check_cli.py.

The defaults live in one place, the YAML files (`python -m survlab.run --cfg job` shows them).

Example:
    >>> from omegaconf import OmegaConf
    >>> check_config(OmegaConf.create({"selection": "bestval"}))
    Traceback (most recent call last):
    ...
    survlab.config.check_values.ConfigError: selection='bestval' is not one of best_val, last
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig, OmegaConf

from survlab.config.check_task import _check_metrics, _check_params, _check_task
from survlab.config.check_values import GROUPS, TOP_LEVEL, ConfigError

log = logging.getLogger("survlab.config")

__all__ = ["check_config", "moved_targets"]


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError (one line naming the key and the fix) for the first problem found; see module doc."""
    moved_targets(cfg)
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
    _check_external(cfg)


def _check_external(cfg: DictConfig) -> None:
    """`external_data`: a data config on the search path; `external_data_overrides`: keys its data module takes
    (checked on the composed cohort config, before training rather than after it)."""
    name, overrides = cfg.get("external_data"), cfg.get("external_data_overrides") or {}
    if not name:
        if overrides:
            raise ConfigError(
                f"external_data_overrides={OmegaConf.to_container(overrides)} needs external_data=<a conf/data name>"
            )
        return
    from survlab.config.cohorts import external_data_config

    try:
        node = external_data_config(cfg, str(name), overrides)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if "_target_" in node:
        _check_params(node, "external_data_overrides" if overrides else f"external_data={name}")


def moved_targets(node: Any, where: str = "") -> None:
    """Rewrite, in place and with one warning each, a `_target_` that names a module by its path before the folders
    became the layers (e.g. survlab.runner.coxnet.PenalisedCox -> survlab.runner.estimators.coxnet.PenalisedCox);
    the old spelling is accepted for one release."""
    from survlab.utils.job_identity import MOVED_MODULES

    if not isinstance(node, DictConfig):
        return
    old_to_new = {old: new for new, old in MOVED_MODULES.items()}
    for key in list(node.keys()):
        child = node._get_node(key)
        value = child._value() if key == "_target_" and child is not None else None
        if key == "_target_" and isinstance(value, str):
            module, _, name = value.rpartition(".")
            if module in old_to_new:
                node[key] = f"{old_to_new[module]}.{name}"
                log.warning(
                    "%s_target_: %s has moved to %s (the old spelling is accepted until the next release)",
                    f"{where}." if where else "",
                    value,
                    node[key],
                )
        elif isinstance(child, DictConfig):
            moved_targets(node[key], f"{where}.{key}" if where else str(key))


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
