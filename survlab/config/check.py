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
    survlab.config.check.ConfigError: selection='bestval' is not one of best_val, last
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("survlab.config")

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


def _conformal(key: str, value: Any) -> None:
    """`conformal: {alphas: [a in (0, 1), ...], mondrian: bool}` (survlab.runner.conformal)."""
    if not hasattr(value, "keys") or set(value.keys()) - {"alphas", "mondrian"}:
        raise ConfigError(f"{key}={value!r} must be {{alphas: [0.1, 0.2], mondrian: false}}")
    alphas = list(value.get("alphas") or [])
    if not all(isinstance(a, int | float) and not isinstance(a, bool) and 0 < a < 1 for a in alphas):
        raise ConfigError(f"{key}.alphas={alphas} must be numbers in (0, 1), e.g. [0.1, 0.2]")
    _bool(f"{key}.mondrian", value.get("mondrian", False))


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
    "pipeline": None,  # multi-stage recipes (experiment=pathgen_pipeline_*), see survlab.runner.pipelines
    "conformal": _conformal,  # post-hoc split-conformal sets (survlab.runner.conformal)
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


# ---------------------------------------------------------------------------------------------------- command line
#: keys that take the string `auto` although their default is a number or a boolean
AUTO_KEYS = ("trainer.devices", "data.num_workers", "data.pin_memory")
#: Hydra command-line flags followed by a value (a train command line's other flags are taken as they are)
_VALUE_FLAGS = ("--config-dir", "-cd", "--config-name", "-cn")
_KIND = {bool: "true or false", int: "an integer", float: "a number"}


def _closest(word: str, candidates: Any) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, [str(c) for c in candidates], n=1, cutoff=0.6)
    return found[0] if found else None


def _raw(container: Any, key: str) -> tuple[bool, Any]:
    """(found, value) of dotted `key` in a plain (unresolved) container."""
    node = container
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _type_error(key: str, value: Any, default: Any) -> str | None:
    """Why `value` cannot replace `default` (the composed default of `key`), or None. Only a word where a number or
    a boolean belongs is refused (a float for an integer, a list for a number, null are left to the constructors)."""
    if default is None or value is None or not isinstance(value, str) or value.startswith("${"):
        return None
    if not isinstance(default, bool | int | float) or (value == "auto" and key in AUTO_KEYS):
        return None
    kind = bool if isinstance(default, bool) else int if isinstance(default, int) else float
    return f"{key}={value!r} must be {_KIND[kind]} (the default is {default!r})"


def _composition_error(
    exc: Exception, overrides: list[str], compose: Callable[[list[str]], Any]
) -> ConfigError:
    """Hydra's multi-line compose error -> survlab's one line, with the closest valid key or config name."""
    import re

    from omegaconf import OmegaConf

    text = str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    missing = re.search(r"Could not find '([^']+)/([^'/]+)'", text)
    if missing:  # a config name that does not exist: `model=abmill`, `data=my_cohort` outside the search path
        group, name = missing.groups()
        options = re.findall(
            r"^\t(\S+)$", text.split("Available options", 1)[-1].split("Config search path")[0], re.M
        )
        best = _closest(name, [o for o in options if not o.startswith("_")])
        hint = f"did you mean {group}={best}?" if best else f"`survlab train --help` lists the {group} names"
        return ConfigError(
            f"{group}={name}: no config '{group}/{name}.yaml' ({hint}); configs of yours are found through "
            "SURVLAB_CONFIG_PATH, ./conf or --config-dir DIR"
        )
    unknown = re.search(r"Could not override '([^']+)'", text) or re.search(
        r"Could not delete from config\. '([^']+)' does not exist", text
    )
    if unknown:  # a key that is not in the config: `modle=abmil`, `trainer.max_epoch=5`
        key = unknown.group(1)
        parent, _, leaf = key.rpartition(".")
        rest = [o for o in overrides if o.lstrip("~+").split("=", 1)[0] != key]
        try:
            container = OmegaConf.to_container(compose(rest), resolve=False)
        except Exception:  # noqa: BLE001 - another problem as well: name this one without a suggestion
            container = {}
        _, node = _raw(container, parent) if parent else (True, container)
        best = _closest(leaf, node) if isinstance(node, dict) else None
        suggestion = (
            f"did you mean '{parent + '.' if parent else ''}{best}'?" if best else "no key of that name"
        )
        return ConfigError(
            f"unknown key '{key}' ({suggestion}); `survlab train --cfg job` prints every key "
            "(a new key of your own is added with +key=value)"
        )
    exists = re.search(r"An item is already at '([^']+)'", text)
    if exists:
        return ConfigError(
            f"+{exists.group(1)}: the key already exists; set it without the '+' ({exists.group(1)}=...)"
        )
    return ConfigError(first)


