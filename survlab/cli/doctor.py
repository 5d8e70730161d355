"""`survlab doctor`: what this machine gives survlab — torch / CUDA / GPUs, CPU cores and the loader settings `auto`
chooses, the optional extras installed, the W&B mode, and whether the data / log / split folders are writable.

    survlab doctor                                  # the defaults (folders under the working directory)
    survlab doctor paths.data_dir=/data/tcga        # the same overrides as a run

Exit status 0 when survlab can run here, 1 when a folder it must write is not writable (each problem one line).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import sys
from pathlib import Path

from survlab import __version__

#: optional extras (pyproject.toml) -> (distribution, module to find, what it enables)
EXTRAS: dict[str, tuple[str, str, str]] = {
    "slurm": (
        "hydra-submitit-launcher",
        "hydra_plugins.hydra_submitit_launcher",
        "hydra/launcher=submitit_*",
    ),
    "joblib": ("hydra-joblib-launcher", "hydra_plugins.hydra_joblib_launcher", "hydra/launcher=joblib"),
    "tensorboard": ("tensorboard", "tensorboard", "logger=tensorboard"),
    "hpo": ("hydra-optuna-sweeper", "hydra_plugins.hydra_optuna_sweeper", "hparams_search=optuna"),
    "text": ("sentence-transformers", "sentence_transformers", "text prompts, model=hmf"),
}
#: the folders a run writes (paths/default.yaml) -> the environment variable that also sets each
PATH_KEYS = {
    "root_dir": "SURVLAB_ROOT",
    "data_dir": "SURVLAB_DATA",
    "log_dir": "SURVLAB_LOGS",
    "splits_dir": "SURVLAB_SPLITS",
}


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def extras() -> dict[str, str | None]:
    """{extra: installed version or None}."""
    out: dict[str, str | None] = {}
    for name, (dist, module, _) in EXTRAS.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        out[name] = (_version(dist) or "installed") if found else None
    return out


def writable(path: Path) -> tuple[bool, str]:
    """(whether survlab can write into `path`, 'exists' / 'will be created'): the nearest existing folder must be
    a writable directory."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    ok = probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)
    return ok, "exists" if probe == path else f"will be created under {probe}"


def resolved_paths(overrides: list[str]) -> dict[str, Path]:
    """paths.* of the run config composed with `overrides` (Hydra's compose API; the working directory as root)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from survlab.config.search_path import PACKAGE_CONF_DIR, searchpath_overrides, split_config_dirs

    dirs, rest = split_config_dirs(overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(PACKAGE_CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=[*rest, *searchpath_overrides(dirs)])
    finally:
        GlobalHydra.instance().clear()
    return {k: Path(str(OmegaConf.select(cfg, f"paths.{k}"))).expanduser() for k in PATH_KEYS}


def report(overrides: list[str]) -> tuple[list[str], list[str]]:
    """(lines, problems) describing this machine for survlab."""
    import torch

    from survlab.data.datamodule import choose_loader, usable_cpus

    lines = [
        f"survlab {__version__}, Python {platform.python_version()} ({platform.system()} {platform.machine()})"
    ]
    cuda = torch.cuda.is_available()
    n_gpu = torch.cuda.device_count() if cuda else 0
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    gpus = ", ".join(torch.cuda.get_device_name(i) for i in range(n_gpu)) if n_gpu else "none"
    lines.append(
        f"torch {torch.__version__} ({build}); CUDA available: {'yes' if cuda else 'no'}; GPUs: {n_gpu} ({gpus})"
    )
    lines.append(f"lightning {_version('lightning')}, hydra-core {_version('hydra-core')}")
    loader = choose_loader("auto", "auto", cuda=cuda)
    lines.append(
        f"CPU cores usable: {usable_cpus()} (of {os.cpu_count()}); num_workers=auto -> {loader['num_workers']}, "
        f"pin_memory=auto -> {str(loader['pin_memory']).lower()}"
    )
    found = extras()
    lines.append(
        "extras: "
        + "; ".join(
            f"{name} {v} ({EXTRAS[name][2]})"
            if v
            else f'{name} missing (pip install "survlab[{name}]" for {EXTRAS[name][2]})'
            for name, v in found.items()
        )
    )
    mode = os.environ.get("WANDB_MODE", "")
    wandb_version = _version("wandb")
    if not wandb_version:
        wb = "not installed (logger=csv works)"
    elif mode.lower() == "disabled":
        wb = "disabled (WANDB_MODE=disabled: runs log CSV only)"
    elif mode.lower() == "online":
        wb = "online (WANDB_MODE=online; logger.wandb.offline=false streams)"
    else:
        wb = "offline (default: each run writes <run dir>/wandb/offline-run-*, upload later with wandb sync)"
    lines.append(f"W&B: wandb {wandb_version or '-'}, {wb}")
    problems: list[str] = []
    for key, path in resolved_paths(overrides).items():
        ok, state = writable(path)
        lines.append(f"paths.{key}: {path} ({state}, {'writable' if ok else 'NOT writable'})")
        if not ok:
            problems.append(
                f"paths.{key}={path} is not writable; pass paths.{key}=<a folder you can write> "
                f"(or {PATH_KEYS[key]}=...)"
            )
    return lines, problems


def main(argv: list[str] | None = None) -> int:
    """`survlab doctor [overrides]` -> 0 when survlab can run here, 1 otherwise (the problems, one line each)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        print(__doc__.strip())
        return 0
    lines, problems = report(args)
    print("\n".join(lines))
    for p in problems:
        print(f"survlab doctor: problem: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
