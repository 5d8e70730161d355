"""Job discovery of a sweep summary: every job dir under a Hydra multirun dir (`collect_jobs`), one row each with
its identity (model / cohort / fold / seed from metrics.json, .hydra/config.yaml or the dir names), status (done |
failed | refused | incomplete), the swept overrides that vary between jobs (from job.json), its repeat of repeated
k-fold and the numeric values of its metrics.json.

    jobs = collect_jobs("logs/multiruns/2026-01-01_12-00-00")   # DataFrame: model, cohort, fold, seed, status, ...
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from survlab.utils.jobs import (
    DONE,
    FAILED,
    LOCATION_KEYS,
    METRICS,
    first_error_line,
    is_non_identity,
    job_status,
    override_key,
    read_outcomes,
    read_record,
)

log = logging.getLogger(__name__)

#: keys of metrics.json that identify a job rather than measure it
ID_KEYS = {"model", "cohort", "fold", "seed", "status"}
#: the override that selects the repeat of repeated k-fold; its values are pooled within a row, never split rows
REPEAT_KEYS = ("data.splits.repeat", "splits.repeat")
_FOLD_RE = re.compile(r"^fold[_-]?(\d+)")


def _is_job_dir(d: Path) -> bool:
    # a fold ensemble's outputs (survlab eval run=<sweep> data=<cohort>: <sweep>/external/<cohort>/ensemble/)
    if d.name == "ensemble" and d.parent.parent.name == "external":
        return False
    return (
        (d / METRICS).is_file()
        or (d / DONE).is_file()
        or (d / FAILED).is_file()
        or (d / ".hydra" / "config.yaml").is_file()
    )


def _job_dirs(sweep_dir: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, _files in os.walk(sweep_dir):
        d = Path(root)
        if d != sweep_dir and _is_job_dir(d):
            found.append(d)
            dirs[:] = []  # a job dir holds no other jobs (checkpoints/, wandb/, .hydra/ ...)
            continue
        dirs[:] = sorted(x for x in dirs if x not in {".hydra", "wandb", "checkpoints", ".submitit"})
    return sorted(found)


def _identity(d: Path, sweep_dir: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """model / cohort / fold / seed of a job: metrics.json, else .hydra/config.yaml, else the dir names."""
    ident: dict[str, Any] = {k: metrics.get(k) for k in ("model", "cohort", "fold", "seed")}
    if any(v is None for v in ident.values()) and (d / ".hydra" / "config.yaml").is_file():
        try:
            from omegaconf import OmegaConf

            cfg = OmegaConf.load(d / ".hydra" / "config.yaml")
            sel = OmegaConf.select
            fallbacks = {
                "model": sel(cfg, "model.name", default=None),
                "cohort": sel(cfg, "data.name", default=None),
                "fold": sel(cfg, "fold", default=None),
                "seed": sel(cfg, "seed", default=None),
            }
            for k, v in fallbacks.items():
                if ident[k] is None and v is not None and not isinstance(v, dict):
                    ident[k] = v
        except Exception as e:  # noqa: BLE001 - an unreadable config must not hide the job
            log.debug("cannot read %s/.hydra/config.yaml: %s", d, e)
    parts = d.relative_to(sweep_dir).parts
    if ident["fold"] is None and parts:
        m = _FOLD_RE.match(parts[-1])
        if m:
            ident["fold"] = int(m.group(1))
    if ident["model"] is None and len(parts) >= 3:
        ident["model"] = parts[-3]
    if ident["cohort"] is None and len(parts) >= 2:
        ident["cohort"] = parts[-2]
    ident["model"] = str(ident["model"]) if ident["model"] is not None else "?"
    ident["cohort"] = str(ident["cohort"]) if ident["cohort"] is not None else "?"
    try:
        ident["fold"] = int(ident["fold"]) if ident["fold"] is not None else -1
    except (TypeError, ValueError):
        ident["fold"] = -1
    try:
        ident["seed"] = int(ident["seed"]) if ident["seed"] is not None else -1
    except (TypeError, ValueError):
        ident["seed"] = -1
    return ident


def _read_metrics(d: Path) -> dict[str, Any]:
    try:
        out = json.loads((d / METRICS).read_text())
        return out if isinstance(out, dict) else {}
    except (OSError, ValueError):
        return {}


def collect_jobs(sweep_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per job dir under ``sweep_dir``: identity, ``status`` (done | failed | refused | incomplete),
    ``error`` (first line of FAILED, or why the latest multirun refused the job), ``dir`` and every numeric value
    of metrics.json (completed jobs only)."""
    sweep = Path(sweep_dir)
    refused = {d: o["error"] for d, o in read_outcomes(sweep).items() if o["outcome"] == "refused"}
    rows = []
    for d in _job_dirs(sweep):
        status = job_status(d)
        error = first_error_line(d) if status == "failed" else ""
        if str(d.resolve()) in refused:  # its markers are an earlier job's: this multirun did not run it
            status, error = "refused", refused[str(d.resolve())]
        metrics = _read_metrics(d)
        row: dict[str, Any] = _identity(d, sweep, metrics)
        row.update(status=status, error=error, dir=str(d))
        row["_overrides"] = _override_values(d)
        row["repeat"] = _repeat_of(row["_overrides"], d)
        if status == "done":
            for k, v in metrics.items():
                if k in ID_KEYS or isinstance(v, bool):
                    continue
                if v is None:
                    row[k] = math.nan
                elif isinstance(v, (int, float)):
                    row[k] = float(v)
        rows.append(row)
    swept = _varying_keys([r.pop("_overrides") for r in rows], rows)
    cols = ["model", "cohort", "fold", "seed", "repeat", "status", "error", "dir"]
    jobs = pd.DataFrame(rows, columns=None if rows else cols)
    for key, values in swept.items():
        jobs.insert(4, key, values)
    jobs.attrs["swept"] = list(swept)
    if rows:
        jobs = jobs.sort_values(
            ["cohort", "model", *swept, "repeat", "fold", "seed"], kind="stable"
        ).reset_index(drop=True)
    return jobs


