"""Gene filtering for wide expression tables, fitted on the fold's TRAINING patients only (`genomics.select`).

    genomics:
      select: {method: variance, top_k: 500}

`variance`: keep the `top_k` genes with the largest variance over the training patients (after `log1p` when the
scaler uses it; missing values ignored). `univariate_cox`: the `top_k` genes with the largest univariate Cox score
statistic U²/I at beta = 0 (Breslow ties; = the log-rank statistic for a 0/1 gene) on the training patients' outcomes
(missing values set to the training mean). Ties are broken by gene symbol, so the choice does not depend on column
order.
Gene groups keep their selected genes; a group left without genes is dropped (counted in protocol.json).

Example:
    >>> from survlab.data.modalities.genomics import match_groups
    >>> expr = pd.DataFrame({"A": [1.0, 2.0, 3.0], "B": [0.0, 0.0, 0.1], "C": [5.0, 0.0, 9.0]}, index=["p1", "p2", "p3"])
    >>> groups = match_groups(expr.columns, None)
    >>> sel = GeneFilter("variance", top_k=2).fit(expr, groups, ["p1", "p2"])   # training patients only
    >>> sel.genes, sel.apply(groups).sizes
    (('A', 'C'), (2,))
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from survlab.data.modalities.genomics import GeneGroups, _group_genes, _lookup

log = logging.getLogger(__name__)

METHODS = ("variance", "univariate_cox")
OPTIONS = ("method", "top_k")


class GeneFilter:
    """Keep the `top_k` genes of the training patients by `method` (see module doc)."""

    def __init__(self, method: str = "variance", top_k: int = 500, log1p: bool = False) -> None:
        if method not in METHODS:
            raise ValueError(f"genomics.select.method={method!r}; allowed: {list(METHODS)}")
        if int(top_k) < 1:
            raise ValueError(f"genomics.select.top_k={top_k}: must be >= 1")
        self.method, self.top_k, self.log1p = method, int(top_k), bool(log1p)
        self.genes: tuple[str, ...] = ()
        self.n_candidates = 0

    @classmethod
    def from_config(cls, select: dict[str, Any], log1p: bool = False) -> GeneFilter:
        """`genomics.select` mapping -> GeneFilter (unknown keys are a one-line error)."""
        unknown = sorted(set(select) - set(OPTIONS))
        if unknown:
            raise ValueError(f"unknown genomics.select option(s) {unknown}; allowed: {list(OPTIONS)}")
        return cls(str(select.get("method", "variance")), int(select.get("top_k", 500)), log1p)

    def fit(
        self,
        expr: pd.DataFrame,
        groups: GeneGroups,
        train_ids: Sequence[str],
        time: np.ndarray | None = None,
        event: np.ndarray | None = None,
    ) -> GeneFilter:
        """Score the groups' genes on the TRAINING patients (expression; `time` / `event` [N] of `train_ids` for
        univariate_cox) and keep the top_k."""
        genes = _group_genes(groups)
        x = np.asarray(_lookup(expr, list(train_ids), genes), dtype=np.float64)
        if self.log1p:
            x = np.log1p(np.clip(x, 0, None))
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing / constant gene: score NaN
            if self.method == "variance":
                raw = np.nanvar(x, axis=0)
            else:
                if time is None or event is None:
                    raise ValueError(
                        "genomics.select.method=univariate_cox needs a survival endpoint; use method: variance"
                    )
                raw = cox_score_statistic(np.where(np.isnan(x), np.nanmean(x, axis=0), x), time, event)
            score = np.nan_to_num(raw, nan=-np.inf)
        order = sorted(range(len(genes)), key=lambda i: (-score[i], genes[i]))
        self.genes = tuple(sorted(genes[i] for i in order[: self.top_k]))
        self.n_candidates = len(genes)
        log.info(
            "genomics: kept %d of %d genes by training-patient %s", len(self.genes), len(genes), self.method
        )
        return self

    def apply(self, groups: GeneGroups) -> GeneGroups:
        """The groups restricted to the selected genes (in their original order); empty groups dropped."""
        keep = set(self.genes)
        kept = [
            (n, tuple(g for g in grp if g in keep), t)
            for n, grp, t in zip(groups.names, groups.genes, groups.totals, strict=True)
        ]
        kept = [k for k in kept if k[1]]
        return GeneGroups(tuple(k[0] for k in kept), tuple(k[1] for k in kept), tuple(k[2] for k in kept))

    def describe(self, before: GeneGroups, after: GeneGroups) -> dict[str, Any]:
        """Protocol-card facts: method, top_k, genes before / after, dropped groups, the selected genes."""
        return {
            "method": self.method,
            "top_k": self.top_k,
            "fitted_on": "train",
            "n_genes_before": self.n_candidates,
            "n_genes_after": len(self.genes),
            "groups_dropped": [n for n in before.names if n not in after.names],
            "genes": list(self.genes),
        }


def cox_score_statistic(x: np.ndarray, time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """Univariate Cox score statistic U²/I at beta = 0 for every column of x [N, G] (Breslow ties) -> [G].

    U = sum over events of (x_i - mean of x over the risk set at t_i); I = sum over events of the risk-set variance.
    """
    time, event = np.asarray(time, dtype=np.float64), np.asarray(event, dtype=bool)
    order = np.argsort(-time, kind="stable")
    xs, ts, es = x[order], time[order], event[order]
    s1, s2 = np.cumsum(xs, axis=0), np.cumsum(xs**2, axis=0)
    last = np.searchsorted(-ts, -ts, side="right") - 1  # risk set of row k: rows 0..last[k] (time >= t_k)
    at_risk = (last + 1).astype(np.float64)[:, None]
    mean, mean_sq = s1[last] / at_risk, s2[last] / at_risk
    u = ((xs - mean) * es[:, None]).sum(axis=0)
    info = ((mean_sq - mean**2) * es[:, None]).sum(axis=0)
    return u**2 / info
