"""predictions.csv of a run: one row per scored patient (or slide) and part, from the prediction pass's `PatientRows`
(`predictions_table`: risk, hazard_k / surv_k, per-objective risks and class probabilities, availability marks)
and its one writer (`write_predictions`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survlab.models.base import survival_from_hazard_logits
from survlab.tasks.objective_base import SLIDE_STRIDE
from survlab.tasks.objective_classification import ClassificationObjective
from survlab.tasks.objective_horizon import HorizonObjective
from survlab.tasks.objective_survival import SurvivalObjective
from survlab.tasks.outcome import OutcomeTask
from survlab.utils.files import atomic_path


def predictions_frame(results: dict[str, np.ndarray], case_ids: list[str], fold: int | None) -> pd.DataFrame:
    """One row per test patient: case_id, fold, risk, time, event, hazard_k, surv_k (discrete-time models)."""
    frame = pd.DataFrame(
        {
            "case_id": [case_ids[i] for i in results["index"]],
            "fold": fold,
            "risk": results["risk"].astype(float),
            "time": results["time"].astype(float),
            "event": results["event"].astype(int),
        }
    )
    if "hazard_logits" in results:
        import torch

        logits = torch.as_tensor(results["hazard_logits"])
        hazards = torch.sigmoid(logits).numpy()
        surv = survival_from_hazard_logits(logits).numpy()
        for k in range(hazards.shape[1]):
            frame[f"hazard_{k}"] = hazards[:, k]
        for k in range(surv.shape[1]):
            frame[f"surv_{k}"] = surv[:, k]
    return frame


def _primary_survival(objectives: Mapping[str, Any] | OutcomeTask) -> str | None:
    """Name of the objective on the primary survival endpoint (None for a classification-only task); `objectives`:
    the task's objectives (or the task)."""
    if isinstance(objectives, OutcomeTask):
        objectives = objectives.objectives
    for name, objective in objectives.items():
        if isinstance(objective, SurvivalObjective) and objective.endpoint is None:
            return name
    return None


def _class_names(datamodule: Any, label: str, k: int) -> list[str]:
    fitted = getattr(datamodule, "fitted", None)
    targets = fitted.targets if fitted is not None else {}
    names = (targets.get("labels") or {}).get(label) or (targets.get("slide_labels") or {}).get(label)
    return [str(c) for c in names] if names and len(names) == k else [str(i) for i in range(k)]


