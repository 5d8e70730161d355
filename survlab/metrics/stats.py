"""Statistics that hold for (repeated) k-fold cross-validation: the corrected resampled t-test, Holm's step-down
adjustment and patient bootstrap confidence intervals of pooled out-of-fold C-index / AUC (and of paired
differences between two models on the same resamples).

- :func:`corrected_resampled_ttest` — Nadeau & Bengio (2003), as used for repeated k-fold by Bouckaert & Frank
  (2004): the J = k·r per-fold differences d_j have variance (1/J + n_test/n_train)·s² instead of s²/J, because the
  training sets of the folds overlap; t = mean(d) / sqrt((1/J + n_test/n_train)·s²), J − 1 degrees of freedom.
  For k-fold, n_test/n_train = 1/(k − 1).
- :func:`holm` — Holm (1979) step-down adjusted p-values (= statsmodels ``multipletests(method="holm")``).
- :func:`bootstrap_pooled` / :func:`bootstrap_paired` — patients resampled with replacement (seeded; ``n_boot``
  resamples drawn as ``numpy.random.default_rng(seed).integers(0, n, (n_boot, n))``), the statistic recomputed on
  every resample, percentile CI. A *pool* is one set of out-of-fold predictions (one repeat of the k-fold, for one
  training seed); with several pools (repeats) the statistic is the mean over pools, each scored on the resampled
  patients it predicted. Paired: only patients both models predicted, the same resamples for both.

Pairs are formed WITHIN a fold only (a `fold` column, as predictions.csv has; R survival's ``concordance(strata=)``):
each fold's model puts its risks on its own scale (a Cox partial likelihood does not see a constant shift; the
discrete-time heads' offsets and spreads differ between folds too), so a pair of patients tested in two folds compares
two models' arbitrary scales, not the patients. Over all pairs the pooled C-index of `experiments/synthetic_benchmark`
fell to 0.649 (mcat) / 0.651 (late_fusion) where each fold's own pairs give 0.695 / 0.692 and the fold mean
0.695 / 0.692; within folds the pooled statistic is the pair-weighted mean of the folds' values. Frames without a
`fold` column are one stratum.

Harrell's C and the AUC are pair statistics, num/den = Σ_ij c_i c_j K_ij / Σ_ij c_i c_j A_ij with c the
resample's multiplicities (a patient never forms a comparable pair with its own copy), so a resample costs two
matrix products instead of re-sorting the data; the result equals the statistic of the materialised resample.

Example:
    >>> corrected_resampled_ttest([0.02, 0.03, -0.01, 0.04, 0.01], test_train_ratio=0.25)["p"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from survlab.metrics.concordance import TIED_TOL

log = logging.getLogger(__name__)

__all__ = [
    "corrected_resampled_ttest",
    "holm",
    "bootstrap_counts",
    "pair_matrices",
    "pooled_statistic",
    "bootstrap_pooled",
    "bootstrap_paired",
    "N_BOOT",
]

N_BOOT = 1000  # default number of bootstrap resamples
#: per sub-statistic: K [n, n] (concordance weights), A [n, n] (comparable pairs)
Pairs = list[tuple[np.ndarray, np.ndarray]]


# --------------------------------------------------------------------------------------------- corrected t
def corrected_resampled_ttest(
    diffs: Sequence[float] | np.ndarray, test_train_ratio: float
) -> dict[str, float]:
    """Nadeau–Bengio corrected resampled t-test of per-fold differences `diffs` [J = k·r] (NaN left out).

    `test_train_ratio` = n_test / n_train of one fold (1/(k − 1) for k-fold). Returns n, mean, t, df and the
    two-sided p (NaN below 2 differences; 1 / 0 when all differences are equal to 0 / to a non-zero value)."""
    from scipy import stats

    d = np.asarray(diffs, dtype=float)
    d = d[np.isfinite(d)]
    n = len(d)
    out = {"n": n, "mean": float(d.mean()) if n else math.nan, "t": math.nan, "df": n - 1, "p": math.nan}
    if n < 2:
        return out
    if not test_train_ratio >= 0:
        raise ValueError(f"corrected_resampled_ttest: test_train_ratio must be >= 0, got {test_train_ratio}")
    var = d.var(ddof=1)
    if var == 0 or np.allclose(d, d[0]):
        out["p"] = 1.0 if d[0] == 0 else 0.0  # zero variance: t is 0 or infinite
        return out
    t = d.mean() / math.sqrt((1.0 / n + test_train_ratio) * var)
    out["t"], out["p"] = float(t), float(2 * stats.t.sf(abs(t), n - 1))
    return out


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values [m] of `pvalues` [m] (NaN stays NaN and is not counted in m):
    p_(i) adjusted = max_{j <= i} min(1, (m − j + 1)·p_(j)) over the ascending order."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if not m:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


# --------------------------------------------------------------------------------------------- bootstrap
def bootstrap_counts(n: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """Multiplicities [n_boot, n] of the patients in each resample: row b counts the draws of
    `default_rng(seed).integers(0, n, (n_boot, n))[b]`."""
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    counts = np.zeros((n_boot, n), dtype=np.float64)
    np.add.at(counts, (np.repeat(np.arange(n_boot), n), draws.reshape(-1)), 1.0)
    return counts


def pair_matrices(frame: pd.DataFrame) -> Pairs:
    """The pair matrices of one pool's predictions [n rows]: survival (columns risk, time, event) -> Harrell's C
    (comparable: event i and T_i < T_j, or T_i == T_j with j censored; concordant: higher risk first, ties ½);
    classification (columns `<label>`, `<label>_prob_<class>`) -> AUC, binary (positive = the last class) or
    one-vs-rest per class (macro average, as scikit-learn's ``roc_auc_score(multi_class="ovr")``). With a `fold`
    column only pairs of the same fold are comparable (module docstring)."""
    same = _same_fold(frame)
    if {"risk", "time", "event"} <= set(frame.columns):
        r, t = frame["risk"].to_numpy(float), frame["time"].to_numpy(float)
        e = frame["event"].to_numpy(float).astype(bool)
        comparable = e[:, None] & ((t[None, :] > t[:, None]) | ((t[None, :] == t[:, None]) & ~e[None, :]))
        comparable &= same
        diff = r[:, None] - r[None, :]
        score = np.where(diff > TIED_TOL, 1.0, np.where(np.abs(diff) <= TIED_TOL, 0.5, 0.0))
        return [(comparable * score, comparable.astype(float))]
    label, probs = _class_columns(frame)
    y = _label_keys(frame[label])
    # scored: a known class and finite probabilities (a patient without this label, e.g. labelled for another
    # objective only, has an empty cell: neither a positive nor a negative of any class)
    scored = frame[label].notna().to_numpy() & np.isfinite(frame[probs].to_numpy(float)).all(1)
    classes = [c[len(label) + 6 :] for c in probs]
    pairs = []
    for c, col in zip(classes, probs, strict=True) if len(classes) > 2 else [(classes[-1], probs[-1])]:
        s, pos = frame[col].to_numpy(float), scored & (y == c)
        comparable = pos[:, None] & (scored & ~pos)[None, :] & same
        diff = s[:, None] - s[None, :]
        score = np.where(diff > 0, 1.0, np.where(diff == 0, 0.5, 0.0))
        pairs.append((comparable * score, comparable.astype(float)))
    return pairs


def _same_fold(frame: pd.DataFrame) -> np.ndarray:
    """[n, n] bool: rows i, j were tested in the same fold (all True without a `fold` column; a missing fold is a
    stratum of its own)."""
    if "fold" not in frame.columns:
        return np.ones((len(frame), len(frame)), dtype=bool)
    fold = frame["fold"].astype("string").fillna("<none>").to_numpy()
    return fold[:, None] == fold[None, :]


def pooled_statistic(frame: pd.DataFrame) -> float:
    """The pooled C-index (survival) / AUC (classification) of one pool of out-of-fold predictions [n rows]: the
    statistic of `pair_matrices` (pairs within a fold), computed fold by fold (memory [n_fold, n_fold]); NaN without a
    comparable pair. Equal to `bootstrap_pooled([frame])["estimate"]`."""
    groups = (
        [g for _, g in frame.groupby("fold", sort=True, dropna=False)] if "fold" in frame.columns else [frame]
    )
    sums: list[list[float]] = []
    for group in groups:
        for i, (k, a) in enumerate(pair_matrices(group)):
            if i == len(sums):
                sums.append([0.0, 0.0])
            sums[i][0] += float(k.sum())
            sums[i][1] += float(a.sum())
    ratios = [num / den if den > 0 else math.nan for num, den in sums]
    return float(np.mean(ratios)) if ratios else math.nan


def _label_keys(labels: pd.Series) -> np.ndarray:
    """The class names [n] of a predictions.csv label column as `<label>_prob_<class>` spells them: a column of
    numeric classes read back with empty cells is float (1.0 for class "1"), so integral floats lose their ".0" (as
    survlab.data.cohort.targets.label_key);
    an empty cell is ""."""
    known = labels.notna()
    values = labels[known]
    if pd.api.types.is_float_dtype(values) and len(values) and np.all(values == np.round(values)):
        values = values.astype(np.int64)
    out = np.full(len(labels), "", dtype=object)
    out[known.to_numpy()] = values.astype(str).to_numpy()
    return out


def _class_columns(frame: pd.DataFrame) -> tuple[str, list[str]]:
    """(label column, its probability columns) of a classification predictions.csv (the first label)."""
    for col in frame.columns:
        if col.endswith("_pred") and col[: -len("_pred")] in frame.columns:
            label = col[: -len("_pred")]
            probs = [c for c in frame.columns if c.startswith(f"{label}_prob_")]
            if len(probs) >= 2:
                return label, probs
    raise ValueError(
        "predictions have neither risk/time/event (survival) nor <label>, <label>_pred, <label>_prob_<class> "
        f"columns (classification); columns: {list(frame.columns)}"
    )


def _statistic(pairs_per_pool: list[Pairs], counts: np.ndarray) -> np.ndarray:
    """[B]: mean over pools of the mean over a pool's sub-statistics of c K c / c A c (NaN where undefined)."""
    per_pool = []
    for pairs in pairs_per_pool:
        ratios = []
        for k, a in pairs:
            num = np.einsum("bi,bi->b", counts @ k, counts)
            den = np.einsum("bi,bi->b", counts @ a, counts)
            with np.errstate(invalid="ignore", divide="ignore"):
                ratios.append(np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan))
        per_pool.append(np.mean(ratios, axis=0))
    return np.mean(per_pool, axis=0)


