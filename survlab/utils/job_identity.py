"""Job identity: the whole composed configuration (unresolved, so data paths do not count) minus the keys that
cannot change its results (`NON_IDENTITY`), and its record `job.json` in the job dir.

`job.json` records the identity when the job starts; a re-run skips or resumes a job only when the recorded identity
is the same, and refuses the dir otherwise (`check_identity` raises JobError; never reuses it silently). Keys added
after jobs were recorded are left out at their neutral value, and `_target_`s of moved modules are spelled with their
old path, so recorded jobs keep their identity.

    >>> identity_of({"model": {"net": {"_target_": "x.Net"}}, "paths": {"root_dir": "/tmp"}})
    {'model': {'net': {'_target_': 'x.Net'}}}
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from survlab.utils.files import atomic_write
from survlab.utils.jobs import DONE, METRICS, NON_IDENTITY, RECORD, JobError

#: modules moved when the folders became the layers, new -> old dotted path. A `_target_` in a moved module is
#: identified by its old spelling, so jobs recorded before the move keep their identity (finished sweeps do not
#: re-run); survlab.config.check also accepts the old spelling in a user's config, with a warning.
MOVED_MODULES = {
    "survlab.runner.estimators.coxnet": "survlab.runner.coxnet",
    "survlab.runner.build": "survlab.runner.setup",
    "survlab.data.sources.synthetic": "survlab.data.synthetic",
    "survlab.data.sources.synthetic_pathgen": "survlab.data.synthetic_pathgen",
    "survlab.data.sources.synthetic_petct": "survlab.data.synthetic_petct",
}

__all__ = [
    "MOVED_MODULES",
    "DEFAULT_TASK_TARGET",
    "NEUTRAL_TARGET_KEYS",
    "identity_of",
    "identity_diff",
    "check_identity",
    "write_record",
]


def _drop(tree: dict[str, Any], dotted: str) -> None:
    head, _, rest = dotted.partition(".")
    if head in tree:
        if not rest:
            del tree[head]
        elif isinstance(tree[head], dict):
            _drop(tree[head], rest)


def identity_of(cfg: Any) -> dict[str, Any]:
    """The job's identity: its composed config as plain containers, interpolations NOT resolved (so `data.root:
    ${paths.data_dir}/...` is the same on every machine), without `NON_IDENTITY` keys."""
    from omegaconf import OmegaConf

    tree: Any = (
        OmegaConf.to_container(cfg, resolve=False)
        if not isinstance(cfg, dict)
        else json.loads(json.dumps(cfg))
    )
    for key in NON_IDENTITY:
        _drop(tree, key)
    tree = _old_targets(_without_default_task_target(tree))
    splits = (tree.get("data") or {}).get("splits") if isinstance(tree.get("data"), dict) else None
    if isinstance(splits, dict) and splits.get("repeat", None) in (0, "0"):
        # repeat 0 is the original assignment: jobs from before splits.repeat keep their identity
        del splits["repeat"]
    if isinstance(splits, dict) and "group" in splits and splits["group"] in (None, "null", "None"):
        # no group = the random folds survlab always drew: jobs from before splits.group keep their identity
        del splits["group"]
    _without_default_missing(tree)
    if "external_data_overrides" in tree and not tree["external_data_overrides"]:
        # none (null, the default, or {}): jobs from before the key keep their identity
        del tree["external_data_overrides"]
    conformal = tree.get("conformal")
    if isinstance(conformal, dict) and not conformal.get("alphas"):
        # conformal sets off (the default): jobs from before the `conformal` key keep their identity
        del tree["conformal"]
    slide_labels = tree["data"].get("slide_labels") if isinstance(tree.get("data"), dict) else None
    for spec in slide_labels.values() if isinstance(slide_labels, dict) else ():
        if isinstance(
            spec, dict
        ):  # a slide / patient label rule only refuses contradicting input, never moves a result
            spec.pop("patient", None)
    return tree


#: `model.task._target_` of the survival model configs: the task their flat keys always built, so it is left out of
#: the identity (jobs from before the task configs had a `_target_` keep theirs)
DEFAULT_TASK_TARGET = "survlab.tasks.survival.SurvivalTask"


#: keys of a `_target_` node (a network / task config) added after jobs were recorded, with the value that does what
#: every job did before the key existed: at that value the key is left out of the identity, so those jobs keep theirs
NEUTRAL_TARGET_KEYS: dict[str, float] = {
    "modality_dropout": 0.0,  # a network's modality dropout off (#23)
    "ce_weight": 0.0,  # the segmentor's soft Dice loss without a cross-entropy term (#21)
}


def _without_default_missing(tree: Any) -> None:
    """Drop `missing: error` from every data config in `tree` (in place): a node with `allow_missing` beside it, the
    job's `data` as well as one nested in it (e.g. a segmentation cohort's `outcome_splits`). missing=error is what
    every job did before data.missing existed, so those jobs keep their identity. Likewise every NEUTRAL_TARGET_KEYS
    key at its neutral value in a `_target_` node."""
    if isinstance(tree, list):
        for v in tree:
            _without_default_missing(v)
    elif isinstance(tree, dict):
        if "allow_missing" in tree and tree.get("missing", None) == "error":
            del tree["missing"]
        if "_target_" in tree:
            for key, neutral in NEUTRAL_TARGET_KEYS.items():
                value = tree.get(key, None)
                if (
                    isinstance(value, (int, float, str))
                    and not isinstance(value, bool)
                    and _is_number(value, neutral)
                ):
                    del tree[key]
        for v in tree.values():
            _without_default_missing(v)


def _is_number(value: float | str, neutral: float) -> bool:
    """Whether `value` (a YAML number or its string) equals `neutral`."""
    try:
        return float(value) == neutral
    except ValueError:
        return False


def _without_default_task_target(tree: Any) -> Any:
    """`tree` without `task._target_` of every model config (a node with `net` and `task`) whose task target is
    `DEFAULT_TASK_TARGET`, wherever it sits (`model`, `pipeline.<stage>.model`)."""
    if isinstance(tree, list):
        return [_without_default_task_target(v) for v in tree]
    if not isinstance(tree, dict):
        return tree
    out = {k: _without_default_task_target(v) for k, v in tree.items()}
    task = out.get("task")
    if "net" in out and isinstance(task, dict) and task.get("_target_") == DEFAULT_TASK_TARGET:
        out["task"] = {k: v for k, v in task.items() if k != "_target_"}
    return out


def _old_targets(tree: Any) -> Any:
    """`tree` with every `_target_` in a moved module spelled with its old module path (MOVED_MODULES)."""
    if isinstance(tree, dict):
        return {k: _old_spelling(v) if k == "_target_" else _old_targets(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_old_targets(v) for v in tree]
    return tree


def _old_spelling(target: Any) -> Any:
    module, _, name = str(target).rpartition(".")
    return f"{MOVED_MODULES[module]}.{name}" if module in MOVED_MODULES else target


def _digest(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def identity_diff(old: dict[str, Any], new: dict[str, Any], k: int = 3) -> str:
    """'key: old -> new; ...' for up to k differing keys (dotted)."""
    a, b = _flat(old), _flat(new)
    keys = sorted(key for key in a.keys() | b.keys() if a.get(key, "<unset>") != b.get(key, "<unset>"))
    shown = "; ".join(f"{key}: {a.get(key, '<unset>')} -> {b.get(key, '<unset>')}" for key in keys[:k])
    return shown + (f" (+{len(keys) - k} more)" if len(keys) > k else "")


def check_identity(out_dir: str | os.PathLike, identity: dict[str, Any]) -> bool:
    """True when `out_dir/job.json` records this identity, False when the dir holds no job yet.

    Raises JobError when the dir holds another configuration's job, or results without a record (older survlab)."""
    out = Path(out_dir)
    try:
        record = json.loads((out / RECORD).read_text())
    except FileNotFoundError:
        leftovers = [n for n in (DONE, METRICS, "checkpoints") if (out / n).exists()]
        if leftovers:
            raise JobError(
                f"{out} holds results ({', '.join(leftovers)}) without a survlab job record ({RECORD}), so they "
                f"cannot be matched to this configuration; use a new hydra.sweep.dir / hydra.run.dir"
            ) from None
        return False
    except ValueError as err:
        raise JobError(
            f"{out / RECORD} is unreadable ({err}); use a new hydra.sweep.dir / hydra.run.dir"
        ) from None
    if record.get("identity_sha256") == _digest(identity):
        return True
    recorded = record.get("identity")
    if isinstance(
        recorded, dict
    ):  # a record written before a key joined NON_IDENTITY (e.g. data.num_workers)
        for key in NON_IDENTITY:
            _drop(recorded, key)
        if _digest(recorded) == _digest(identity):
            return True
    raise JobError(
        f"{out} holds a job with another configuration ({identity_diff(record.get('identity', {}), identity)}); "
        f"re-run with the same configuration to resume it, or use a new hydra.sweep.dir / hydra.run.dir"
    )


def write_record(out_dir: str | os.PathLike, identity: dict[str, Any], overrides: Sequence[str]) -> None:
    """Record the job's identity and command-line overrides in `out_dir/job.json`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = {"identity_sha256": _digest(identity), "overrides": list(overrides), "identity": identity}
    atomic_write(out / RECORD, json.dumps(record, indent=1, sort_keys=True, default=str))
