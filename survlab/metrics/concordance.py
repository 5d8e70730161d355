"""The one concordance kernel of survlab: weighted counts of risk-ordered comparable pairs.

Harrell's C (unit weights), Uno's C (1/G(T_i)² weights) and the time-dependent AUC in `survlab.metrics.survival`, and the
oracle C-index of `survlab.data.sources.synthetic`, are all ratios of the two numbers `concordance_counts` returns.
A leaf module: numpy only, nothing from survlab (so `data` and `eval` can both import it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["TIED_TOL", "concordance_counts"]

TIED_TOL = 1e-8  # risks closer than this count as tied (1/2), as in scikit-survival
_CHUNK_ELEMS = 4_000_000  # pairs per chunk (~32 MB per float64 block)


def concordance_counts(
    risk: np.ndarray | Sequence[float],
    time: np.ndarray | Sequence[float],
    event: np.ndarray | Sequence[bool],
    weight: np.ndarray | Sequence[float] | None = None,
) -> tuple[float, float]:
    """(numerator, denominator) of the weighted concordance over comparable pairs; risk/time/event/weight are [n].

    (i, j) is comparable if δ_i = 1 and (T_i < T_j, or T_i == T_j with δ_j = 0) — two events at the same time are
    not; it adds w_i to the denominator and w_i·[r_i − r_j > TIED_TOL] + w_i/2·[|r_i − r_j| <= TIED_TOL] to the
    numerator (higher risk = earlier event). weight None = 1. Chunked over i: memory O(chunk·n), time O(n²).
    Harrell's C = numerator / denominator (= sksurv `concordance_index_censored`), undefined if denominator = 0.

    Example: concordance_counts([2., 1., 0.], [1., 2., 3.], [1, 1, 0]) -> (3.0, 3.0)
    """
    r, t = np.asarray(risk, dtype=np.float64).reshape(-1), np.asarray(time, dtype=np.float64).reshape(-1)
    e = np.asarray(event).reshape(-1).astype(bool)
    w = np.ones_like(t) if weight is None else np.asarray(weight, dtype=np.float64).reshape(-1)
    if not len(r) == len(t) == len(e) == len(w):
        raise ValueError(
            f"concordance_counts: risk, time, event, weight differ in length: {len(r)}, {len(t)}, {len(e)}, {len(w)}"
        )
    rows = np.flatnonzero(e & (w > 0))
    chunk = max(1, _CHUNK_ELEMS // max(len(t), 1))
    num = den = 0.0
    for start in range(0, len(rows), chunk):
        i = rows[start : start + chunk]
        t_i = t[i][:, None]
        comparable = (t[None, :] > t_i) | ((t[None, :] == t_i) & ~e[None, :])
        diff = r[i][:, None] - r[None, :]
        n_concordant = (comparable & (diff > TIED_TOL)).sum(1)
        n_tied = (comparable & (np.abs(diff) <= TIED_TOL)).sum(1)
        num += float(w[i] @ (n_concordant + 0.5 * n_tied))
        den += float(w[i] @ comparable.sum(1))
    return num, den
