"""Which modalities a job asks the data module for: a network's required `modalities`, plus — for table networks
(`table_modalities`, e.g. CoxMLP) — whichever of genomics / clinical the data config provides; and which of them the
network takes absent (`accepts_absent`, data.missing=keep) with the networks that would (for the one-line error)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
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


def job_accepts_absent(net_cls: type) -> frozenset[str]:
    """The modalities (PatientItem.present keys: wsi, genomics, pet) `net_cls` takes absent for some patients
    (`accepts_absent`, default none): what the data module checks a data.missing=keep cohort against."""
    return frozenset(getattr(net_cls, "accepts_absent", frozenset()))


def models_accepting_absent(modality: str, model_dirs: list[Path] | None = None) -> list[str]:
    """Names of the model configs (survlab's search path, or `model_dirs`) whose network accepts an absent
    `modality`; a config without its own `net._target_`, or whose class does not import, is skipped."""
    import yaml
    from hydra.utils import get_class

    from survlab.config.search_path import group_dirs

    found = []
    for folder in model_dirs if model_dirs is not None else group_dirs("model"):
        for path in sorted(Path(folder).glob("*.yaml")):
            if path.stem.startswith("_"):
                continue
            try:
                target = ((yaml.safe_load(path.read_text()) or {}).get("net") or {}).get("_target_")
                cls = get_class(target) if target else None
            except Exception:  # noqa: BLE001 - a config that does not read or import names no alternative
                continue
            if cls is not None and modality in job_accepts_absent(cls):
                found.append(path.stem)
    return sorted(set(found))


def untaken_absent(
    net_cls: type, modality_dropout: float, absent_in_training: Mapping[str, int], model: str
) -> dict[str, str]:
    """Modality (PRESENCE: wsi, genomics, pet) -> why the trained model `model` cannot score a patient without it:
    its network `net_cls` takes no absent one (`accepts_absent`), or its stand-in was never trained (no training
    patient lacked it, `absent_in_training` of the run's FoldPreprocessing, and `modality_dropout` = 0: the stand-in
    is its random initial value). What an external cohort under data.missing=keep is checked against."""
    from survlab.data.absence import PRESENCE

    accepted = job_accepts_absent(net_cls)
    out = {}
    for m in PRESENCE:
        if m not in accepted:
            out[m] = (
                f"{model} cannot take an absent {m} (its network {net_cls.__name__} has no stand-in for it)"
            )
        elif not absent_in_training.get(m) and not modality_dropout:
            out[m] = (
                f"{model} was trained on no patient without {m} and model.net.modality_dropout=0, so its "
                f"absent-{m} stand-in is untrained"
            )
    return out


def model_cannot_take(cfg: DictConfig, absent_in_training: Mapping[str, int], run: str) -> dict[str, str]:
    """`untaken_absent` of a run's model: its network class (`cfg.model.net._target_`), its
    `model.net.modality_dropout` and its training patients without each modality (`absent_in_training`); `run`
    names it in the messages (e.g. "run=<run dir>")."""
    from hydra.utils import get_class

    net_cls = get_class(cfg.model.net._target_)
    dropout = float(cfg.model.net.get("modality_dropout") or 0.0)
    return untaken_absent(
        net_cls, dropout, absent_in_training, f"model={cfg.model.get('name') or net_cls.__name__} of {run}"
    )
