"""Which modalities a job asks the data module for: a network's required `modalities`, plus — for table networks
(`table_modalities`, e.g. CoxMLP) — whichever of genomics / clinical the data config provides."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf


def config_provides(data_cfg: DictConfig | dict[str, Any]) -> set[str]:
    """Table modalities a data config provides: genomics (a `genomics:` block) and clinical (`clinical.columns`)."""
    raw = OmegaConf.to_container(data_cfg, resolve=False) if isinstance(data_cfg, DictConfig) else data_cfg
    cfg: dict[Any, Any] = dict(raw) if isinstance(raw, dict) else {}
    have = set()
    if cfg.get("genomics") is not None:
        have.add("genomics")
    clinical = cfg.get("clinical")
    if isinstance(clinical, dict) and clinical.get("columns"):
        have.add("clinical")
    return have


def job_modalities(
    net_cls: type, data_cfg: DictConfig | dict[str, Any], net_cfg: Any = None
) -> tuple[str, ...]:
    """`net_cls.modalities` plus the table modalities it reads that the cohort has (in the network's order).

    `model.net.inputs` (if set) narrows the table modalities; a table network on a cohort with neither genomics nor
    clinical columns is a one-line ValueError naming the cohort."""
    required = tuple(getattr(net_cls, "modalities", ()))
    table = tuple(getattr(net_cls, "table_modalities", ()))
    if not table:
        return required
    chosen = net_cfg.get("inputs") if net_cfg is not None else None
    wanted = tuple(chosen) if chosen else table
    unknown = [m for m in wanted if m not in table]
    if unknown:
        raise ValueError(
            f"model.net.inputs={list(wanted)}: {unknown} not readable by {net_cls.__name__} "
            f"(allowed: {list(table)})"
        )
    have = config_provides(data_cfg)
    picked = tuple(m for m in wanted if m in have)
    if not picked:
        name = data_cfg.get("name", "?")
        raise ValueError(
            f"{net_cls.__name__} reads {' and/or '.join(wanted)} but data={name} has neither (no genomics: block, no "
            f"clinical.columns); add an expression table or clinical columns to the data config"
        )
    return tuple(dict.fromkeys([*required, *picked]))
