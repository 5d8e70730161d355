"""Where survlab's configs are found: the package's own `survlab/conf`, plus the user's config folders.

A lab keeps its cohorts and recipes in its own folder, never inside the installed package:

- `SURVLAB_CONFIG_PATH=/lab/conf[:/other/conf]`: searched BEFORE the package configs (a file there may replace a
  shipped one of the same name, e.g. `data/tcga_luad.yaml` with the lab's own paths);
- `./conf` in the working directory, when it exists: searched AFTER the package configs (new names only; this is also
  where the optional machine-local `conf/local/default.yaml` lives);
- Hydra's own `--config-dir DIR` (`-cd DIR`) adds a folder for one command.

Each folder mirrors the package layout: `data/<cohort>.yaml`, `model/<name>.yaml`, `experiment/<recipe>.yaml`.

    >>> PACKAGE_CONF_DIR.name, (PACKAGE_CONF_DIR / "config.yaml").is_file()
    ('conf', True)
"""

from __future__ import annotations

import os
from pathlib import Path

#: the configs shipped inside the package (a wheel install carries them as package data)
PACKAGE_CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
#: environment variable holding the user's config folders (os.pathsep-separated), searched before the package's
ENV_VAR = "SURVLAB_CONFIG_PATH"


def user_conf_dirs_first() -> list[Path]:
    """The folders of SURVLAB_CONFIG_PATH that exist, in order (searched before the package configs)."""
    raw = os.environ.get(ENV_VAR, "")
    return [
        Path(p).expanduser().resolve()
        for p in raw.split(os.pathsep)
        if p.strip() and Path(p).expanduser().is_dir()
    ]


def user_conf_dirs_last() -> list[Path]:
    """`./conf` of the working directory when it exists and is not the package's own (searched after it)."""
    cwd_conf = (Path.cwd() / "conf").resolve()
    return [cwd_conf] if cwd_conf.is_dir() and cwd_conf != PACKAGE_CONF_DIR else []


def conf_dirs() -> list[Path]:
    """Every config root in search order: SURVLAB_CONFIG_PATH, the package, ./conf."""
    return [*user_conf_dirs_first(), PACKAGE_CONF_DIR, *user_conf_dirs_last()]


def group_dirs(group: str) -> list[Path]:
    """The existing `<root>/<group>` folders in search order (e.g. group="data")."""
    return [d / group for d in conf_dirs() if (d / group).is_dir()]


def find_config(group: str, name: str) -> Path | None:
    """The first `<root>/<group>/<name>.yaml` in search order, or None."""
    for d in group_dirs(group):
        if (d / f"{name}.yaml").is_file():
            return d / f"{name}.yaml"
    return None


def available(group: str) -> list[str]:
    """Names of the configs of a group across all roots (files starting with `_` are shared parts, not listed)."""
    return sorted({p.stem for d in group_dirs(group) for p in d.glob("*.yaml") if not p.stem.startswith("_")})


def split_config_dirs(argv: list[str] | tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Hydra's `--config-dir DIR` / `-cd DIR` / `--config-dir=DIR` taken out of `argv` -> (folders, other arguments),
    for the commands that compose through Hydra's compose API (which has no such flag)."""
    dirs: list[str] = []
    rest: list[str] = []
    it = iter(argv)
    for a in it:
        if a in ("--config-dir", "-cd"):
            value = next(it, None)
            if value is None:
                raise ValueError(f"{a} needs a folder: {a} DIR (README 'Your own configs')")
            dirs.append(value)
        elif a.startswith("--config-dir="):
            dirs.append(a.split("=", 1)[1])
        else:
            rest.append(a)
    return dirs, rest


def searchpath_overrides(config_dirs: list[str] | tuple[str, ...]) -> list[str]:
    """The `hydra.searchpath=[file://...]` override adding `config_dirs` to a compose (none when empty)."""
    if not config_dirs:
        return []
    return [f"hydra.searchpath=[{','.join(f'file://{Path(d).expanduser().resolve()}' for d in config_dirs)}]"]


# the configs use survlab's resolvers (${survlab.cwd:} in paths/, ${survlab.pid:} in hydra/): every module that composes
# them finds its configs through this one, so importing it registers them
from survlab.utils.job_hydra import register_resolvers as _register_resolvers  # noqa: E402

_register_resolvers()
