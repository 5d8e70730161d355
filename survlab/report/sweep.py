"""Sweep summary: one table (model × cohort × metric) from the job dirs of a Hydra multirun.

A sweep dir holds one output dir per job (``<model>/<cohort>/fold<k>`` by default). Each job dir has, when it
finished, ``metrics.json`` + ``predictions.csv`` + a ``DONE`` marker; when it raised, a ``FAILED`` marker; and when
it was started but neither (killed, still running) it is *incomplete*. A job the latest multirun *refused* (its dir
holds another configuration's job, left untouched; listed in ``outcomes.jsonl``) is counted as refused, not as
completed, whatever its dir holds. :func:`summarize_sweep` scans all of them and builds:

Rows are grouped by model × cohort × every other key the sweep varied (read from each job's ``job.json``: e.g.
``seed`` or ``model.task.lr``), so ``-m seed=0,1`` gives one row per seed; ``over=["seed"]`` (``--over seed``)
pools the seeds of a row instead (mean ± std over folds × seeds, pooled C-index per seed, averaged). The repeats of
repeated k-fold (``-m ... data.splits.repeat=0,1,2``: column ``repeat``) are always pooled: mean ± std over folds ×
repeats, one pooled C-index per repeat (``pooled_cindex_by_repeat``), averaged in ``pooled_cindex``.

- ``summary.csv`` — one row per model × cohort (× swept values): ``n_folds`` (completed jobs), ``n_failed``, ``n_refused``, ``n_incomplete``, for
  every numeric metric ``<metric>_mean`` / ``<metric>_std`` (sample std, ddof=1, over completed folds; NaN values,
  e.g. an undefined IBS, are left out and counted in ``<metric>_n``), ``pooled_cindex`` (Harrell C of the
  concatenated out-of-fold predictions) with its patient-bootstrap 95% CI (``pooled_cindex_ci_low/_high``; for
  classification ``pooled_auc`` and its CI) and the paired comparison against the reference model (``vs_ref_*``).
- ``paired.csv`` — the per-fold differences behind the comparison (model − reference, paired by fold, seed and
  repeat).
- ``summary.md`` — the same as Markdown, plus the failed and incomplete jobs (model, cohort, fold, first error line).
- ``comparison.png`` — the chosen metric by model, grouped by cohort: mean ± std bars with per-fold points.
- ``sites.csv`` — site-preserved folds (``data.splits.group``): every site's test metrics from its job's
  metrics.json ``sites`` (C-index / AUROC, or None with the reason, e.g. too few events), one row per job × site.
- ``availability.csv`` — cohorts with patients missing a modality: every availability pattern's test metrics
  (metrics.json ``availability``: ``wsi+genomics`` / ``wsi`` / ...), one row per job × pattern; summary.md's
  "Metrics per availability pattern" gives per model × cohort × pattern the fold mean ± sd and n.
- ``site_gap.csv`` — a sweep over ``+data.splits.group=null,site``: per model × cohort the random-fold and the
  site-preserved rows side by side and the site-leak gap (random − site-preserved) of the fold mean and of the
  pooled C-index / AUC, with a paired patient-bootstrap CI (same patients, same resamples).

Paired comparison (per cohort, each model vs the reference, on ``metric``, default ``test/cindex``): per-fold
differences d_j = model_j − reference_j over the folds (× repeats) both completed; mean difference;
``p_corrected``: the two-sided Nadeau–Bengio corrected resampled t-test (survlab.metrics.stats; folds' training
sets overlap, so the plain t-test is anti-conservative), n_test/n_train = 1/(k − 1) with k from the jobs'
protocol.json; ``p_holm``: ``p_corrected`` Holm-adjusted over the models compared with the reference on the cohort;
``pooled_diff``: the difference of pooled C-index / AUC on the patients both models predicted, with a percentile
bootstrap CI on the same patient resamples. Kept for reference and labelled as such: ``p_ttest_uncorrected``
(``scipy.stats.ttest_rel``) and, only when n ≥ 5, the Wilcoxon signed-rank p (``p_wilcoxon``), both treating folds
as independent.

Example:
    >>> from survlab.report.sweep import summarize_sweep          # doctest: +SKIP
    >>> s = summarize_sweep("logs/multiruns/2026-01-01_12-00-00", reference="abmil")  # doctest: +SKIP
    >>> s.table[["model", "cohort", "n_folds", "test/cindex_mean", "pooled_cindex"]]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survlab.metrics.stats import N_BOOT, bootstrap_paired, bootstrap_pooled, corrected_resampled_ttest, holm
from survlab.metrics.survival import harrell_cindex
from survlab.report.groups import availability_markdown, availability_summary, job_group_table
from survlab.utils.files import atomic_path, atomic_write
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

__all__ = [
    "SweepSummary",
    "collect_jobs",
    "summarize_sweep",
    "pooled_cindex",
    "paired_comparison",
    "site_leak_gap",
    "site_table",
]

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
#: keys of metrics.json that identify a job rather than measure it
ID_KEYS = {"model", "cohort", "fold", "seed", "status"}
#: the override that selects the repeat of repeated k-fold; its values are pooled within a row, never split rows
REPEAT_KEYS = ("data.splits.repeat", "splits.repeat")
SUMMARY_FILES = (
    "summary.csv",
    "summary.md",
    "paired.csv",
    "comparison.png",
    "sites.csv",
    "site_gap.csv",
    "availability.csv",
)
#: the override of site-preserved folds; a sweep over it (`+data.splits.group=null,site`) gives the site-leak gap
GROUP_KEYS = ("data.splits.group", "splits.group")
_NO_GROUP = {"", "null", "None", "none", "~"}
#: vs_ref_<column> of summary.csv (see paired_comparison, _paired_ci); vs_ref_p_holm follows vs_ref_p_corrected
PAIRED_COLUMNS = (
    "n_paired",
    "diff_mean",
    "diff_std",
    "p_corrected",
    "pooled_diff",
    "pooled_diff_ci_low",
    "pooled_diff_ci_high",
    "pooled_diff_n",
    "p_ttest_uncorrected",
    "p_wilcoxon",
)
_FOLD_RE = re.compile(r"^fold[_-]?(\d+)")


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


# --------------------------------------------------------------------------------------------- scanning
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
    """The job's repeat of repeated k-fold (`data.splits.repeat`; 0 when not set)."""
    for key in REPEAT_KEYS:
        if key in overrides:
            try:
                return int(overrides[key])
            except ValueError:
                log.warning("%s: %s=%r is not an integer; taken as repeat 0", d, key, overrides[key])
    return 0


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


