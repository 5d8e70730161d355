"""The table of a sweep summary: one row per model × cohort (× swept values) with the fold mean / sd of every
metric, the pooled out-of-fold C-index (one pool per seed × repeat, averaged; `pooled_cindex`) and its bootstrap CI;
the `SweepSummary` record that holds it with the jobs and the paired comparison.

    pooled_cindex(["<sweep>/abmil/tcga/fold0", "<sweep>/abmil/tcga/fold1"])   # -> (C-index, patients pooled)
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survlab.metrics.stats import N_BOOT, bootstrap_pooled, pooled_statistic
from survlab.report.sweep_stats import _pooled_kind, _pools

log = logging.getLogger(__name__)

#: metrics shown first (in this order) when present; any other numeric key of metrics.json follows
PREFERRED_METRICS = (
    "test/cindex",
    "test/cindex_uno",
    "test/auc_td",
    "test/ibs",
    "test/balanced_accuracy",
    "test/auroc",
    "test/f1",
    "test/kappa",
    "val/best",
    "oracle_cindex",
    "bayes_accuracy",
    "n_test",
    "wall_s",
)


@dataclass
class SweepSummary:
    """What :func:`summarize_sweep` built (DataFrames) and where it wrote it."""

    sweep_dir: Path
    jobs: pd.DataFrame  # one row per job dir: model, cohort, fold, seed, status, error, dir, metrics...
    table: pd.DataFrame  # one row per model × cohort
    paired: pd.DataFrame  # per-fold differences vs the reference
    reference: str | None
    metric: str
    metrics: list[str] = field(default_factory=list)
    group_keys: list[str] = field(
        default_factory=list
    )  # swept keys besides model/cohort/fold that split rows
    files: dict[str, Path] = field(default_factory=dict)
    n_boot: int = N_BOOT  # bootstrap resamples behind the CIs (0: none)
    boot_seed: int = 0
    sites: pd.DataFrame = field(default_factory=pd.DataFrame)  # per-site test metrics (site-preserved folds)
    site_gap: pd.DataFrame = field(
        default_factory=pd.DataFrame
    )  # random vs site-preserved rows and their gap
    availability: pd.DataFrame = field(
        default_factory=pd.DataFrame
    )  # per job x availability pattern test metrics (patients missing a modality)
    availability_summary: pd.DataFrame = field(
        default_factory=pd.DataFrame
    )  # per model x cohort x pattern: fold mean / sd of those metrics

    @property
    def failed(self) -> pd.DataFrame:
        return self.jobs[self.jobs["status"] == "failed"]

    @property
    def incomplete(self) -> pd.DataFrame:
        return self.jobs[self.jobs["status"] == "incomplete"]


def _metric_columns(jobs: pd.DataFrame) -> list[str]:
    fixed = {
        "model",
        "variant",
        "cohort",
        "fold",
        "seed",
        "repeat",
        "status",
        "error",
        "dir",
        *jobs.attrs.get("swept", []),
    }
    others = [c for c in jobs.columns if c not in fixed]
    first = [m for m in PREFERRED_METRICS if m in others]
    return first + sorted(c for c in others if c not in first)


def pooled_cindex(job_dirs: list[str | os.PathLike]) -> tuple[float, int]:
    """Pooled Harrell C-index of the ``predictions.csv`` of ``job_dirs`` (their test folds; pairs within a fold,
    `survlab.metrics.stats.pooled_statistic`) and the number of patients pooled. A patient appearing in several folds' predictions is an error in the split
    protocol; it is logged and every row is kept."""
    frames = []
    for d in job_dirs:
        p = Path(d) / "predictions.csv"
        if p.is_file():
            try:
                frames.append(
                    pd.read_csv(p, usecols=lambda c: c in {"case_id", "fold", "risk", "time", "event"})
                )
            except (OSError, ValueError) as e:
                log.warning("cannot read %s: %s", p, e)
    if not frames:
        return math.nan, 0
    df = pd.concat(frames, ignore_index=True)
    if not {"risk", "time", "event"} <= set(df.columns):
        return math.nan, 0
    if "case_id" in df.columns and df["case_id"].duplicated().any():
        dup = df.loc[df["case_id"].duplicated(), "case_id"].astype(str).unique()[:5]
        log.warning("pooled C-index: %d patients in several test folds (e.g. %s)", len(dup), list(dup))
    df = df.dropna(subset=["risk", "time", "event"])
    if df.empty:
        return math.nan, 0
    return pooled_statistic(df), len(df)


def _variant(row: dict[str, Any], group_keys: list[str]) -> str:
    """'model' or 'model key=value,...': the label of a summary row."""
    tags = ",".join(f"{k}={row[k] if row[k] != '' else 'default'}" for k in group_keys)
    return f"{row['model']} {tags}" if tags else str(row["model"])


def _group_keys(jobs: pd.DataFrame, over: Sequence[str]) -> list[str]:
    """Swept keys that split the summary rows: every varied override, and seed when several were run and the
    user did not ask to pool over seeds."""
    if jobs.empty:
        return []
    groups = jobs.groupby(["cohort", "model"])
    # a key splits rows only where it varies within one model x cohort (e.g. not `selection` set per cohort)
    keys = [k for k in jobs.attrs.get("swept", []) if k not in over and (groups[k].nunique() > 1).any()]
    if "seed" not in over and (groups["seed"].nunique() > 1).any():
        keys.append("seed")
    return keys


def _group_table(
    jobs: pd.DataFrame, metrics: list[str], group_keys: list[str], n_boot: int = N_BOOT, boot_seed: int = 0
) -> pd.DataFrame:
    rows = []
    if jobs.empty:
        return pd.DataFrame(columns=["model", "cohort", "n_folds", "n_failed", "n_refused", "n_incomplete"])
    for key, g in jobs.groupby(["cohort", "model", *group_keys], sort=True):
        cohort, model, *values = key
        done = g[g["status"] == "done"]
        row: dict[str, Any] = {
            "model": model,
            "cohort": cohort,
            **dict(zip(group_keys, values, strict=True)),
            "n_folds": int(len(done)),
            "n_repeats": int(done["repeat"].nunique()) if "repeat" in done else 0,
            "n_failed": int((g["status"] == "failed").sum()),
            "n_refused": int((g["status"] == "refused").sum()),
            "n_incomplete": int((g["status"] == "incomplete").sum()),
            "folds": ",".join(str(f) for f in sorted(done["fold"].unique())),
        }
        for m in metrics:
            vals = done[m].to_numpy(float) if m in done else np.array([])
            vals = vals[np.isfinite(vals)]
            row[f"{m}_mean"] = float(vals.mean()) if len(vals) else math.nan
            row[f"{m}_std"] = float(vals.std(ddof=1)) if len(vals) >= 2 else math.nan
            row[f"{m}_n"] = int(len(vals))
        # pooled out-of-fold C-index: one pool per seed × repeat (a patient appears once per pool), averaged
        pooled, n_pooled = [], 0
        by_repeat: dict[int, list[float]] = {}
        for (_seed, repeat), gs in done.groupby(["seed", "repeat"]):
            c, n = pooled_cindex(list(gs["dir"]))
            if np.isfinite(c):
                pooled.append(c)
                by_repeat.setdefault(int(repeat), []).append(c)
                n_pooled += n
        row["pooled_cindex"] = float(np.mean(pooled)) if pooled else math.nan
        row["pooled_n"] = n_pooled
        row["pooled_cindex_by_repeat"] = ";".join(f"{np.mean(v):.4f}" for _, v in sorted(by_repeat.items()))
        row.update(_pooled_ci(done, n_boot, boot_seed))
        rows.append(row)
    return pd.DataFrame(rows)


def _pooled_ci(done: pd.DataFrame, n_boot: int, seed: int) -> dict[str, Any]:
    """Bootstrap CI of the pooled out-of-fold C-index (survival) or AUC (classification) of one row's jobs:
    pooled_<kind>_boot (on the patients of every pool), pooled_<kind>_ci_low / _ci_high, pooled_boot_n."""
    pools = _pools(done)
    if not pools or n_boot <= 0:
        return {}
    kind = _pooled_kind(pools)
    try:
        b = bootstrap_pooled(list(pools.values()), n_boot=n_boot, seed=seed)
    except ValueError as e:  # e.g. a patient twice in one pool, or predictions without scores
        log.warning("bootstrap of the pooled %s skipped: %s", kind, e)
        return {}
    out = {
        f"pooled_{kind}_ci_low": b["ci_low"],
        f"pooled_{kind}_ci_high": b["ci_high"],
        "pooled_boot_n": b["n_patients"],
    }
    if kind == "auc":
        out["pooled_auc"] = b["estimate"]
    return out
