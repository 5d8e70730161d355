"""The cohort configs on the config search path, composed by Hydra (a data config with its `defaults` parents, exactly
as a run composes `data=<name>`), and which cohorts provide a modality (for the hint of a one-line error).

    >>> compose_data_config("tcga_luad").wsi.cache_max_gb        # _tcga.yaml's, through `defaults: [_tcga, _self_]`
    8
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from survlab.config.search_path import PACKAGE_CONF_DIR, available, group_dirs, searchpath_overrides


@contextmanager
def data_composer(config_dirs: Sequence[str | Path] = ()) -> Iterator[Callable[[str], DictConfig]]:
    """A function composing `data=<name>` alone (interpolations unresolved) through Hydra's compose API, on survlab's
    search path (SURVLAB_CONFIG_PATH, the package, ./conf; survlab.config.search_path) plus `config_dirs`. A Hydra
    state already initialised (a running job) is put back afterwards."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    gh = GlobalHydra.instance()
    saved = gh.hydra if gh.is_initialized() else None
    gh.clear()
    extra = searchpath_overrides([str(d) for d in config_dirs])
    try:
        with initialize_config_dir(config_dir=str(PACKAGE_CONF_DIR), version_base="1.3"):
            yield lambda name: compose(overrides=[f"+data={name}", *extra]).data
    finally:
        gh.clear()
        if saved is not None:
            gh.initialize(saved)


def compose_data_config(name: str, config_dirs: Sequence[str | Path] = ()) -> DictConfig:
    """conf/data/<name>.yaml composed by Hydra with its defaults parents (interpolations unresolved)."""
    with data_composer(config_dirs) as compose:
        return compose(name)


def external_data_config(cfg: DictConfig, name: str, overrides: Any = None) -> DictConfig:
    """conf/data/<name>.yaml (composed by Hydra with its defaults parents) with `overrides` (a mapping of its keys,
    e.g. a run's `external_data_overrides`) merged in, resolved in the context of the run's config (paths, fold,
    seed); one-line ValueError for an unknown name."""
    dirs = group_dirs("data")
    if not any((d / f"{name}.yaml").is_file() for d in dirs):
        names = sorted({p.stem for d in dirs for p in d.glob("*.yaml") if not p.stem.startswith("_")})
        raise ValueError(f"external_data={name}: no conf/data/{name}.yaml; available: {', '.join(names)}")
    context = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    node = compose_data_config(name)
    if overrides:  # unknown keys pass here: the job's config check names them (survlab.config.check)
        OmegaConf.set_struct(node, False)
        node = cast(DictConfig, OmegaConf.merge(node, overrides))
    context.data = OmegaConf.to_container(node, resolve=False)
    resolved = OmegaConf.create(OmegaConf.to_container(context.data, resolve=True))
    assert isinstance(resolved, DictConfig)
    return resolved


def provided_modalities(cfg: dict[str, Any]) -> set[str]:
    """Modalities a composed data config (plain dict) provides, as CohortDataModule.provides tells them."""
    wsi, clin = cfg.get("wsi"), cfg.get("clinical")
    provides = {
        "wsi": wsi is not None,
        "scales": isinstance(wsi, dict) and bool(wsi.get("scales")),
        "genomics": cfg.get("genomics") is not None,
        "clinical": isinstance(clin, dict) and bool(clin.get("columns")),
        "text": bool(cfg.get("prompts")),
        "ct": cfg.get("imaging") is not None,
        "ct_seg": str(cfg.get("_target_", "")).endswith("SegmentationDataModule"),
    }
    return {m for m, yes in provides.items() if yes}


def cohorts_providing(modality: str, config_dirs: Sequence[Path] | None = None) -> list[str] | None:
    """Names of the data configs (survlab's search path, or the config roots `config_dirs`, each holding data/*.yaml)
    that provide `modality`; None when no data config folder is found. A config that does not compose is skipped."""
    import yaml
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if config_dirs is not None:
        roots = [Path(d) for d in config_dirs if (Path(d) / "data").is_dir()]
        if not roots:
            return None
        names = sorted(
            {p.stem for r in roots for p in (r / "data").glob("*.yaml") if not p.stem.startswith("_")}
        )
    else:
        names = available("data")
        if not names:
            return None
    found = []
    with data_composer(config_dirs or ()) as compose:
        for name in names:
            try:
                cfg = OmegaConf.to_container(compose(name), resolve=False)
            except (HydraException, OmegaConfBaseException, yaml.YAMLError):
                continue
            if isinstance(cfg, dict) and modality in provided_modalities({str(k): v for k, v in cfg.items()}):
                found.append(name)
    return found
