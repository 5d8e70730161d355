"""Fold ensembles on an external cohort (`survlab eval run=<sweep dir> data=<cohort>`): the k fold models of one
model × cohort each score the cohort with their own preprocessing (survlab.runner.eval_external.score_external); here
their per-patient outputs are averaged.

- Survival: the ensemble risk is the MEAN of the folds' risks after each fold's risks are standardised over the
  scored patients (z-score: minus their mean, over their sd; no outcome is read). The folds share model, objective
  and loss but NOT one risk scale: a Cox partial likelihood does not see a constant shift, and the spread differs
  from fold to fold (`experiments/synthetic_benchmark`: mcat's test risks have sd 0.01-0.07 in folds 1-2 and
  0.74-0.80 in the others; gse7390 coxnet 0.03-2.86), so a raw mean is the ranking of the widest fold. A
  standardised mean weighs every fold equally and keeps each fold's within-cohort ordering and magnitudes. The folds'
  survival curves are NOT averaged: each fold's time bins (and a Cox fold's Breslow baseline) are fitted on its own
  training patients, so the ensemble has no survival curve and no IBS. The IPCW metrics (Uno's C, td-AUC) use the
  censoring distribution of the first fold's training patients (the folds' training parts are nearly the same
  patients).
- Classification: the MEAN of the folds' class probabilities (rows still sum to 1); the predicted class is its
  argmax. Horizon objectives: the mean of the folds' P(event by h).

`average_rows` averages one objective's prediction rows (`Objective.collect` keys, as the one prediction pass
gives them): the ensemble's metrics are computed from them. `average_predictions` averages the folds'
predictions.csv tables into one with the same columns; its `hazard_k` / `surv_k` are per-bin means over the folds,
for reference only (bin k of two folds may span different times; nothing is scored on them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["RISK_AVERAGING", "average_predictions", "average_rows", "fold_summary", "standardised"]

#: the protocol card's sentence on how the ensemble combines the folds
RISK_AVERAGING = (
    "per patient, the mean of the folds' outputs: survival risk standardised per fold over the scored patients first "
    "(z-score; the folds' risks do not share one scale: a Cox fit ignores a shift, and spreads differ between folds), "
    "class probabilities (predicted class = argmax of the mean), "
    "P(event by h) of horizon objectives. The folds' survival curves are not averaged (each fold's time bins / Cox "
    "baseline come from its own training patients): no IBS for the ensemble. Its IPCW metrics (Uno C-index, "
    "td-AUC, horizon AUC / Brier) weight by the censoring distribution of the first fold's training patients."
)


def standardised(risk: np.ndarray) -> np.ndarray:
    """One fold's risks [N] over the scored patients -> (risk - mean) / sd (float64; finite values define mean and
    sd; a constant risk gives zeros: that fold ranks nobody)."""
    r = np.asarray(risk, dtype=np.float64)
    ok = np.isfinite(r)
    if not ok.any():
        return r
    sd = float(r[ok].std())
    return (r - r[ok].mean()) / sd if sd > 0 else np.where(ok, 0.0, r)


#: row keys that are outcomes (equal in every fold), not outputs
_TARGET_KEYS = ("time", "event", "label")
#: row keys that are averaged
_MEAN_KEYS = ("risk", "probs")


def average_rows(
    folds: Sequence[dict[str, np.ndarray]], case_ids: Sequence[Sequence[str]], where: str
) -> dict[str, np.ndarray]:
    """One objective's ensemble rows from its rows in each fold (`index` [N] rows of the fold's cohort table
    `case_ids[f]`, `risk` [N] or `probs` [N, K], and targets `time` / `event` / `label` [N]) -> rows on the first
    fold's indexing: `risk` = the mean over the folds of each fold's standardised risks (`standardised`), `probs` =
    the mean over the folds (float64), targets of the first fold. Per-fold
    outputs that are not averaged (`hazard_logits`) are left out. One-line ValueError naming `where` when the folds
    scored different patients or read different outcomes for a patient."""
    if not folds:
        raise ValueError(f"{where}: no fold rows to average")
    first_ids = [case_ids[0][int(i)] for i in folds[0]["index"]]
    order0 = np.argsort(first_ids, kind="stable")
    ref = sorted(first_ids)
    out: dict[str, np.ndarray] = {"index": np.asarray(folds[0]["index"])}
    sums = {k: np.zeros(np.shape(folds[0][k]), dtype=np.float64) for k in _MEAN_KEYS if k in folds[0]}
    for f, rows in enumerate(folds):
        ids = [case_ids[f][int(i)] for i in rows["index"]]
        order = np.argsort(ids, kind="stable")
        if sorted(ids) != ref:
            extra, missing = sorted(set(ids) - set(ref)), sorted(set(ref) - set(ids))
            raise ValueError(
                f"{where}: fold {f} scored other patients than fold 0 (only in fold {f}: {extra[:3]}, only in fold 0:"
                f" {missing[:3]}); score every fold on the same cohort files and options"
            )
        # this fold's rows in fold 0's order: position j of fold 0 <- the row of the same case here
        align = np.empty(len(ids), dtype=np.int64)
        align[order0] = order
        for k in _TARGET_KEYS:
            if k in folds[0] and not np.array_equal(
                np.asarray(rows[k])[align], np.asarray(folds[0][k]), equal_nan=k == "time"
            ):
                raise ValueError(f"{where}: fold {f} read other {k} values than fold 0 for the same patients")
        for k in sums:
            values = np.asarray(rows[k], dtype=np.float64)[align]
            sums[k] += standardised(values) if k == "risk" else values
    for k in _TARGET_KEYS:
        if k in folds[0]:
            out[k] = np.asarray(folds[0][k])
    out.update({k: v / len(folds) for k, v in sums.items()})
    return out


def average_predictions(tables: Sequence[pd.DataFrame], where: str) -> pd.DataFrame:
    """The folds' predictions.csv tables -> the ensemble's, same columns and rows (order of the first table):
    every float column of outputs (risk, hazard_k, surv_k, `<objective>_risk`, `<objective>_p_<h>`,
    `<label>_prob_<class>`) is the mean over the folds (risk columns standardised per fold first, as `average_rows`), `<label>_pred` the class of the highest mean probability,
    outcomes (time, event, true labels) and `fold` (None: all folds) as in the first table. One-line ValueError
    naming `where` when the tables' columns or patients differ."""
    first = tables[0]
    keyed = [t.set_index("case_id") for t in tables]
    for f, t in enumerate(keyed[1:], start=1):
        if list(t.columns) != list(keyed[0].columns) or sorted(t.index) != sorted(keyed[0].index):
            raise ValueError(
                f"{where}: fold {f}'s predictions.csv has other columns or patients than fold 0's; score every fold on "
                f"the same cohort with the same model config"
            )
    out = first.copy()
    labels = [c[: -len("_pred")] for c in first.columns if c.endswith("_pred")]
    outputs = [
        c
        for c in first.columns
        if (
            c == "risk"
            or c.startswith(("hazard_", "surv_"))
            or c.endswith("_risk")
            or "_p_" in c
            or "_prob_" in c
        )
        and pd.api.types.is_float_dtype(first[c])
    ]
    ids = first["case_id"]
    for c in outputs:
        values = [t.loc[ids, c].to_numpy(dtype=np.float64) for t in keyed]
        if c == "risk" or c.endswith("_risk"):
            values = [standardised(v) for v in values]
        out[c] = np.mean(values, axis=0)
    for label in labels:
        probs = [c for c in first.columns if c.startswith(f"{label}_prob_")]
        if probs:
            names = np.array([c[len(f"{label}_prob_") :] for c in probs], dtype=object)
            out[f"{label}_pred"] = names[out[probs].to_numpy(dtype=np.float64).argmax(1)]
    if "fold" in out.columns:
        out["fold"] = None
    return out


def fold_summary(per_fold: dict[str, dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    """{fold: {metric: value}} -> ({metric: mean over the folds}, {metric: sample sd, ddof=1}); NaN values left out
    (a metric with fewer than 2 finite values has sd NaN)."""
    metrics = sorted({k for m in per_fold.values() for k in m})
    mean, sd = {}, {}
    for k in metrics:
        values = np.array([m[k] for m in per_fold.values() if k in m], dtype=np.float64)
        values = values[np.isfinite(values)]
        mean[k] = float(values.mean()) if len(values) else float("nan")
        sd[k] = float(values.std(ddof=1)) if len(values) >= 2 else float("nan")
    return mean, sd