def _aligned(pools: Sequence[pd.DataFrame], patients: list[str]) -> list[Pairs]:
    """Each pool's pair matrices on the index of `patients` [n] (rows / columns of patients the pool did not
    predict are 0: a resample scores each pool on the resampled patients it has); a patient twice in a pool is an
    error."""
    pos = {c: i for i, c in enumerate(patients)}
    out = []
    for pool in pools:
        ids = pool["case_id"].astype(str)
        if ids.duplicated().any():
            raise ValueError(
                f"patient(s) {sorted(ids[ids.duplicated()].unique())[:3]} predicted twice in one pool of "
                "out-of-fold predictions (a split protocol error); no bootstrap"
            )
        idx = np.array([pos[c] for c in ids])
        grid = np.ix_(idx, idx)
        full = []
        for k, a in pair_matrices(pool.assign(case_id=ids.to_numpy())):
            k_full, a_full = (
                np.zeros((len(patients), len(patients))),
                np.zeros((len(patients), len(patients))),
            )
            k_full[grid], a_full[grid] = k, a
            full.append((k_full, a_full))
        out.append(full)
    return out


def _scored(pool: pd.DataFrame) -> pd.DataFrame:
    """The rows of one pool that carry a score and an outcome: risk, time and event (survival), or the first label
    and all its probabilities (classification); the others (e.g. patients labelled for another objective only)
    are neither resampled nor counted."""
    if {"risk", "time", "event"} <= set(pool.columns):
        return pool.dropna(subset=["risk", "time", "event"])
    label, probs = _class_columns(pool)
    return pool.dropna(subset=[label, *probs])


