"""The cohort configs on the config search path, read as plain YAML: a data config merged over its `defaults`
parents, and which cohorts provide a modality (for the hint of a one-line error)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def load_data_yaml(path: Path, depth: int = 0) -> dict[str, Any]:
    """A conf/data yaml merged over its `defaults` parents (plain dict merge, child wins; enough to read keys)."""
    import yaml

    from survlab.config.search_path import find_config

    cfg = yaml.safe_load(path.read_text()) or {}
    merged: dict[str, Any] = {}
    for parent in cfg.pop("defaults", []) or []:
        if not isinstance(parent, str) or parent == "_self_" or depth >= 5:
            continue
        # a user cohort may build on a shipped base (`defaults: [_tcga, _self_]`): its own folder first, then the
        # config search path
        local = path.parent / f"{parent}.yaml"
        found = local if local.is_file() else find_config(path.parent.name, parent)
        if found is not None:
            merged = _deep_merge(merged, load_data_yaml(found, depth + 1))
    return _deep_merge(merged, cfg)


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def cohorts_providing(modality: str, conf_dirs: Sequence[Path] | None = None) -> list[str] | None:
    """Names of conf/data/*.yaml whose config provides `modality` (None when no conf dir is found)."""
    import yaml

    from survlab.config.search_path import group_dirs

    dirs = list(conf_dirs) if conf_dirs else group_dirs("data")
    found = [d for d in dirs if d.is_dir()]
    if not found:
        return None
    names = []
    files: dict[str, Path] = {}
    for d in found:  # search order: the first folder holding a name wins
        for f in d.glob("*.yaml"):
            files.setdefault(f.stem, f)
    for f in [files[k] for k in sorted(files)]:
        if f.name.startswith("_"):
            continue
        try:
            cfg = load_data_yaml(f)
        except yaml.YAMLError:
            continue
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
        if provides.get(modality):
            names.append(f.stem)
    return names
