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

The PathGen pipeline's conformal stage (survlab.runner.pipelines.pathgen) computes and writes its sets with the same
pieces (`conformal_cell` per setting x target x alpha, `sets_frame`, `write_conformal_files`): its conformal.json holds
the entries under "settings" (keyed `<setting>/<target>/alpha=<a>`, marginal sets, with model / calibration_source /
test_source beside the fields above), its conformal.csv the subgroup tables keyed by setting / model / source /
target / alpha, its conformal_sets.csv setting, target, alpha and the columns above; no conformal_calibration.csv.

The numbers are survlab.metrics.conformal's (LAC score, finite-sample rank, Mondrian q̂ per class, the survival-bin
probabilities and the censoring rule `known_bin`). Survival bins: bin k holds edges[k] <= t < edges[k+1] of the
fold's training bin edges (`TimeBins.transform`), or the bin the rows carry (`time_bin`: PathGen's predictions).
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

from survlab.data.cohort.time_bins import TimeBins
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
    "and from coverage (counted in n_*_excluded); censored in the last bin = known (it is in the last bin). The "
    "coverage guarantee therefore holds for patients whose bin is observed (an event, or follow-up into the last "
    "bin), who are shorter survivors than the cohort when censoring is early; it is not a guarantee for every "
    "patient under censoring (censoring-weighted conformal sets are not implemented)"
)
SCORE = "1 - p(true class) (LAC); q_hat = the ceil((n+1)(1-alpha))-th smallest calibration score"


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
    """-> (row index [n], probabilities [n, K], true class / bin [n] (−1 unknown)) of one objective's rows.

    Survival rows: hazard_logits [n, K], time [n], event [n]; their bin is `rows["time_bin"]` [n] where the rows
    carry it (the dataset's own binning, e.g. the PathGen stage's eval_predictions.csv; `time` then optional), else
    the time's bin in `target.bin_edges`. Rows without the endpoint (NaN time) are dropped."""
    if target.kind == "class":
        return (
            np.asarray(rows["index"], dtype=int),
            np.asarray(rows["probs"], dtype=float),
            np.asarray(rows["label"], dtype=int),
        )
    n = len(rows["index"])
    time = np.asarray(rows["time"], dtype=float) if "time" in rows else np.zeros(n)
    ok = np.isfinite(time)  # patients without this endpoint
    k = len(target.names)
    if "time_bin" in rows:
        time_bin = np.asarray(rows["time_bin"], dtype=int)[ok]
    elif target.bin_edges is None:
        raise ValueError(f"conformal: survival objective {target.objective!r} has no bin edges")
    else:
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
    """Overall and per-class numbers of one (objective, alpha, method) for conformal.json (NaN where there is no
    number: not computable, or no patient; written as null)."""
    known = labels >= 0
    size = sets.sum(1)
    covered = np.zeros(len(labels), dtype=bool)
    covered[known] = sets[known, labels[known]]

    def mean(x: np.ndarray) -> float:
        return math.nan if note or not len(x) else float(x.mean())

    per_class = {
        name: {
            "n": int((labels == k).sum()),
            "coverage": mean(covered[labels == k]),
            "mean_set_size": mean(size[labels == k]),
        }
        for k, name in enumerate(names)
    }
    qhat_out: Any = (
        math.nan
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


@dataclass(frozen=True)
class ConformalCell:
    """Split-conformal sets of one (target, alpha, method) on one calibration → scored pairing.

    qhat: float (marginal) or [K] (Mondrian), NaN when not computable; sets: [n_test, K] bool (all False when not
    computable); labels: [n_test] true class / bin (−1 unknown); note: "" or "not computable: ..."; summary: the
    conformal.json entry (`_summary`); table: coverage / set size overall and per subgroup (`subgroup_table`, NaN
    numbers when not computable) with a `note` column."""

    qhat: Any
    sets: np.ndarray
    labels: np.ndarray
    note: str
    summary: dict[str, Any]
    table: pd.DataFrame


def conformal_cell(
    names: Sequence[str],
    cal_probs: np.ndarray,
    cal_labels: np.ndarray,
    test_probs: np.ndarray,
    test_labels: np.ndarray,
    alpha: float,
    method: Literal["marginal", "mondrian"] = "marginal",
    groups: pd.DataFrame | None = None,
    key: str = "",
) -> ConformalCell:
    """Calibrate on cal_probs [n_cal, K] / cal_labels [n_cal] (−1 unknown: excluded), sets for test_probs [n, K];
    coverage against test_labels [n] overall and per column of `groups` (rows aligned with the test rows). Too few
    calibration patients (`CalibrationSizeError`) gives a "not computable" cell (NaN, no sets), logged under `key`,
    never a coverage of 1.0."""
    note = ""
    try:
        fit = mondrian_calibrate_and_predict if method == "mondrian" else calibrate_and_predict
        qhat, sets = fit(cal_probs, cal_labels, test_probs, float(alpha))
    except CalibrationSizeError as exc:  # too few calibration patients: not computable, not 1.0
        note = f"not computable: {exc}"
        log.warning("conformal %s: %s", key, note)
        qhat, sets = math.nan, np.zeros((len(test_labels), len(names)), dtype=bool)
    test_labels = np.asarray(test_labels, dtype=int)
    n_excl = int((np.asarray(cal_labels) < 0).sum())
    table = subgroup_table(sets, test_labels, groups)
    if note:
        table[["coverage", "mean_set_size", "empty_rate"]] = math.nan
    table["note"] = note
    summary = _summary(sets, test_labels, names, qhat, len(cal_labels), n_excl, note)
    return ConformalCell(qhat, sets, test_labels, note, summary, table)


def sets_frame(case_ids: Sequence[str], names: Sequence[str], cell: ConformalCell) -> pd.DataFrame:
    """One row per scored patient of a cell: case_id, set (names joined by "|"), set_size, label (true class / bin,
    "unknown" when censoring hides it), covered (None when the label is unknown)."""
    return pd.DataFrame(
        {
            "case_id": list(case_ids),
            "set": ["|".join(n for n, keep in zip(names, s, strict=True) if keep) for s in cell.sets],
            "set_size": cell.sets.sum(1),
            "label": [names[y] if y >= 0 else "unknown" for y in cell.labels],
            "covered": [bool(s[y]) if y >= 0 else None for s, y in zip(cell.sets, cell.labels, strict=True)],
        }
    )


def write_conformal_files(
    out: Path,
    alphas: Sequence[float],
    entries: Mapping[str, Any],
    tables: Sequence[pd.DataFrame],
    set_frames: Sequence[pd.DataFrame],
    set_columns: Sequence[str],
    entries_key: str = "results",
    mondrian: bool = False,
    description: Mapping[str, Any] | None = None,
    calibration_frames: Sequence[pd.DataFrame] | None = None,
) -> None:
    """The files of `out` (a conformal/ dir): conformal.json (description, alphas, mondrian, score, censoring rule,
    `entries` under `entries_key`), conformal.csv (the cells' tables), conformal_sets.csv (the computable cells' sets;
    the header `set_columns` when there are none) and, given calibration frames, conformal_calibration.csv."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "conformal_sets.csv") as tmp:
        (
            pd.concat(set_frames, ignore_index=True)
            if set_frames
            else pd.DataFrame(columns=list(set_columns))
        ).to_csv(tmp, index=False)
    if calibration_frames is not None:
        with atomic_path(out / "conformal_calibration.csv") as tmp:
            pd.concat(calibration_frames, ignore_index=True).to_csv(tmp, index=False)
    with atomic_path(out / "conformal.csv") as tmp:
        pd.concat(tables, ignore_index=True).to_csv(tmp, index=False)
    write_json(
        out / "conformal.json",
        {
            **dict(description or {}),
            "alphas": [float(a) for a in alphas],
            "mondrian": bool(mondrian),
            "score": SCORE,
            "censoring_rule": CENSORING_RULE,
            entries_key: dict(entries),
        },
    )


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
    methods: list[Literal["marginal", "mondrian"]] = ["marginal", "mondrian"] if mondrian else ["marginal"]
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
                cell = conformal_cell(names, cal_p, cal_y, test_p, test_y, float(alpha), method, sub, key)
                results[key] = {
                    "objective": target.objective,
                    "target": target.kind,
                    "alpha": float(alpha),
                    "method": method,
                    "classes": names,
                    **cell.summary,
                }
                for name in ("coverage", "mean_set_size"):
                    metrics[f"conformal/{key}/{name}"] = cell.summary[name]
                table = cell.table
                table.insert(0, "objective", target.objective)
                table.insert(1, "alpha", float(alpha))
                table.insert(2, "method", method)
                tables.append(table)
                if cell.note:
                    continue
                frame = sets_frame([case_ids[i] for i in test_idx], names, cell)
                frame.insert(1, "objective", target.objective)
                frame.insert(2, "alpha", float(alpha))
                frame.insert(3, "method", method)
                set_frames.append(frame)
    write_conformal_files(
        out_dir / "conformal",
        alphas,
        results,
        tables,
        set_frames,
        ["case_id", "objective", "alpha", "method", "set", "set_size", "label", "covered"],
        mondrian=mondrian,
        description=description,
        calibration_frames=cal_frames,
    )
    return metrics


__all__ = [
    "CENSORING_RULE",
    "SCORE",
    "ConformalCell",
    "ConformalTarget",
    "conformal_cell",
    "probs_and_labels",
    "sets_frame",
    "write_conformal",
    "write_conformal_files",
]
