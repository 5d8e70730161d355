"""Post-hoc split-conformal prediction sets of any run (`conformal.alphas=[0.1,0.2]`): `write_conformal` takes the
per-patient rows of the calibration part and of the scored patients (objective → {index, probs, label} for
classification, {index, hazard_logits, time, event} for discrete-time survival: the shape `OutcomeTask` collects)
and writes `<out>/conformal/`:

- conformal.json: per objective × alpha × method (`marginal`, and `mondrian` with `conformal.mondrian=true`): q̂ (one
  per class for Mondrian), n_calibration (+ excluded: censored before the last bin), n_test (+ excluded), coverage,
  mean set size, empty-set rate, coverage / set size per true class; `note` "not computable: ..." (and NaN numbers)
  where the calibration part is too small for that alpha (`CalibrationSizeError`), never a coverage of 1.0;
- conformal_sets.csv: case_id, objective, alpha, method, set (class / bin names joined by "|"), set_size, label (the
  true class or bin, "unknown" when censoring hides it), covered (empty when the label is unknown);
- conformal_calibration.csv: case_id, objective, label, score (1 − p̂(true class); unknown labels excluded);
- conformal.csv: coverage / mean set size overall, per true class and per `data.subgroups` column value.

The numbers are survlab.metrics.conformal's (LAC score, finite-sample rank, Mondrian q̂ per class, the survival-bin
probabilities and the censoring rule `known_bin`). Survival bins: bin k holds edges[k] <= t < edges[k+1] of the
fold's training bin edges (`TimeBins.transform`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from survlab.data.cohort.table import TimeBins
from survlab.metrics.conformal import (
    CalibrationSizeError,
    bin_probabilities,
    calibrate_and_predict,
    known_bin,
    lac_scores,
    mondrian_calibrate_and_predict,
    subgroup_table,
)
from survlab.utils.files import atomic_path
from survlab.utils.outputs import write_json

log = logging.getLogger(__name__)

Rows = Mapping[str, Mapping[str, np.ndarray]]

CENSORING_RULE = (
    "survival bins: a patient censored before the last time bin has an unknown true bin: excluded from calibration "
    "and from coverage (counted in n_*_excluded); censored in the last bin = known (it is in the last bin)"
)


@dataclass(frozen=True)
class ConformalTarget:
    """One objective that gets sets: `kind` "class" (a patient-level classification objective; `names` its classes)
    or "survival_bin" (a discrete-time NLL survival objective; `names` bin0..bin{K-1}, `bin_edges` [K+1] its
    training bin edges)."""

    objective: str
    kind: Literal["class", "survival_bin"]
    names: tuple[str, ...]
    bin_edges: np.ndarray | None = None


def probs_and_labels(target: ConformalTarget, rows: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """-> (row index [n], probabilities [n, K], true class / bin [n] (−1 unknown)) of one objective's rows."""
    if target.kind == "class":
        return (
            np.asarray(rows["index"], dtype=int),
            np.asarray(rows["probs"], dtype=float),
            np.asarray(rows["label"], dtype=int),
        )
    if target.bin_edges is None:
        raise ValueError(f"conformal: survival objective {target.objective!r} has no bin edges")
    time = np.asarray(rows["time"], dtype=float)
    ok = np.isfinite(time)  # patients without this endpoint
    k = len(target.names)
    time_bin = TimeBins(np.asarray(target.bin_edges, dtype=float)).transform(time[ok])
    labels = known_bin(time_bin, np.asarray(rows["event"])[ok], k)
    probs = bin_probabilities(np.asarray(rows["hazard_logits"], dtype=float)[ok])
    return np.asarray(rows["index"], dtype=int)[ok], probs, labels


def _summary(
    sets: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    qhat: Any,
    n_cal: int,
    n_cal_excl: int,
    note: str,
) -> dict[str, Any]:
    """Overall and per-class numbers of one (objective, alpha, method) for conformal.json."""
    known = labels >= 0
    size = sets.sum(1)
    covered = np.zeros(len(labels), dtype=bool)
    covered[known] = sets[known, labels[known]]

    def mean(x: np.ndarray) -> float | None:
        return None if note or not len(x) else float(x.mean())

    per_class = {
        name: {
            "n": int((labels == k).sum()),
            "coverage": mean(covered[labels == k]),
            "mean_set_size": mean(size[labels == k]),
        }
        for k, name in enumerate(names)
    }
    qhat_out: Any = (
        None
        if note
        else {n: float(q) for n, q in zip(names, np.atleast_1d(qhat), strict=True)}
        if np.ndim(qhat)
        else float(qhat)
    )
    return {
        "qhat": qhat_out,
        "n_calibration": n_cal,
        "n_calibration_excluded": n_cal_excl,
        "n_test": int(known.sum()),
        "n_test_excluded": int((~known).sum()),
        "coverage": mean(covered[known]),
        "mean_set_size": mean(size[known]),
        "empty_rate": mean((size[known] == 0).astype(float)),
        "per_class": per_class,
        **({"note": note} if note else {}),
    }


