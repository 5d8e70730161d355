"""Paired statistics of a sweep summary: each model vs the reference model on the same folds (× seeds × repeats):
per-fold differences, the Nadeau–Bengio corrected resampled t-test (with the uncorrected paired t-test and
Wilcoxon p for reference), and the paired patient-bootstrap CI of the pooled C-index / AUC difference; and the
out-of-fold pools (seed × repeat) those bootstraps resample.

    paired_comparison(np.array([0.02, 0.03, 0.01, 0.04, 0.02]), test_train_ratio=1 / 4)["p_corrected"]
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from survlab.metrics.stats import N_BOOT, bootstrap_paired, corrected_resampled_ttest

log = logging.getLogger(__name__)

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
