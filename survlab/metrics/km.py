"""Kaplan–Meier curves, the k-group log-rank test, risk groups and the high-vs-low hazard ratio (numbers only; the
KM-by-risk-group figure `km.png` that shows them is drawn by survlab.report.km).

Risk groups are cut at cutoffs fitted on the TRAINING patients' predicted risks (`risk_cutoffs`), so a test
patient's group does not depend on the other test patients; without cutoffs, the given risks' own quantiles are
used (the old behaviour, for ad-hoc plots).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
import torch
from scipy import stats

log = logging.getLogger(__name__)

__all__ = [
    "ArrayLike",
    "as_numpy",
    "risk_table",
    "kaplan_meier",
    "logrank_test",
    "risk_cutoffs",
    "risk_groups",
    "hazard_ratio",
    "logrank_note",
    "step_at",
]

#: what the eval functions accept: torch tensors (any device, grad or not), numpy arrays or sequences
ArrayLike = torch.Tensor | np.ndarray | list | tuple


def as_numpy(x: ArrayLike) -> np.ndarray:
    """torch tensor / array / sequence -> numpy (float64 unless bool), detached and on CPU."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    return arr if arr.dtype == bool else arr.astype(np.float64)


def risk_table(time: ArrayLike, event: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(distinct times [m], at risk #{T >= s} [m], events at s [m], censorings at s [m])."""
    t, e = as_numpy(time).reshape(-1), as_numpy(event).reshape(-1).astype(bool)
    uniq, inverse = np.unique(t, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(uniq))
    deaths = np.bincount(inverse, weights=e, minlength=len(uniq))
    at_risk = len(t) - np.concatenate([[0], np.cumsum(counts)[:-1]])
    return uniq, at_risk, deaths, counts - deaths


def kaplan_meier(time: ArrayLike, event: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier estimate: (distinct event times [m], S at those times [m]); S is right-continuous.

    S(t) = prod_{s <= t} (1 - d_s / n_s), d_s = events at s, n_s = #{T >= s} (a censoring at s is still at risk).
    Evaluate it anywhere with `step_at`. Example: kaplan_meier([1, 2, 2, 3], [1, 1, 0, 1]) -> ([1, 2, 3], [.75, .5, 0]).
    """
    uniq, at_risk, deaths, _ = risk_table(time, event)
    keep = deaths > 0
    return uniq[keep], np.cumprod(1.0 - deaths / at_risk)[keep]


def step_at(step_times: np.ndarray, values: np.ndarray, t: ArrayLike, before: float = 1.0) -> np.ndarray:
    """Evaluate a right-continuous step function (jumps at sorted `step_times`) at `t`; `before` ahead of the first."""
    idx = np.searchsorted(step_times, as_numpy(t), side="right") - 1
    padded = np.concatenate([[before], values])
    return padded[idx + 1]


def logrank_test(time: ArrayLike, event: ArrayLike, groups: ArrayLike) -> tuple[float, float]:
    """k-group log-rank test: (chi2 statistic, p-value) with k − 1 degrees of freedom.

    Over the distinct event times, O − E per group and its hypergeometric covariance V; chi2 = (O−E)' V⁻ (O−E)
    on the first k − 1 groups. Returns (nan, nan) with a logged warning when it is undefined (fewer than 2
    groups or no events). Example: logrank_test(t, e, risk_groups(risk, "median")).
    """
    t, e = as_numpy(time), as_numpy(event).astype(bool)
    g = np.asarray(groups.detach().cpu() if isinstance(groups, torch.Tensor) else groups)
    labels, gi = np.unique(g, return_inverse=True)
    if len(labels) < 2 or not e.any():
        log.warning(
            "log-rank test undefined: %d group(s), %d event(s); returning NaN", len(labels), int(e.sum())
        )
        return float("nan"), float("nan")
    event_times = np.unique(t[e])
    at_risk = (t[None, :] >= event_times[:, None]).astype(float)  # [m, n]
    onehot = np.eye(len(labels))[gi]  # [n, k]
    n_g = at_risk @ onehot  # [m, k]
    d_g = ((t[None, :] == event_times[:, None]) & e[None, :]).astype(float) @ onehot  # [m, k]
    n, d = n_g.sum(1), d_g.sum(1)
    obs_minus_exp = (d_g - d[:, None] * n_g / n[:, None]).sum(0)
    scale = np.where(n > 1, d * (n - d) / (n**2 * np.maximum(n - 1, 1)), 0.0)  # [m]
    # V_ab = sum_t d (n - d) / (n^2 (n - 1)) * (n * n_a * delta_ab - n_a * n_b)
    cov = np.diag((scale * n) @ n_g) - np.einsum("m,ma,mb->ab", scale, n_g, n_g)
    stat = float(obs_minus_exp[:-1] @ np.linalg.pinv(cov[:-1, :-1]) @ obs_minus_exp[:-1])
    return stat, float(stats.chi2.sf(stat, len(labels) - 1))


def risk_cutoffs(risk: ArrayLike, method: Literal["median", "tertiles"] = "median") -> np.ndarray:
    """Cutoffs between risk groups fitted on `risk` (e.g. the training patients' predictions): "median" -> [1]
    (the median), "tertiles" -> [2] (the 1/3 and 2/3 quantiles). Example: risk_cutoffs([1, 2, 3, 4]) -> [2.5]."""
    r = as_numpy(risk).reshape(-1)
    r = r[np.isfinite(r)]
    if not len(r):
        raise ValueError("risk_cutoffs: no finite risk to fit the risk-group cutoffs on")
    if method == "median":
        return np.array([np.median(r)])
    if method == "tertiles":
        return np.quantile(r, [1 / 3, 2 / 3])
    raise ValueError(f"method must be 'median' or 'tertiles', got {method!r}")


def risk_groups(
    risk: ArrayLike, method: Literal["median", "tertiles"] = "median", cutoffs: ArrayLike | None = None
) -> np.ndarray:
    """Integer risk group per patient, 0 = lowest risk: "median" -> {0, 1} (ties at the cutoff go low),
    "tertiles" -> {0, 1, 2}. `cutoffs` (from `risk_cutoffs` on the training patients) are used when given, else
    they are fitted on `risk` itself. Example: risk_groups([0.1, 2.0, 0.5, 3.0]) -> [0, 1, 0, 1];
    risk_groups([0.1, 2.0], cutoffs=[5.0]) -> [0, 0]."""
    r = as_numpy(risk)
    cuts = risk_cutoffs(r, method) if cutoffs is None else np.sort(as_numpy(cutoffs).reshape(-1))
    if cutoffs is not None and len(cuts) != (1 if method == "median" else 2):
        raise ValueError(
            f"method={method!r} needs {1 if method == 'median' else 2} cutoff(s), got {len(cuts)}"
        )
    return np.searchsorted(cuts, r, side="left").astype(int)


def logrank_note(groups: np.ndarray, event: ArrayLike, n_groups: int) -> str | None:
    """Why a log-rank test of `groups` (0..n_groups-1) has no p-value, or None when it has one: a group empty, or no
    event at all (the KM title says this instead of 'p=nan')."""
    g, e = np.asarray(groups), as_numpy(event).astype(bool)
    empty = [k for k in range(n_groups) if not (g == k).any()]
    if len(empty) >= n_groups - 1:
        return "log-rank: one group empty" if n_groups == 2 else "log-rank: fewer than 2 groups filled"
    if not e.any():
        return "log-rank: no events"
    return None


def hazard_ratio(
    risk: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    method: Literal["median", "tertiles"] = "tertiles",
    cutoffs: Any = None,
) -> dict[str, float]:
    """HR (lifelines CoxPHFitter, Efron ties) of the highest vs the lowest risk group, with its 95% CI and p-value;
    NaN when undefined (a group empty or without events). Groups: `risk_groups(risk, method, cutoffs)` (the
    training patients' cutoffs when given)."""
    import math

    import pandas as pd
    from lifelines import CoxPHFitter

    nan = {"hr_high_vs_low": math.nan, "hr_ci_low": math.nan, "hr_ci_high": math.nan, "hr_p": math.nan}
    groups = risk_groups(risk, method, cutoffs)
    top = groups.max()
    keep = (groups == 0) | (groups == top)
    if top == 0 or not event[keep].any() or len(np.unique(groups[keep])) < 2:
        return nan
    df = pd.DataFrame(
        {"high": (groups[keep] == top).astype(float), "T": time[keep], "E": event[keep].astype(int)}
    )
    try:
        fit = CoxPHFitter().fit(df, "T", "E")
    except Exception as err:  # noqa: BLE001 - lifelines convergence failures: undefined, logged
        log.warning("hazard ratio undefined (%s); NaN", type(err).__name__)
        return nan
    ci = np.clip(fit.confidence_intervals_.loc["high"].to_numpy(), -700, 700)  # exp() stays finite
    return {
        "hr_high_vs_low": float(np.exp(fit.params_["high"])),
        "hr_ci_low": float(np.exp(ci[0])),
        "hr_ci_high": float(np.exp(ci[1])),
        "hr_p": float(fit.summary.loc["high", "p"]),
    }