# --------------------------------------------------------------------------------------------- statistics
def pooled_cindex(job_dirs: list[str | os.PathLike]) -> tuple[float, int]:
    """Harrell C-index of the concatenated ``predictions.csv`` of ``job_dirs`` (their test folds) and the
    number of patients pooled. A patient appearing in several folds' predictions is an error in the split
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
    risk, time, event = (df[c].to_numpy(float) for c in ("risk", "time", "event"))
    return harrell_cindex(risk, time, event), len(df)


def paired_comparison(diffs: np.ndarray, test_train_ratio: float = math.nan) -> dict[str, float]:
    """Mean/std of the paired per-fold differences `diffs` [k·r]; the Nadeau–Bengio corrected resampled t-test p
    (`p_corrected`; `test_train_ratio` = n_test/n_train of a fold, 1/(k − 1)); and, labelled as such, the ordinary
    paired t-test p (`p_ttest_uncorrected`, n ≥ 2) and Wilcoxon signed-rank p (n ≥ 5), which treat folds as
    independent samples and are anti-conservative."""
    from scipy import stats

    d = np.asarray(diffs, dtype=float)
    d = d[np.isfinite(d)]
    n = len(d)
    out = {
        "n_paired": n,
        "diff_mean": math.nan,
        "diff_std": math.nan,
        "p_corrected": math.nan,
        "p_ttest_uncorrected": math.nan,
        "p_wilcoxon": math.nan,
    }
    if n == 0:
        return out
    out["diff_mean"] = float(d.mean())
    if n >= 2:
        out["diff_std"] = float(d.std(ddof=1))
        if np.isfinite(test_train_ratio):
            out["p_corrected"] = corrected_resampled_ttest(d, test_train_ratio)["p"]
        if np.allclose(d, d[0]):
            out["p_ttest_uncorrected"] = 1.0 if d[0] == 0 else 0.0  # zero variance: t is 0 or infinite
        else:
            out["p_ttest_uncorrected"] = float(stats.ttest_1samp(d, 0.0).pvalue)  # == ttest_rel
    if n >= 5:
        out["p_wilcoxon"] = 1.0 if np.all(d == 0) else float(stats.wilcoxon(d).pvalue)
    return out


def _read_predictions(d: str | os.PathLike) -> pd.DataFrame | None:
    p = Path(d) / "predictions.csv"
    if not p.is_file():
        return None
    try:
        return pd.read_csv(p, dtype={"case_id": str})
    except (OSError, ValueError) as e:
        log.warning("cannot read %s: %s", p, e)
        return None


def _pools(done: pd.DataFrame) -> dict[tuple[int, int], pd.DataFrame]:
    """(seed, repeat) -> the concatenated out-of-fold predictions of those jobs (one complete pool per repeat of
    the k-fold and training seed), rows without a usable outcome / score left out."""
    out = {}
    for (seed, repeat), g in done.groupby(["seed", "repeat"], sort=True):
        frames = [f for f in map(_read_predictions, g["dir"]) if f is not None and "case_id" in f]
        if not frames:
            continue
        df = pd.concat(frames, ignore_index=True)
        if {"risk", "time", "event"} <= set(df.columns):
            df = df.dropna(subset=["risk", "time", "event"])
        if len(df):
            out[(int(seed), int(repeat))] = df
    return out


def _pooled_kind(pools: dict[tuple[int, int], pd.DataFrame]) -> str:
    """'cindex' for survival predictions, 'auc' for classification ones."""
    first = next(iter(pools.values()))
    return "cindex" if {"risk", "time", "event"} <= set(first.columns) else "auc"


def _test_train_ratio(dirs: Sequence[str], folds_seen: int) -> float:
    """n_test/n_train of one outer fold, 1/(k − 1), k from the jobs' protocol.json (else the folds seen)."""
    ks = set()
    for d in dirs:
        try:
            k = json.loads((Path(d) / "protocol.json").read_text()).get("cohort", {}).get("folds")
            if k:
                ks.add(int(k))
        except (OSError, ValueError, AttributeError, TypeError):
            continue
    if len(ks) > 1:
        log.warning("jobs of one comparison ran with different fold counts %s; corrected t-test skipped", ks)
        return math.nan
    k = ks.pop() if ks else folds_seen
    return 1.0 / (k - 1) if k >= 2 else math.nan


