"""Check a train command line's overrides before Hydra composes it: unknown keys and config names (with the closest
spelling), value types against the defaults, and Hydra's own composition errors as one line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from survlab.config.check_values import GROUPS, TOP_LEVEL, ConfigError

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
