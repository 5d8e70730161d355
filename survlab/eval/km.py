"""Kaplan–Meier curves, the k-group log-rank test, risk groups and the KM-by-risk-group plot (`km.png`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from scipy import stats

from survlab.utils.files import atomic_path

log = logging.getLogger(__name__)

__all__ = [
    "ArrayLike",
    "as_numpy",
    "risk_table",
    "kaplan_meier",
    "logrank_test",
    "risk_groups",
    "plot_km_by_risk",
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


def risk_groups(risk: ArrayLike, method: Literal["median", "tertiles"] = "median") -> np.ndarray:
    """Integer risk group per patient, 0 = lowest risk: "median" -> {0, 1} (ties at the median go low),
    "tertiles" -> {0, 1, 2}. Example: risk_groups([0.1, 2.0, 0.5, 3.0]) -> [0, 1, 0, 1]."""
    r = as_numpy(risk)
    if method == "median":
        cuts = [np.median(r)]
    elif method == "tertiles":
        cuts = list(np.quantile(r, [1 / 3, 2 / 3]))
    else:
        raise ValueError(f"method must be 'median' or 'tertiles', got {method!r}")
    return np.searchsorted(np.asarray(cuts), r, side="left").astype(int)


def plot_km_by_risk(
    risk: ArrayLike,
    time: ArrayLike,
    event: ArrayLike,
    path: str | Path,
    method: Literal["median", "tertiles"] = "median",
    title: str = "",
) -> dict:
    """Plot KM curves per risk group to a PNG at `path`; return {"logrank_p", "chi2", "n_per_group"}.

    Groups come from `risk_groups(risk, method)`; the log-rank p-value is NaN (with a warning) when undefined.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, e = as_numpy(time), as_numpy(event).astype(bool)
    groups = risk_groups(risk, method)
    names = ["low", "high"] if method == "median" else ["low", "medium", "high"]
    chi2, p = logrank_test(t, e, groups)
    fig, ax = plt.subplots(figsize=(5, 4))
    for k, name in enumerate(names):
        mask = groups == k
        if not mask.any():
            continue
        et, surv = kaplan_meier(t[mask], e[mask])
        xs = np.concatenate([[0.0], et, [t[mask].max()]])
        ys = np.concatenate([[1.0], surv, [surv[-1] if len(surv) else 1.0]])
        ax.step(xs, ys, where="post", label=f"{name} risk (n={int(mask.sum())})")
    ax.set(xlabel="time", ylabel="survival probability", ylim=(0, 1.05))
    ax.set_title(f"{title}  log-rank p={p:.3g}".strip())
    ax.legend(loc="lower left")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    counts = [int((groups == k).sum()) for k in range(len(names))]
    return {"logrank_p": p, "chi2": chi2, "n_per_group": counts}