# --------------------------------------------------------------------------------------------- build
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


def _paired(
    jobs: pd.DataFrame,
    reference: str | None,
    metric: str,
    group_keys: list[str],
    n_boot: int = N_BOOT,
    boot_seed: int = 0,
) -> tuple[pd.DataFrame, dict[tuple, dict]]:
    """Per-fold differences of each row's jobs against the reference model's jobs of the same cohort, fold, seed and
    values of the swept keys that are not the model's own (`model.*` keys differ between models by design)."""
    shared = [k for k in group_keys if k != "seed" and not k.startswith("model.")]
    cols = [
        "cohort",
        "model",
        *(k for k in group_keys if k != "seed"),
        "reference",
        "fold",
        "seed",
        "repeat",
        "value",
        "reference_value",
        "diff",
    ]
    if reference is None or jobs.empty or metric not in jobs.columns:
        return pd.DataFrame(columns=cols), {}
    done = jobs[jobs["status"] == "done"]
    rows, stats_by_group = [], {}
    for key, g in done.groupby(["cohort", "model", *group_keys], sort=True):
        cohort, model, *values = key
        if model == reference:
            continue
        ident = dict(zip(group_keys, values, strict=True))
        ref = done[(done["cohort"] == cohort) & (done["model"] == reference)]
        for k in shared:
            ref = ref[ref[k] == ident[k]]
        ref_jobs = ref
        ref = ref.set_index(["fold", "seed", "repeat"])[metric]
        mine = g.set_index(["fold", "seed", "repeat"])[metric]
        mine_dirs = g.set_index(["fold", "seed", "repeat"])["dir"]
        diffs, dirs = [], []
        if not ref.index.has_duplicates and not mine.index.has_duplicates:
            for idx in mine.index.intersection(ref.index).sort_values():
                d = float(mine[idx]) - float(ref[idx])
                diffs.append(d)
                dirs.append(str(mine_dirs[idx]))
                rows.append(
                    {
                        "cohort": cohort,
                        "model": model,
                        **ident,
                        "reference": reference,
                        "fold": idx[0],
                        "seed": idx[1],
                        "repeat": idx[2],
                        "value": float(mine[idx]),
                        "reference_value": float(ref[idx]),
                        "diff": d,
                    }
                )
        else:
            log.warning(
                "paired comparison of %s on %s skipped: several reference jobs per fold", model, cohort
            )
        ratio = _test_train_ratio(dirs, int(g["fold"].nunique()))
        stats_by_group[tuple(key)] = {
            **paired_comparison(np.array(diffs), ratio),
            **_paired_ci(g, ref_jobs, n_boot, boot_seed),
        }
    return pd.DataFrame(rows, columns=cols), stats_by_group