def _union(pools: Sequence[pd.DataFrame]) -> list[str]:
    return sorted(set().union(*(set(p["case_id"].astype(str)) for p in pools)))


def _ci(point: float, boot: np.ndarray, alpha: float, n: int, n_boot: int) -> dict[str, float]:
    ok = boot[np.isfinite(boot)]
    lo, hi = np.percentile(ok, [100 * alpha / 2, 100 * (1 - alpha / 2)]) if len(ok) else (math.nan, math.nan)
    return {
        "estimate": float(point),
        "ci_low": float(lo),
        "ci_high": float(hi),
        "n_patients": n,
        "n_boot": n_boot,
        "n_boot_defined": int(len(ok)),
    }


def bootstrap_pooled(
    pools: Sequence[pd.DataFrame], n_boot: int = N_BOOT, seed: int = 0, alpha: float = 0.05
) -> dict[str, float]:
    """Percentile CI of the pooled out-of-fold C-index (survival) or AUC (classification): `pools` = one
    predictions frame per repeat (case_id + the columns `pair_matrices` reads); the statistic is the mean over pools
    of each pool's value on the resampled patients it predicted (patients drawn from all pools' scored patients, `_scored`: rows without an outcome or label are left out). Returns
    estimate (= the mean of the pools' own values), ci_low, ci_high, n_patients, n_boot, n_boot_defined."""
    pools = [_scored(p) for p in pools]
    patients = _union(pools)
    if not patients:
        return _ci(math.nan, np.array([]), alpha, 0, n_boot)
    pairs = _aligned(pools, patients)
    point = float(_statistic(pairs, np.ones((1, len(patients))))[0])
    return _ci(
        point, _statistic(pairs, bootstrap_counts(len(patients), n_boot, seed)), alpha, len(patients), n_boot
    )


