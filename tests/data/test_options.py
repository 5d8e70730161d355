"""The data config's defaults live in one place: the option dataclasses (survlab.data.options) or the shipped YAML
bases (conf/data/_*.yaml), never contradicting each other; every key a shipped data config writes is an option."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from survlab.config.cohorts import data_composer
from survlab.config.search_path import PACKAGE_CONF_DIR
from survlab.data import options
from survlab.data.options import DataOptions, GenomicsOptions, SplitOptions, TridentOptions, WsiOptions

DATA_DIR = Path(PACKAGE_CONF_DIR) / "data"
#: an option block -> its dataclass ("" = the top level)
GROUPS: dict[str, type] = {
    "": DataOptions,
    "wsi": WsiOptions,
    "wsi.trident": TridentOptions,
    "genomics": GenomicsOptions,
    "splits": SplitOptions,
}


def _composed(names: list[str]) -> dict[str, dict[str, Any]]:
    with data_composer() as compose:
        return {n: OmegaConf.to_container(compose(n), resolve=False) for n in names}  # type: ignore[misc]


def _block(cfg: dict[str, Any], group: str) -> dict[str, Any] | None:
    node: Any = cfg
    for part in filter(None, group.split(".")):
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def _same(a: Any, b: Any) -> bool:
    norm = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731 - YAML [] is the dataclass's ()
    return norm(a) == norm(b)


def _interpolated(v: Any) -> bool:
    return isinstance(v, str) and v.startswith("${")


def contradictions(bases: dict[str, dict[str, Any]]) -> list[str]:
    """'<base>: <key>: <yaml value> (dataclass default <value>)' for every key whose default the shipped bases state
    with one value while the option dataclass states another. A dataclass default of None is no default (the cohort
    names it, e.g. wsi.encoder); a key the bases set differently from one another (val_fraction 0.15 for TCGA, 0.2
    for table cohorts) is a per-family setting, and a base without the key takes the dataclass's."""
    out = []
    for group, cls in GROUPS.items():
        for key, default in options.defaults(cls).items():
            if default is None:
                continue
            values = {}  # base -> the value it gives the key (its own, or the dataclass default it leaves in place)
            for name, cfg in bases.items():
                block = _block(cfg, group) if group else cfg
                if block is not None:
                    values[name] = block.get(key, default)
            # an interpolation (fold: ${fold}) hands the key to the one top-level default, it states none itself
            stated = {n: v for n, v in values.items() if not _same(v, default) and not _interpolated(v)}
            if stated and all(_same(v, next(iter(values.values()))) for v in values.values()):
                out += [
                    f"{n}: {group + '.' if group else ''}{key}: {v!r} (dataclass default {default!r})"
                    for n, v in stated.items()
                ]
    return out


@pytest.fixture(scope="module")
def shipped() -> dict[str, dict[str, Any]]:
    """Every conf/data/*.yaml of the package composed by Hydra (the CohortDataModule ones; not the segmentor's)."""
    cfgs = _composed(sorted(p.stem for p in DATA_DIR.glob("*.yaml")))
    return {
        n: c for n, c in cfgs.items() if not str(c.get("_target_", "")).endswith("SegmentationDataModule")
    }


def test_no_default_is_stated_twice_with_two_values(shipped: dict[str, dict[str, Any]]) -> None:
    bases = {n: c for n, c in shipped.items() if n.startswith("_")}
    assert sorted(bases) == ["_clam", "_petct", "_table", "_tcga", "_tcga_multiscale"]
    assert contradictions(bases) == []


def test_the_rule_catches_the_cache_cap_that_contradicted_the_yaml(
    shipped: dict[str, dict[str, Any]],
) -> None:
    """The defect the rule is for: Python said wsi.cache_max_gb 2, every shipped base with slides said 8 (issue #22);
    a key the bases disagree on (num_workers: auto for slides, 0 for tables) is a family setting, not a default."""
    bases = {n: c for n, c in shipped.items() if n.startswith("_")}
    old = {**options.defaults(WsiOptions), "cache_max_gb": 2.0}
    original = options.defaults
    try:
        options.defaults = lambda cls: old if cls is WsiOptions else original(cls)  # type: ignore[assignment]
        found = contradictions(bases)
    finally:
        options.defaults = original  # type: ignore[assignment]
    assert found == [
        "_clam: wsi.cache_max_gb: 8 (dataclass default 2.0)",
        "_tcga: wsi.cache_max_gb: 8 (dataclass default 2.0)",
        "_tcga_multiscale: wsi.cache_max_gb: 8 (dataclass default 2.0)",
    ]


def test_every_key_of_every_shipped_data_config_is_an_option(shipped: dict[str, dict[str, Any]]) -> None:
    """A key no dataclass declares would be refused when the module is built (or silently ignored by a reader)."""
    unknown = []
    for name, cfg in shipped.items():
        for group, cls in GROUPS.items():
            block = _block(cfg, group) if group else cfg
            allowed = set(options.keys(cls)) | ({"_target_"} if not group else set())
            unknown += [f"{name}: {group}.{k}" for k in (block or {}) if k not in allowed]
    assert unknown == []
    assert len(shipped) >= 25


def test_unknown_keys_are_one_line_errors_naming_the_block() -> None:
    from survlab.data.datamodule import CohortDataModule

    with pytest.raises(
        ValueError, match=r"^unknown data option\(s\) \['batchsize'\]; allowed: \[.*'batch_size'"
    ):
        CohortDataModule(batchsize=4)
    with pytest.raises(
        ValueError, match=r"^unknown wsi option\(s\) \['cache_gb'\]; allowed: .*'cache_max_gb'"
    ):
        CohortDataModule(wsi={"cache_gb": 4})
    with pytest.raises(ValueError, match=r"^unknown splits option\(s\) \['fold'\]"):
        CohortDataModule(splits={"fold": 1})


def test_the_constructor_signature_is_the_dataclass() -> None:
    """The config check (survlab.config.check) reads the constructor's parameters: they are DataOptions' fields."""
    import inspect

    from survlab.data.datamodule import CohortDataModule

    params = inspect.signature(CohortDataModule.__init__).parameters
    assert [p for p in params if p != "self"] == list(options.keys(DataOptions))
    assert params["batch_size"].default == 8 and params["max_patches"].default == 4096