def _paired_ci(mine: pd.DataFrame, ref: pd.DataFrame, n_boot: int, seed: int) -> dict[str, float]:
    """Bootstrap CI of (model − reference) pooled C-index / AUC over the pools (seed × repeat) both have, on the
    patients both predicted, the same resamples for both: pooled_diff, pooled_diff_ci_low / _ci_high, pooled_diff_n."""
    a, b = _pools(mine), _pools(ref)
    keys = sorted(a.keys() & b.keys())
    if not keys or n_boot <= 0:
        return {}
    try:
        out = bootstrap_paired([a[k] for k in keys], [b[k] for k in keys], n_boot=n_boot, seed=seed)
    except ValueError as e:
        log.warning("paired bootstrap skipped: %s", e)
        return {}
    return {
        "pooled_diff": out["estimate"],
        "pooled_diff_ci_low": out["ci_low"],
        "pooled_diff_ci_high": out["ci_high"],
        "pooled_diff_n": out["n_patients"],
    }


def summarize_sweep(
    sweep_dir: str | os.PathLike,
    reference: str | None = None,
    metric: str | None = None,
    out_dir: str | os.PathLike | None = None,
    write: bool = True,
    plot: bool = True,
    over: Sequence[str] = (),
    n_boot: int = N_BOOT,
    boot_seed: int = 0,
) -> SweepSummary:
    """Scan ``sweep_dir`` and build (and by default write into ``out_dir`` = ``sweep_dir``) the summary.

    ``reference``: the model the others are compared with, per cohort, on ``metric``. ``None`` picks the first
    model in alphabetical order (stated in summary.md); a name absent from the sweep raises ``ValueError``.
    ``over``: swept keys to pool within a row instead of splitting rows by (e.g. ``["seed"]``); the repeats of
    repeated k-fold (``data.splits.repeat``) are always pooled. ``n_boot`` patient bootstrap resamples (seed
    ``boot_seed``; 0 skips the bootstrap) give the CIs of the pooled C-index / AUC and of the paired differences.
    """
    sweep = Path(sweep_dir)
    if not sweep.is_dir():
        raise FileNotFoundError(f"sweep dir {sweep} does not exist")
    jobs = collect_jobs(sweep)
    metrics = _metric_columns(jobs) if not jobs.empty else []
    if (
        metric is None
    ):  # the headline metric the jobs report: C-index for survival, balanced accuracy for labels
        metric = next((m for m in PREFERRED_METRICS if m in metrics), "test/cindex")
    models = sorted(jobs["model"].unique()) if not jobs.empty else []
    auto_ref = False
    if reference is None and models:
        reference, auto_ref = models[0], True
    elif reference is not None and reference not in models:
        raise ValueError(f"reference model {reference!r} is not in the sweep (models: {models})")
    group_keys = _group_keys(jobs, over)
    if not jobs.empty:
        jobs["variant"] = [_variant(r, group_keys) for r in jobs.to_dict("records")]
    table = _group_table(jobs, metrics, group_keys, n_boot, boot_seed)
    if not table.empty:
        table.insert(0, "variant", [_variant(r, group_keys) for r in table.to_dict("records")])
    paired, stats_by_group = _paired(jobs, reference, metric, group_keys, n_boot, boot_seed)
    keys = [tuple([r["cohort"], r["model"], *(r[k] for k in group_keys)]) for r in table.to_dict("records")]
    for k in PAIRED_COLUMNS:
        table[f"vs_ref_{k}"] = [stats_by_group.get(key, {}).get(k, math.nan) for key in keys]
    if not table.empty:  # Holm over the models compared with the reference, per cohort
        adjusted = table.groupby("cohort")["vs_ref_p_corrected"].transform(lambda p: holm(p.to_numpy()))
        table.insert(table.columns.get_loc("vs_ref_p_corrected") + 1, "vs_ref_p_holm", adjusted)
    table.insert(2 + len(group_keys), "reference", reference if reference is not None else "")
    summary = SweepSummary(
        sweep, jobs, table, paired, reference, metric, metrics, group_keys, n_boot=n_boot, boot_seed=boot_seed
    )
    summary.sites = site_table(jobs)
    summary.site_gap = site_leak_gap(jobs, table, metric, group_keys, n_boot, boot_seed)
    summary.availability = job_group_table(jobs, "availability", "pattern")
    summary.availability_summary = availability_summary(summary.availability)
    if write:
        out = Path(out_dir) if out_dir is not None else sweep
        out.mkdir(parents=True, exist_ok=True)
        for name, frame in (("summary.csv", table), ("paired.csv", paired)):
            with atomic_path(out / name) as tmp:
                frame.to_csv(tmp, index=False)
        atomic_write(out / "summary.md", to_markdown(summary, auto_reference=auto_ref))
        summary.files = {
            "summary.csv": out / "summary.csv",
            "paired.csv": out / "paired.csv",
            "summary.md": out / "summary.md",
        }
        for name, frame in (
            ("sites.csv", summary.sites),
            ("site_gap.csv", summary.site_gap),
            ("availability.csv", summary.availability),
        ):
            if not frame.empty:  # only for sweeps with site-preserved folds / patients missing a modality
                with atomic_path(out / name) as tmp:
                    frame.to_csv(tmp, index=False)
                summary.files[name] = out / name
        if plot and not jobs.empty:
            try:
                summary.files["comparison.png"] = plot_comparison(summary, out / "comparison.png")
            except Exception as e:  # noqa: BLE001 - a plotting problem must not lose the tables
                log.warning("comparison plot failed: %s", e)
    return summary