def predictions_table(
    objectives: Mapping[str, Any],
    rows: Mapping[str, dict[str, np.ndarray]],
    datamodule: Any,
    fold: int | None = None,
    outcomes: bool = True,
    classes: Mapping[str, list[str]] | None = None,
) -> pd.DataFrame:
    """predictions.csv of one pass's `rows` (`PatientRows.objectives`), one row per patient.

    With outcomes (a run's test fold, an external cohort with outcomes): case_id, fold, [risk, time, event, hazard_k,
    surv_k of the primary survival endpoint], per patient-level classification objective `<label>` (true class),
    `<label>_pred`, `<label>_prob_<class>`, and per horizon objective `<objective>_p_<h>` = P(event by h).
    Without (`outcomes=False`, a cohort scored for predictions only; rows of `_outputs_only`, sorted by case_id):
    case_id, per objective in order risk + hazard_k / surv_k (primary endpoint) or `<objective>_risk`,
    `<objective>_p_<h>`, `<label>_pred` / `<label>_prob_<class>`. `classes`: label -> class names (default: the
    data module's fitted ones)."""
    case_ids = datamodule.full_cohort.case_ids
    if not outcomes:
        return _with_availability(_predictions_only(objectives, rows, case_ids, classes or {}), datamodule)
    survival = _primary_survival(objectives)
    if survival is not None:
        preds = predictions_frame(rows[survival], case_ids, fold)
        # outcomes from the cohort table by case_id (the batch carries the same float64 values)
        truth = datamodule.full_cohort.rows(preds["case_id"].tolist())
        preds["time"], preds["event"] = (
            truth["time"].to_numpy(float),
            truth["event"].to_numpy(bool).astype(int),
        )
    else:
        index = set()
        for name, r in rows.items():
            if len(r.get("index", ())):
                slide = getattr(objectives[name], "level", "patient") == "slide"
                index |= {int(i) for i in (r["index"] // SLIDE_STRIDE if slide else r["index"])}
        index = sorted(index)
        preds = pd.DataFrame({"case_id": [case_ids[i] for i in index], "fold": fold})
    for name, objective in objectives.items():
        if isinstance(objective, HorizonObjective) and len(rows[name]):
            frame = pd.DataFrame({"case_id": [case_ids[i] for i in rows[name]["index"]]})
            for j, h in enumerate(objective.horizons):  # P(event by h)
                frame[f"{name}_p_{h:g}"] = rows[name]["probs"][:, j]
            preds = preds.merge(frame, on="case_id", how="left")
        if (
            not isinstance(objective, ClassificationObjective)
            or objective.level != "patient"
            or not len(rows[name])
        ):
            continue
        if (
            objective.label in preds.columns
        ):  # another objective on the same head (e.g. HMF's CE + focal): same columns
            continue
        r = rows[name]
        names = list((classes or {}).get(str(objective.label)) or []) or _class_names(
            datamodule, objective.label, r["probs"].shape[1]
        )
        frame = pd.DataFrame(
            {
                "case_id": [case_ids[i] for i in r["index"]],
                objective.label: [names[i] for i in r["label"]],
                f"{objective.label}_pred": [names[i] for i in r["probs"].argmax(1)],
            }
        )
        for j, c in enumerate(names):
            frame[f"{objective.label}_prob_{c}"] = r["probs"][:, j]
        preds = preds.merge(frame, on="case_id", how="left")
    return _with_availability(preds, datamodule)


def _with_availability(preds: pd.DataFrame, datamodule: Any) -> pd.DataFrame:
    """`preds` with an `availability` column (each patient's modality pattern, `datamodule.availability`; "?" for a
    patient it does not name) after `fold` (or `case_id`) when the data module has patterns; else unchanged."""
    availability = getattr(datamodule, "availability", None) or {}
    if not availability:
        return preds
    at = preds.columns.get_loc("fold" if "fold" in preds.columns else "case_id") + 1
    preds.insert(at, "availability", [availability.get(str(c), "?") for c in preds["case_id"]])
    return preds


def _predictions_only(
    objectives: Mapping[str, Any],
    rows: Mapping[str, dict[str, np.ndarray]],
    case_ids: list[str],
    classes: Mapping[str, list[str]],
) -> pd.DataFrame:
    """predictions.csv of a cohort without outcomes (see `predictions_table`): every scored patient once."""
    import torch

    pieces = [np.asarray(r["index"], int) for r in rows.values() if len(r.get("index", ()))]
    index = np.unique(np.concatenate(pieces)) if pieces else np.zeros(0, int)
    frame = pd.DataFrame({"case_id": [case_ids[i] for i in index]})

    def aligned(r: dict[str, np.ndarray], values: np.ndarray) -> np.ndarray:
        """`values` of `r`'s rows on the frame's rows (NaN / None where an objective has no row)."""
        if np.array_equal(np.asarray(r["index"], int), index):
            return values
        out = np.full(
            len(index),
            None if values.dtype == object else np.nan,
            dtype=values.dtype if values.dtype == object else float,
        )
        out[np.searchsorted(index, np.asarray(r["index"], int))] = values
        return out

    for name, o in objectives.items():
        r = rows.get(name) or {}
        if not len(r.get("index", ())):
            continue
        if isinstance(o, SurvivalObjective):
            frame["risk" if o.endpoint is None else f"{name}_risk"] = aligned(r, r["risk"])
            if o.endpoint is None and "hazard_logits" in r:
                logits = torch.as_tensor(r["hazard_logits"])
                hazards, surv = torch.sigmoid(logits).numpy(), survival_from_hazard_logits(logits).numpy()
                for k in range(hazards.shape[1]):
                    frame[f"hazard_{k}"] = aligned(r, hazards[:, k])
                for k in range(surv.shape[1]):
                    frame[f"surv_{k}"] = aligned(r, surv[:, k])
        elif isinstance(o, HorizonObjective):
            for j, horizon in enumerate(o.horizons):
                frame[f"{name}_p_{horizon:g}"] = aligned(r, r["probs"][:, j])
        elif isinstance(o, ClassificationObjective) and o.level == "patient":
            if f"{o.label}_pred" in frame.columns:  # another objective on the same head: same columns
                continue
            names = list(classes.get(str(o.label)) or [str(i) for i in range(r["probs"].shape[1])])
            frame[f"{o.label}_pred"] = aligned(
                r, np.asarray([names[i] for i in r["probs"].argmax(1)], dtype=object)
            )
            for j, c in enumerate(names):
                frame[f"{o.label}_prob_{c}"] = aligned(r, r["probs"][:, j])
    return frame.sort_values("case_id", kind="stable").reset_index(drop=True)


def write_predictions(table: pd.DataFrame, out_dir: Path) -> Path:
    """THE writer of predictions.csv (a run's test fold, a re-scored fold, an external cohort, predictions only)."""
    path = out_dir / "predictions.csv"
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return path