def _shared(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of `a` and `b` whose case_id both have."""
    both = set(a["case_id"].astype(str)) & set(b["case_id"].astype(str))
    return a[a["case_id"].astype(str).isin(both)], b[b["case_id"].astype(str).isin(both)]


def bootstrap_paired(
    pools: Sequence[pd.DataFrame],
    reference_pools: Sequence[pd.DataFrame],
    n_boot: int = N_BOOT,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, float]:
    """Percentile CI of (model − reference) pooled C-index / AUC: pools matched by position (same repeat and seed),
    each pair restricted to the patients both models predicted, the same patient resamples for both."""
    if len(pools) != len(reference_pools):
        raise ValueError(f"bootstrap_paired: {len(pools)} pools vs {len(reference_pools)} reference pools")
    pools, reference_pools = zip(
        *(_shared(_scored(a), _scored(b)) for a, b in zip(pools, reference_pools, strict=True)), strict=True
    )
    patients = _union(pools)
    if not patients:
        return _ci(math.nan, np.array([]), alpha, 0, n_boot)
    mine, ref = _aligned(pools, patients), _aligned(reference_pools, patients)
    ones = np.ones((1, len(patients)))
    point = float(_statistic(mine, ones)[0] - _statistic(ref, ones)[0])
    counts = bootstrap_counts(len(patients), n_boot, seed)
    return _ci(point, _statistic(mine, counts) - _statistic(ref, counts), alpha, len(patients), n_boot)
