"""Quality of synthesised expression against the real one (PathGen stage 1), per gene family and overall.

For predicted and real scaled expression [n_patients, n_genes] (the generator's min-max scale, fitted on training
patients), per family and over all genes:
- `spearman_gene`: Spearman correlation across patients of each gene, averaged over genes (does the generator order
  patients right? a constant prediction — the training mean — scores 0 by definition);
- `spearman_patient`: Spearman correlation across the family's genes of each patient, averaged over patients
  (dominated by genes' base levels: the training mean already scores high here);
- `mae`: mean absolute error in the scaled units.
`generation_metrics` returns the generator's numbers beside those of the trivial reference (training-mean
expression), so a user sees what the generator adds.

Example:
    >>> m = generation_metrics(pred, real, sizes=(12, 20), names=("a", "b"), reference=train_mean)  # doctest: +SKIP
    >>> m["generator"]["overall"]["spearman_gene"], m["training_mean"]["overall"]["spearman_gene"]  # doctest: +SKIP
    (0.4, 0.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata


def _rank_corr(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    """Spearman correlation of a and b along `axis` (Pearson of average ranks); 0 where either is constant."""
    ra, rb = rankdata(a, axis=axis), rankdata(b, axis=axis)
    ra = ra - ra.mean(axis=axis, keepdims=True)
    rb = rb - rb.mean(axis=axis, keepdims=True)
    den = np.sqrt((ra**2).sum(axis=axis) * (rb**2).sum(axis=axis))
    num = (ra * rb).sum(axis=axis)
    return np.divide(num, den, out=np.zeros_like(num, dtype=float), where=den > 0)


def _scores(pred: np.ndarray, real: np.ndarray) -> dict[str, float]:
    return {
        "spearman_gene": float(_rank_corr(pred, real, axis=0).mean()),
        "spearman_patient": float(_rank_corr(pred, real, axis=1).mean()),
        "mae": float(np.abs(pred - real).mean()),
    }


def generation_metrics(
    pred: np.ndarray, real: np.ndarray, sizes: Sequence[int], names: Sequence[str], reference: np.ndarray
) -> dict[str, Any]:
    """pred / real [n, sum(sizes)] (groups concatenated in `names` order), reference [sum(sizes)] (training mean)
    → {"generator" | "training_mean": {family | "overall": {spearman_gene, spearman_patient, mae}}, "n_patients"}."""
    pred, real = np.asarray(pred, float), np.asarray(real, float)
    if pred.shape != real.shape or pred.shape[1] != sum(sizes) or len(reference) != sum(sizes):
        raise ValueError(
            f"generation_metrics: shapes pred {pred.shape}, real {real.shape}, reference "
            f"{np.shape(reference)} do not match the group sizes {tuple(sizes)}"
        )
    if len(pred) < 2:
        raise ValueError(f"generation_metrics needs >= 2 test patients, got {len(pred)}")
    ref = np.broadcast_to(np.asarray(reference, float), real.shape)
    out: dict[str, Any] = {"n_patients": int(len(pred))}
    bounds = np.cumsum([0, *sizes])
    for who, x in (("generator", pred), ("training_mean", ref)):
        fam = {
            n: _scores(x[:, a:b], real[:, a:b])
            for n, a, b in zip(names, bounds[:-1], bounds[1:], strict=True)
        }
        out[who] = {**fam, "overall": _scores(x, real)}
    return out


__all__ = ["generation_metrics"]
