"""Split-conformal prediction sets (LAC scores) for grade and survival time bin, with coverage per subgroup.

Score of a patient with true class y: s = 1 − p̂(y). Calibrated on the n calibration patients (the SAME genomics
source as the test patients, so calibration and test scores are exchangeable):
    q̂ = the ⌈(n+1)(1−α)⌉-th smallest score,
and the prediction set of a test patient is {k : 1 − p̂(k) ≤ q̂} = {k : p̂(k) ≥ 1 − q̂}. If calibration and test
patients are exchangeable, P(y ∈ set) ≥ 1 − α (and ≤ 1 − α + 1/(n+1) without ties). With fewer than
`min_calibration_size(α)` = ⌈(1−α)/α⌉ calibration patients that rank exceeds n (q̂ = +∞, every class in every set,
coverage 1.0 by construction): `conformal_quantile` refuses (CalibrationSizeError, naming the size needed) and the
PathGen pipeline reports that setting as not computable (NaN with a note), never as coverage 1.0.

Survival bin: p̂(bin k) = S(k−1) · h_k for k < K−1 and S(K−2) for the last bin (it extends to infinity), from the
discrete hazards h = sigmoid(hazard_logits), S(−1) = 1. Censored patients (documented rule): a patient censored in bin
c < K−1 has an unknown true bin (any of c..K−1) and cannot be scored: such patients are EXCLUDED from calibration and
from the reported coverage; a patient censored in the last bin is known to be in it and is kept. Coverage is then
guaranteed for the known-bin population only (events, and patients followed into the last bin) — censoring that
depends on the covariates can bias it; the counts of excluded patients are reported beside every number.

Class-conditional (Mondrian) sets: q̂_k is the same quantile of the scores of the calibration patients whose TRUE class
is k only, and class k enters a test patient's set when 1 − p̂(k) ≤ q̂_k; coverage then holds within every true class
(P(y ∈ set | y = k) ≥ 1 − α), at the price of needing `min_calibration_size(α)` calibration patients of EVERY class.

`subgroup_table` reports coverage and mean set size overall and per value of any column (clinical columns, grade,
risk bin). Parity with MAPIE's `SplitConformalClassifier(conformity_score="lac")` is tested (marginal sets, and
Mondrian sets against MAPIE calibrated on each class's calibration patients); a class enters a set when its score
is within MAPIE's tolerance `EPSILON` (1e-8) of q̂, so near-ties are decided as MAPIE decides them.

Example:
    >>> cal_probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])    # 4 calibration patients
    >>> qhat = conformal_quantile(lac_scores(cal_probs, np.array([0, 1, 1, 1])), alpha=0.2)
    >>> qhat                                               # rank ceil(5 x 0.8) = 4 of the scores .1 .2 .3 .6
    0.6
    >>> prediction_sets(np.array([[0.95, 0.05], [0.5, 0.5]]), qhat)   # [n_test, K] bool: {0} and {0, 1}
    array([[ True, False],
           [ True,  True]])
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

#: a score within this of q̂ counts as ≤ q̂ (MAPIE's `mapie._machine_precision.EPSILON`, so sets equal MAPIE's)
EPSILON = 1e-8


class CalibrationSizeError(ValueError):
    """Too few calibration scores for a finite split-conformal quantile at this α (the sets would be every class and
    the coverage a meaningless 1.0)."""


def _rank(n: int, alpha: float) -> int:
    """⌈(n+1)(1−α)⌉, robust to float error in (1−α)(n+1) (e.g. α = 0.1, n = 9 gives exactly 9)."""
    return math.ceil(round((n + 1) * (1.0 - alpha), 9))


def min_calibration_size(alpha: float) -> int:
    """Smallest n with ⌈(n+1)(1−α)⌉ <= n, i.e. a finite q̂: n >= (1−α)/α (9 for α = 0.1, 4 for α = 0.2)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"conformal alpha must be in (0, 1), got {alpha}")
    n = max(1, math.floor((1.0 - alpha) / alpha) - 1)
    while _rank(n, alpha) > n:
        n += 1
    return n


def conformal_quantile(scores: np.ndarray, alpha: float) -> float:
    """q̂ of calibration `scores` [n]: the ⌈(n+1)(1−α)⌉-th smallest (1-based). Raises CalibrationSizeError when
    that rank exceeds n (q̂ would be +∞: every class in every set), saying how many scores are needed."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"conformal alpha must be in (0, 1), got {alpha}")
    scores = np.sort(np.asarray(scores, dtype=float))
    if scores.size == 0 or not np.isfinite(scores).all():
        raise ValueError(f"conformal calibration needs >= 1 finite score, got {scores.size} ({scores[:3]})")
    rank = _rank(scores.size, alpha)
    if rank > scores.size:
        raise CalibrationSizeError(
            f"conformal calibration: {scores.size} calibration patient(s) with a known label give no finite "
            f"quantile at alpha={alpha:g} (rank ceil((n+1)(1-alpha)) = {rank} > n); needs >= "
            f"{min_calibration_size(alpha)}: enlarge data.splits.calibration_fraction or use a larger alpha"
        )
    return float(scores[rank - 1])


def lac_scores(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1 − p̂(true class): probs [n, K], labels [n] ints in 0..K−1 → [n]."""
    labels = np.asarray(labels, dtype=int)
    return 1.0 - np.asarray(probs, dtype=float)[np.arange(len(labels)), labels]