def _repeat_of(overrides: dict[str, str], d: Path) -> int:
    """The job's repeat of repeated k-fold: `data.splits.repeat` of its composed config (.hydra/config.yaml, so a
    recipe's setting counts as a command-line one), else of its command-line overrides; 0 when not set."""
    found = [(f"{d}/.hydra/config.yaml: data.splits.repeat", _configured_repeat(d))]
    found += [(f"{d}: {key}", overrides.get(key)) for key in REPEAT_KEYS]
    for where, value in found:
        if value is None:
            continue
        try:
            return int(value)
        except (TypeError, ValueError):
            log.warning("%s=%r is not an integer; taken as repeat 0", where, value)
            return 0
    return 0


def _configured_repeat(d: Path) -> Any:
    """data.splits.repeat of the job's .hydra/config.yaml; None without that file or key."""
    path = d / ".hydra" / "config.yaml"
    if not path.is_file():
        return None
    try:
        from omegaconf import OmegaConf

        return OmegaConf.select(OmegaConf.load(path), "data.splits.repeat", default=None)
    except Exception as e:  # noqa: BLE001 - an unreadable config must not hide the job
        log.debug("cannot read %s: %s", path, e)
        return None


def _override_values(d: Path) -> dict[str, str]:
    """key -> value of the job's result-changing command-line overrides (from job.json)."""
    out = {}
    for o in read_record(d).get("overrides", []):
        key = override_key(str(o))
        if key not in LOCATION_KEYS and key != "seed" and not is_non_identity(key) and "=" in str(o):
            out[key] = str(o).split("=", 1)[1]
    return out


def _varying_keys(overrides: list[dict[str, str]], rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Override keys whose value differs between jobs (absent = ''), with each job's value."""
    keys = sorted(
        {k for o in overrides for k in o} - set(REPEAT_KEYS)
    )  # repeats are pooled (column `repeat`)
    out = {}
    for key in keys:
        values = [o.get(key, "") for o in overrides]
        if len(set(values)) > 1:
            out[key] = values
    return out