def check_command_line(argv: Any) -> None:
    """Compose a `survlab train` / `python -m survlab.run` command line's config and check it before torch or
    Lightning is imported (about a second): every override parses, every key and config name exists (else the
    closest valid one is named), a word is not given where the default is a number or a boolean
    (`trainer.max_epochs=two`, `model.task.lr=abc`), and the top-level options pass `TOP_LEVEL`. With `-m`, every
    value of a swept option is checked (each swept config name composed). Raises ConfigError (one line). The full
    check (constructor parameters, metrics) still runs in each job (`check_config`)."""
    import warnings

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException, OverrideParseException
    from omegaconf import OmegaConf

    from survlab.config.search_path import PACKAGE_CONF_DIR, searchpath_overrides, split_config_dirs

    config_dirs, rest = split_config_dirs(list(argv))
    config_name, overrides = "config", []
    it = iter(rest)
    for a in it:
        if a in ("--config-name", "-cn"):
            config_name = next(it, "config")
        elif a.startswith("--config-name="):
            config_name = a.split("=", 1)[1]
        elif a in ("-m", "--multirun"):
            continue
        elif a.startswith("-") or a.startswith("resume="):
            return  # a flag of Hydra's own, or resume=<run dir> (its recorded overrides ran before): Hydra decides
        else:
            overrides.append(a)
    parser = OverridesParser.create()
    parsed = []
    for arg in overrides:
        try:
            parsed.append(parser.parse_overrides([arg])[0])
        except OverrideParseException as exc:
            raise ConfigError(
                f"cannot read the override {arg!r}: {str(exc).splitlines()[0]} (Hydra's grammar: quote a value with "
                "spaces, brackets or a leading ~ as key='\"value\"')"
            ) from None

    def _compose(ovs: list[str]) -> Any:
        GlobalHydra.instance().clear()
        try:  # Hydra's own warnings (e.g. a launcher's schema matching) come once, from the run itself
            with (
                warnings.catch_warnings(),
                initialize_config_dir(config_dir=str(PACKAGE_CONF_DIR), version_base="1.3"),
            ):
                warnings.simplefilter("ignore")
                return compose(
                    config_name,
                    overrides=[*ovs, *searchpath_overrides(config_dirs)],
                    return_hydra_config=True,
                )
        finally:
            GlobalHydra.instance().clear()

    # one composition with the first value of each swept option; the other values are checked below
    first: list[str] = []
    swept: list[tuple[Any, list[Any]]] = []
    for o, text in zip(parsed, overrides, strict=True):
        if not o.is_sweep_override():
            first.append(text)
        elif o.is_choice_sweep():
            values = list(o.sweep_string_iterator())
            first.append(f"{o.get_key_element()}={values[0]}")
            swept.append((o, values))
        # range / interval sweeps: values of the sweeper's choosing, checked by each job
    try:
        cfg = _compose(first)
    except HydraException as exc:
        raise _composition_error(exc, first, _compose) from None
    choices = set(OmegaConf.select(cfg, "hydra.runtime.choices", default={}) or {})

    def is_group(o: Any) -> bool:
        return o.key_or_group in choices or o.key_or_group.startswith("hydra")

    for o, values in swept:  # every other swept config name must exist too
        if is_group(o) and not o.key_or_group.startswith("hydra"):
            for v in values[1:]:
                ovs = [
                    t if t.split("=", 1)[0] != o.get_key_element() else f"{o.get_key_element()}={v}"
                    for t in first
                ]
                try:
                    _compose(ovs)
                except HydraException as exc:
                    raise _composition_error(exc, ovs, _compose) from None
    # value types against the defaults of the same config choices (without the value overrides)
    values_given = [
        (o, list(o.sweep_iterator()) if o.is_sweep_override() else [o.value()])
        for o in parsed
        if not is_group(o)
        and not o.is_delete()
        and not o.is_add()
        and not o.is_force_add()
        and (not o.is_sweep_override() or o.is_choice_sweep())
    ]
    if values_given:
        group_only = [
            f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}"
            if o.is_sweep_override()
            else text
            for o, text in zip(parsed, overrides, strict=True)
            if is_group(o) and (not o.is_sweep_override() or o.is_choice_sweep())
        ]
        defaults = OmegaConf.to_container(_compose(group_only), resolve=False)
        for o, vals in values_given:
            found, default = _raw(defaults, o.key_or_group)
            for given in vals if found else []:
                why = _type_error(o.key_or_group, given, default)
                if why:
                    raise ConfigError(why)
    top = cast("dict[str, Any]", OmegaConf.to_container(cfg, resolve=False))  # cfg is a DictConfig
    top.pop("hydra", None)
    for key in top:
        if key not in TOP_LEVEL and key not in GROUPS:
            best = _closest(str(key), [*TOP_LEVEL, *GROUPS])
            raise ConfigError(
                f"unknown top-level option {key!r}"
                + (f" (did you mean {best!r}?)" if best else " (a typo?)")
                + f"; allowed: {', '.join(sorted(TOP_LEVEL))} and the config groups {', '.join(GROUPS[:6])}"
            )
    for key, check in TOP_LEVEL.items():
        value = top.get(key)
        if check is not None and key in top and not (isinstance(value, str) and value.startswith("${")):
            check(key, value)