def prediction_sets(probs: np.ndarray, qhat: float | np.ndarray) -> np.ndarray:
    """Classes with 1 − p̂ ≤ q̂ (to `EPSILON`): probs [n, K], q̂ a float or one per class [K] (Mondrian) → bool
    [n, K]."""
    return (1.0 - np.asarray(probs, dtype=float)) - np.asarray(qhat, dtype=float) <= EPSILON


def bin_probabilities(hazard_logits: np.ndarray) -> np.ndarray:
    """Discrete-time hazard logits [n, K] → P(event time in bin k) [n, K] (the last bin absorbs the tail; rows sum
    to 1)."""
    h = 1.0 / (1.0 + np.exp(-np.asarray(hazard_logits, dtype=float)))
    surv_before = np.cumprod(np.concatenate([np.ones((len(h), 1)), 1.0 - h[:, :-1]], axis=1), axis=1)
    p = surv_before * h
    p[:, -1] = surv_before[:, -1]
    return p


def known_bin(time_bin: np.ndarray, event: np.ndarray, n_bins: int) -> np.ndarray:
    """True bin where it is known (events; censored in the last bin), −1 where censoring hides it → [n] ints."""
    time_bin, event = np.asarray(time_bin, dtype=int), np.asarray(event, dtype=bool)
    return np.where(event | (time_bin == n_bins - 1), time_bin, -1)


def calibrate_and_predict(
    cal_probs: np.ndarray, cal_labels: np.ndarray, test_probs: np.ndarray, alpha: float
) -> tuple[float, np.ndarray]:
    """q̂ from the calibration patients with a known label (label >= 0) → (q̂, test sets [n_test, K] bool)."""
    cal_labels = np.asarray(cal_labels, dtype=int)
    keep = cal_labels >= 0
    if not keep.any():
        raise ValueError(
            "conformal calibration: no calibration patient has a known label; enlarge "
            "data.splits.calibration_fraction"
        )
    qhat = conformal_quantile(lac_scores(np.asarray(cal_probs)[keep], cal_labels[keep]), alpha)
    return qhat, prediction_sets(test_probs, qhat)


def mondrian_quantiles(scores: np.ndarray, labels: np.ndarray, n_classes: int, alpha: float) -> np.ndarray:
    """Class-conditional q̂: scores [n] and true classes [n] (ints in 0..K−1) of the calibration patients → [K], q̂_k
    from the class-k scores alone. Raises CalibrationSizeError naming every class with too few calibration patients
    (and the size needed)."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    need = min_calibration_size(alpha)
    counts = np.bincount(labels, minlength=n_classes)[:n_classes]
    short = [f"class {k}: {int(c)}" for k, c in enumerate(counts) if c < need]
    if short:
        raise CalibrationSizeError(
            f"Mondrian (class-conditional) calibration at alpha={alpha:g} needs >= {need} calibration patients "
            f"of every class; too few: {', '.join(short)}: enlarge data.splits.calibration_fraction, use a "
            f"larger alpha or conformal.mondrian=false"
        )
    return np.array([conformal_quantile(scores[labels == k], alpha) for k in range(n_classes)])


def mondrian_calibrate_and_predict(
    cal_probs: np.ndarray, cal_labels: np.ndarray, test_probs: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Class-conditional q̂ [K] from the calibration patients with a known label (label >= 0) → (q̂ [K], test sets
    [n_test, K] bool)."""
    cal_probs, cal_labels = np.asarray(cal_probs, dtype=float), np.asarray(cal_labels, dtype=int)
    keep = cal_labels >= 0
    qhats = mondrian_quantiles(
        lac_scores(cal_probs[keep], cal_labels[keep]), cal_labels[keep], cal_probs.shape[1], alpha
    )
    return qhats, prediction_sets(test_probs, qhats)


def subgroup_table(sets: np.ndarray, labels: np.ndarray, groups: pd.DataFrame | None = None) -> pd.DataFrame:
    """Coverage and mean set size overall and per value of every column of `groups` (rows aligned with `sets`).

    sets [n, K] bool, labels [n] (−1 = unknown: excluded from coverage, counted in n_excluded). Columns: subgroup,
    value, n, n_excluded, coverage, mean_set_size, empty_rate."""
    labels = np.asarray(labels, dtype=int)
    known = labels >= 0
    covered = np.zeros(len(labels), dtype=bool)
    covered[known] = sets[known, labels[known]]
    size = sets.sum(axis=1)

    def row(name: str, value: Any, sel: np.ndarray) -> dict[str, Any]:
        k = sel & known
        return {
            "subgroup": name,
            "value": str(value),
            "n": int(k.sum()),
            "n_excluded": int((sel & ~known).sum()),
            "coverage": float(covered[k].mean()) if k.any() else math.nan,
            "mean_set_size": float(size[k].mean()) if k.any() else math.nan,
            "empty_rate": float((size[k] == 0).mean()) if k.any() else math.nan,
        }

    rows = [row("all", "all", np.ones(len(labels), dtype=bool))]
    for col in groups.columns if groups is not None else []:
        values = groups[col].astype("object").where(groups[col].notna(), "missing").astype(str).to_numpy()
        for value in sorted(set(values)):
            rows.append(row(col, value, values == value))
    return pd.DataFrame(rows)


__all__ = [
    "EPSILON",
    "CalibrationSizeError",
    "bin_probabilities",
    "calibrate_and_predict",
    "conformal_quantile",
    "known_bin",
    "lac_scores",
    "min_calibration_size",
    "mondrian_calibrate_and_predict",
    "mondrian_quantiles",
    "prediction_sets",
    "subgroup_table",
]