# --------------------------------------------------------------------------------------------- sites
def site_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """One row per completed job x site of its metrics.json ``sites`` (site-preserved folds): cohort, model,
    variant, repeat, fold, site, n, n_events, status and the site's metrics (None = not measurable, see status)."""
    return job_group_table(jobs, "sites", "site")


def _group_key(group_keys: list[str]) -> str | None:
    return next((k for k in group_keys if k in GROUP_KEYS), None)


def site_leak_gap(
    jobs: pd.DataFrame,
    table: pd.DataFrame,
    metric: str,
    group_keys: list[str],
    n_boot: int = N_BOOT,
    boot_seed: int = 0,
) -> pd.DataFrame:
    """Per cohort x model (x other swept keys) x group column: the random-fold row (``data.splits.group`` unset /
    null) and the site-preserved one side by side, and the site-leak gap = random − site-preserved of the fold mean
    of `metric` and of the pooled C-index / AUC (with a paired bootstrap CI over the patients both pooled). Empty
    unless the sweep varied ``data.splits.group`` with a random-fold value."""
    key = _group_key(group_keys)
    if key is None or jobs.empty:
        return pd.DataFrame()
    others = [k for k in group_keys if k != key]
    done = jobs[jobs["status"] == "done"]
    is_random = done[key].astype(str).isin(_NO_GROUP)
    rows = []
    for ident, g in done.groupby(["cohort", "model", *others], sort=True):
        rnd = g[is_random[g.index]]
        if rnd.empty:
            continue
        for value, grp in g[~is_random[g.index]].groupby(key, sort=True):
            ids = dict(zip(["cohort", "model", *others], ident, strict=True))
            row: dict[str, Any] = {**ids, "group": value}
            pooled_col = (
                "pooled_cindex"
                if "pooled_cindex" in table and table["pooled_cindex"].notna().any()
                else "pooled_auc"
            )
            for name, part, val in (("random", rnd, rnd[key].iloc[0]), ("grouped", grp, value)):
                sel = table
                for k, v in {**ids, key: val}.items():
                    sel = sel[sel[k] == v]
                row[f"n_folds_{name}"] = int(len(part))
                row[f"{metric}_{name}"] = float(part[metric].mean()) if metric in part else math.nan
                row[f"{pooled_col}_{name}"] = (
                    float(sel[pooled_col].iloc[0]) if len(sel) and pooled_col in sel else math.nan
                )
            row[f"gap_{metric}"] = row[f"{metric}_random"] - row[f"{metric}_grouped"]
            row[f"gap_{pooled_col}"] = row[f"{pooled_col}_random"] - row[f"{pooled_col}_grouped"]
            ci = _paired_ci(rnd, grp, n_boot, boot_seed)  # random − grouped on the same patients
            row["gap_pooled_ci_low"] = ci.get("pooled_diff_ci_low", math.nan)
            row["gap_pooled_ci_high"] = ci.get("pooled_diff_ci_high", math.nan)
            row["gap_pooled_n"] = ci.get("pooled_diff_n", math.nan)
            rows.append(row)
    return pd.DataFrame(rows)


