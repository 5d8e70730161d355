"""An independent reference for the pooled out-of-fold statistics: scikit-survival's / scikit-learn's counts fold by
fold, summed (pairs of patients of the same fold only, as R survival's concordance(strata=fold))."""

from __future__ import annotations

import numpy as np
import pandas as pd


def within_fold_cindex(frame: pd.DataFrame) -> float:
    """Harrell's C over the comparable pairs within each `fold` (scikit-survival's concordant / discordant / tied
    counts per fold, summed)."""
    from sksurv.metrics import concordance_index_censored

    conc = disc = tied = 0.0
    for _, f in frame.groupby("fold"):
        if f["event"].astype(bool).any():
            _, c, d, t, _ = concordance_index_censored(f["event"].astype(bool), f["time"], f["risk"])
            conc, disc, tied = conc + c, disc + d, tied + t
    return float((conc + 0.5 * tied) / (conc + disc + tied))


def within_fold_auc(y: np.ndarray, score: np.ndarray, fold: np.ndarray) -> float:
    """Binary AUC over the (positive, negative) pairs within each fold: scikit-learn's AUC of each fold times its
    pair count, summed, over the summed pair count."""
    from sklearn.metrics import roc_auc_score

    num = den = 0.0
    for k in np.unique(fold):
        m = fold == k
        pairs = float(y[m].sum() * (~y[m]).sum())
        if pairs:
            num, den = num + roc_auc_score(y[m], score[m]) * pairs, den + pairs
    return num / den