def write_conformal(
    out_dir: Path,
    targets: Sequence[ConformalTarget],
    calibration: Rows,
    test: Rows,
    case_ids: Sequence[str],
    alphas: Sequence[float],
    mondrian: bool = False,
    groups: pd.DataFrame | None = None,
    calibration_case_ids: Sequence[str] | None = None,
    description: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Split-conformal sets of every target × alpha (× Mondrian) into `out_dir/conformal/` (module doc).

    calibration / test: objective → rows (`OutcomeTask.test_rows` shape); `case_ids[index]` names a scored row,
    `calibration_case_ids[index]` a calibration row (default `case_ids`: the same cohort); `groups`: subgroup columns
    indexed by the scored rows' index (one row per patient). Returns flat metrics
    `conformal/<objective>/alpha=<a>/<method>/{coverage,mean_set_size}` (NaN when not computable)."""
    cal_ids = list(case_ids if calibration_case_ids is None else calibration_case_ids)
    out = out_dir / "conformal"
    out.mkdir(parents=True, exist_ok=True)
    methods = ["marginal", *(["mondrian"] if mondrian else [])]
    results: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    set_frames, cal_frames, tables = [], [], []
    for target in targets:
        cal_idx, cal_p, cal_y = probs_and_labels(target, calibration[target.objective])
        test_idx, test_p, test_y = probs_and_labels(target, test[target.objective])
        names = list(target.names)
        known = cal_y >= 0
        cal_frames.append(
            pd.DataFrame(
                {
                    "case_id": [cal_ids[i] for i in cal_idx[known]],
                    "objective": target.objective,
                    "label": [names[y] for y in cal_y[known]],
                    "score": lac_scores(cal_p[known], cal_y[known]),
                }
            )
        )
        sub = pd.DataFrame(
            {"true_class": [names[y] if y >= 0 else "unknown" for y in test_y]}, index=range(len(test_y))
        )
        if groups is not None and len(groups.columns):
            sub = pd.concat([sub, groups.reindex(test_idx).reset_index(drop=True)], axis=1)
        for alpha in alphas:
            for method in methods:
                key = f"{target.objective}/alpha={float(alpha):g}/{method}"
                note = ""
                try:
                    fit = mondrian_calibrate_and_predict if method == "mondrian" else calibrate_and_predict
                    qhat, sets = fit(cal_p, cal_y, test_p, float(alpha))
                except CalibrationSizeError as exc:  # too few calibration patients: not computable, not 1.0
                    note = f"not computable: {exc}"
                    log.warning("conformal %s: %s", key, note)
                    qhat, sets = math.nan, np.zeros_like(test_p, dtype=bool)
                results[key] = {
                    "objective": target.objective,
                    "target": target.kind,
                    "alpha": float(alpha),
                    "method": method,
                    "classes": names,
                    **_summary(sets, test_y, names, qhat, len(cal_y), int((~known).sum()), note),
                }
                for name in ("coverage", "mean_set_size"):
                    value = results[key][name]
                    metrics[f"conformal/{key}/{name}"] = math.nan if value is None else value
                table = subgroup_table(sets, test_y, sub)
                if note:
                    table[["coverage", "mean_set_size", "empty_rate"]] = math.nan
                table.insert(0, "objective", target.objective)
                table.insert(1, "alpha", float(alpha))
                table.insert(2, "method", method)
                table["note"] = note
                tables.append(table)
                if note:
                    continue
                set_frames.append(
                    pd.DataFrame(
                        {
                            "case_id": [case_ids[i] for i in test_idx],
                            "objective": target.objective,
                            "alpha": float(alpha),
                            "method": method,
                            "set": [
                                "|".join(n for n, keep in zip(names, s, strict=True) if keep) for s in sets
                            ],
                            "set_size": sets.sum(1),
                            "label": [names[y] if y >= 0 else "unknown" for y in test_y],
                            "covered": [
                                bool(s[y]) if y >= 0 else None for s, y in zip(sets, test_y, strict=True)
                            ],
                        }
                    )
                )
    set_columns = ["case_id", "objective", "alpha", "method", "set", "set_size", "label", "covered"]
    with atomic_path(out / "conformal_sets.csv") as tmp:
        (
            pd.concat(set_frames, ignore_index=True) if set_frames else pd.DataFrame(columns=set_columns)
        ).to_csv(tmp, index=False)
    with atomic_path(out / "conformal_calibration.csv") as tmp:
        pd.concat(cal_frames, ignore_index=True).to_csv(tmp, index=False)
    with atomic_path(out / "conformal.csv") as tmp:
        pd.concat(tables, ignore_index=True).to_csv(tmp, index=False)
    write_json(
        out / "conformal.json",
        {
            **dict(description or {}),
            "alphas": [float(a) for a in alphas],
            "mondrian": bool(mondrian),
            "score": "1 - p(true class) (LAC); q_hat = the ceil((n+1)(1-alpha))-th smallest calibration score",
            "censoring_rule": CENSORING_RULE,
            "results": results,
        },
    )
    return metrics


__all__ = ["CENSORING_RULE", "ConformalTarget", "probs_and_labels", "write_conformal"]