def _sites_markdown(s: SweepSummary) -> list[str]:
    """summary.md sections of site-preserved folds: the site-leak gap and the per-site metrics."""
    lines: list[str] = []
    gap = s.site_gap
    if not gap.empty:
        pooled = "pooled_cindex" if "pooled_cindex_random" in gap else "pooled_auc"
        lines += [
            "## Site-leak gap: random vs site-preserved folds",
            "",
            f"The same model under random folds and under folds that keep every site (`data.splits.group`) in one "
            f"fold; gap = random − site-preserved. A positive gap is accuracy that came from seeing a test patient's "
            f"site in training. Pooled gap CI: paired percentile bootstrap over the patients both pooled "
            f"({s.n_boot} resamples).",
            "",
            f"| cohort | model | group | {s.metric} random | {s.metric} site-preserved | gap | {pooled} random "
            f"| {pooled} site-preserved | gap (95% CI) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in gap.to_dict("records"):
            lines.append(
                f"| {r['cohort']} | `{r['model']}` | {r['group']} | {_fmt(r[f'{s.metric}_random'])} "
                f"| {_fmt(r[f'{s.metric}_grouped'])} | {_fmt(r[f'gap_{s.metric}'], 4)} | {_fmt(r[f'{pooled}_random'])} "
                f"| {_fmt(r[f'{pooled}_grouped'])} | {_fmt(r[f'gap_{pooled}'], 4)}"
                f"{_fmt_ci(r['gap_pooled_ci_low'], r['gap_pooled_ci_high'], 4)} |"
            )
        lines.append("")
    if not s.sites.empty:
        value_cols = [c for c in s.sites.columns if c.endswith(("/cindex", "/auroc"))]
        lines += [
            "## Per-site test metrics (site-preserved folds)",
            "",
            "Each site is tested in exactly one fold (per repeat); a site with too few events (or patients per class) "
            "is reported as such, not as a number. All rows: sites.csv.",
            "",
            "| model | cohort | repeat | fold | site | n | events | "
            + " | ".join(value_cols)
            + " | status |",
            "|" + "---|" * (8 + len(value_cols)),
        ]
        for r in s.sites.to_dict("records"):
            vals = [_fmt(r.get(c)) if r.get(c) is not None else "–" for c in value_cols]
            ev = r.get("n_events")
            lines.append(
                f"| `{r['variant']}` | {r['cohort']} | {r['repeat']} | {r['fold']} | {r['site']} | {r.get('n')} "
                f"| {'–' if ev is None or (isinstance(ev, float) and math.isnan(ev)) else int(ev)} | "
                + " | ".join(vals)
                + f" | {r.get('status', '')} |"
            )
        lines.append("")
    return lines


# --------------------------------------------------------------------------------------------- rendering
def _fmt(x: float, digits: int = 3) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _fmt_ci(lo: Any, hi: Any, digits: int = 3) -> str:
    """' [lo, hi]' when both are finite, else ''."""
    ok = lo is not None and hi is not None and np.isfinite(lo) and np.isfinite(hi)
    return f" [{lo:.{digits}f}, {hi:.{digits}f}]" if ok else ""


def _fmt_p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "–"
    return f"{p:.2g}" if p >= 1e-3 else "<0.001"


def to_markdown(s: SweepSummary, auto_reference: bool = False) -> str:
    """summary.md: main table, paired comparison, per-fold differences, failed and incomplete jobs."""
    lines = [f"# Sweep summary: `{s.sweep_dir}`", ""]
    jobs = s.jobs
    n = {
        k: int((jobs["status"] == k).sum()) if not jobs.empty else 0
        for k in ("done", "failed", "refused", "incomplete")
    }
    lines += [
        f"Jobs: {len(jobs)} — {n['done']} completed, {n['failed']} failed, {n['refused']} refused (not run, "
        f"their dirs left as they were), {n['incomplete']} incomplete."
        if n["refused"]
        else f"Jobs: {len(jobs)} — {n['done']} completed, {n['failed']} failed, {n['incomplete']} incomplete.",
        "",
    ]
    if s.table.empty:
        return "\n".join(lines + ["No jobs found.", ""])
    shown = [m for m in PREFERRED_METRICS if m in s.metrics and m not in {"n_test", "wall_s"}]
    auc = "pooled_auc" in s.table and s.table["pooled_auc"].notna().any()
    header = ["model", "cohort", "folds"] + [f"{m} (mean ± std)" for m in shown] + ["pooled C-index (95% CI)"]
    header += ["pooled AUC (95% CI)"] if auc else []
    repeats = "n_repeats" in s.table and (s.table["n_repeats"] > 1).any()
    lines += [
        "## Metrics over folds",
        "",
        "Mean ± sample std (ddof=1) over completed folds"
        + (" × repeats (repeated k-fold, `data.splits.repeat`)" if repeats else "")
        + "; pooled C-index = Harrell C of the concatenated out-of-fold predictions"
        + (
            ", one pool per repeat, averaged (per repeat: summary.csv `pooled_cindex_by_repeat`)"
            if repeats
            else ""
        )
        + f"; 95% CI: percentile bootstrap over patients ({s.n_boot} seeded resamples, seed {s.boot_seed}); "
        "(n=k): the metric was defined in k folds only. All metrics: summary.csv.",
        "",
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in s.table.to_dict("records"):
        cells = [
            f"`{r['variant']}`",
            r["cohort"],
            f"{r['n_folds']}"
            + (f" ({r['n_repeats']} repeats)" if r.get("n_repeats", 0) > 1 else "")
            + (f" (+{r['n_failed']} failed)" if r["n_failed"] else ""),
        ]
        for m in shown:
            mean, std = r.get(f"{m}_mean", math.nan), r.get(f"{m}_std", math.nan)
            n_m = int(r.get(f"{m}_n", 0))
            cells.append(
                _fmt(mean)
                + (f" ± {_fmt(std)}" if np.isfinite(std) else "")
                + (f" (n={n_m})" if 0 < n_m < r["n_folds"] else "")
            )
        cells.append(
            _fmt(r["pooled_cindex"]) + _fmt_ci(r.get("pooled_cindex_ci_low"), r.get("pooled_cindex_ci_high"))
        )
        if auc:
            cells.append(
                _fmt(r.get("pooled_auc", math.nan))
                + _fmt_ci(r.get("pooled_auc_ci_low"), r.get("pooled_auc_ci_high"))
            )
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if s.reference is not None:
        how = (
            " (chosen automatically: first model alphabetically; set it with `--reference`)"
            if auto_reference
            else ""
        )
        lines += [
            f"## Paired comparison vs `{s.reference}` on `{s.metric}`{how}",
            "",
            "Per-fold differences (model − reference) over the folds (× repeats) both completed. **p (corrected)**: "
            "two-sided corrected resampled t-test (Nadeau & Bengio 2003; Bouckaert & Frank 2004): variance "
            "(1/(k·r) + n_test/n_train)·s², n_test/n_train = 1/(k − 1), k·r − 1 df. **p (Holm)**: the corrected p "
            "adjusted over the models compared with the reference on the cohort (Holm 1979). **Δ pooled**: "
            "pooled C-index / AUC of the model minus the reference's, on the patients both predicted, with a "
            "percentile bootstrap 95% CI (the same patient resamples for both). The uncorrected paired t-test and "
            "Wilcoxon (n ≥ 5) p-values treat folds as independent although their training sets overlap: they are "
            "anti-conservative, shown for reference only.",
            "",
            "| cohort | model | n | mean diff | std diff | p (corrected) | p (Holm) | Δ pooled (95% CI) "
            "| p (t-test, uncorrected) | p (Wilcoxon, uncorrected) | per-fold diffs |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in s.table.to_dict("records"):
            if r["model"] == s.reference:
                continue
            ref_done = s.jobs[
                (s.jobs["model"] == s.reference)
                & (s.jobs["cohort"] == r["cohort"])
                & (s.jobs["status"] == "done")
            ]
            if ref_done.empty:
                lines.append(
                    f"| {r['cohort']} | `{r['variant']}` | 0 | – | – | – | – | – | – | – | `{s.reference}` not run on this "
                    "cohort |"
                )
                continue
            per_fold = s.paired[(s.paired["model"] == r["model"]) & (s.paired["cohort"] == r["cohort"])]
            for k in s.group_keys:
                per_fold = per_fold[per_fold[k] == r[k]]
            several = per_fold["repeat"].nunique() > 1 if len(per_fold) else False
            diffs = ", ".join(
                (f"r{int(rp)}" if several else "") + f"f{int(f)}: {d:+.3f}"
                for f, rp, d in zip(per_fold["fold"], per_fold["repeat"], per_fold["diff"], strict=True)
            )
            pooled = _fmt(r.get("vs_ref_pooled_diff", math.nan), 4) + _fmt_ci(
                r.get("vs_ref_pooled_diff_ci_low"), r.get("vs_ref_pooled_diff_ci_high"), 4
            )
            lines.append(
                f"| {r['cohort']} | `{r['variant']}` | {int(r['vs_ref_n_paired']) if np.isfinite(r['vs_ref_n_paired']) else 0} "
                f"| {_fmt(r['vs_ref_diff_mean'], 4)} | {_fmt(r['vs_ref_diff_std'], 4)} | {_fmt_p(r['vs_ref_p_corrected'])} "
                f"| {_fmt_p(r['vs_ref_p_holm'])} | {pooled} | {_fmt_p(r['vs_ref_p_ttest_uncorrected'])} "
                f"| {_fmt_p(r['vs_ref_p_wilcoxon'])} | {diffs or '–'} |"
            )
        lines.append("")
    lines += _sites_markdown(s)
    lines += availability_markdown(s.availability_summary)
    bad = jobs[jobs["status"] != "done"]
    if not bad.empty:
        lines += [
            "## Failed, refused and incomplete jobs"
            if (bad["status"] == "refused").any()
            else "## Failed and incomplete jobs",
            "",
            "| status | model | cohort | fold | error | dir |",
            "|---|---|---|---|---|---|",
        ]
        for r in bad.to_dict("records"):
            err = (r.get("error") or "").replace("|", "\\|")[:200]
            rel = os.path.relpath(r["dir"], s.sweep_dir)
            lines.append(
                f"| {r['status']} | `{r.get('variant', r['model'])}` | {r['cohort']} | {r['fold']} | {err} | `{rel}` |"
            )
        lines.append("")
    return "\n".join(lines)


def plot_comparison(s: SweepSummary, path: str | os.PathLike) -> Path:
    """``metric`` by model, grouped by cohort: ◆ = mean with ± std whiskers, dots = folds, ✕ = pooled C."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    done = s.jobs[s.jobs["status"] == "done"]
    cohorts = sorted(s.jobs["cohort"].unique())
    models = sorted(s.jobs["variant"].unique())
    present = {
        c: [m for m in models if ((done["variant"] == m) & (done["cohort"] == c)).any()] for c in cohorts
    }
    width = 0.8 / max([len(v) for v in present.values()] + [1])
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 + 0.5 * sum(len(v) for v in present.values())) + 1.6, 3.6))
    lows: list[float] = []
    highs: list[float] = []
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    rng = np.random.default_rng(0)
    labelled: set[str] = set()
    for i, cohort in enumerate(cohorts):
        for k, model in enumerate(present[cohort]):
            color = colors[models.index(model) % len(colors)]
            x = i - width * len(present[cohort]) / 2 + width * (k + 0.5)
            vals = done[(done["variant"] == model) & (done["cohort"] == cohort)]
            vals = vals[s.metric].to_numpy(float) if s.metric in vals else np.array([])
            vals = vals[np.isfinite(vals)]
            if len(vals):
                lows.append(float(vals.min()))
                highs.append(float(vals.max()))
                # mean ± std as a point with whiskers, not a bar: a bar's length would depend on the axis floor
                ax.errorbar(
                    x,
                    vals.mean(),
                    yerr=vals.std(ddof=1) if len(vals) > 1 else None,
                    fmt="D",
                    ms=6,
                    color=color,
                    capsize=3,
                    elinewidth=1.5,
                    zorder=4,
                    label=None if model in labelled else model,
                )
                labelled.add(model)
                ax.scatter(
                    x + rng.uniform(-width * 0.25, width * 0.25, len(vals)),
                    vals,
                    s=9,
                    color=color,
                    alpha=0.6,
                    zorder=3,
                )
            row = s.table[(s.table["variant"] == model) & (s.table["cohort"] == cohort)]
            if s.metric == "test/cindex" and len(row) and np.isfinite(row["pooled_cindex"].iloc[0]):
                ax.scatter([x], [row["pooled_cindex"].iloc[0]], marker="x", color="crimson", s=25, zorder=4)
    if "oracle_cindex" in done and s.metric == "test/cindex":
        for i, cohort in enumerate(cohorts):
            o = done.loc[done["cohort"] == cohort, "oracle_cindex"].to_numpy(float)
            o = o[np.isfinite(o)]
            if len(o):
                ax.hlines(o.mean(), i - 0.45, i + 0.45, colors="grey", linestyles="--", linewidth=1)
                highs.append(float(o.mean()))
    ax.axhline(0.5, color="lightgrey", linewidth=0.8, zorder=0)
    ax.set_xticks(range(len(cohorts)), cohorts)
    ax.set_ylabel(s.metric)
    extra = ", pooled (✕), oracle (dashed)" if s.metric == "test/cindex" else ""
    ax.set_title(f"{s.metric}: mean ± std (◆), folds (dots){extra}", fontsize=9)
    if lows:  # the axis spans every fold's value (and chance, 0.5), with a margin; nothing is clipped
        lo, hi = min(min(lows), 0.5), max(max(highs), 0.5)
        pad = 0.05 * max(hi - lo, 0.1)
        ax.set_ylim(lo - pad, hi + pad)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return out
