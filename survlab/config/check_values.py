"""The error a job configuration check raises and the checks of the top-level keys of conf/config.yaml.

`ConfigError` is one line: the key, what is wrong, the fix. `TOP_LEVEL` maps each top-level key to its value
check (allowed values / types), `GROUPS` names the config groups, `RUN_METRICS` the keys of metrics.json that are
not `test/<metric>`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


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


def _mapping(key: str, value: Any) -> None:
    if value is not None and not hasattr(value, "keys"):
        raise ConfigError(f"{key}={value!r} must be a mapping, e.g. {key}={{root:/data/cohort,missing:keep}}")


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
    "external_data_overrides": _mapping,  # keys of the external cohort's data config (runner/eval_external.py)
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
