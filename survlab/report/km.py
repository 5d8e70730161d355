"""Risk-group cutoffs for the KM figures, fitted on the fold's TRAINING patients with the selected model.

A run's test patients are put in risk groups by cutoffs (median, or tertiles: `km_groups`) of the predicted risks of
the training patients of the same outer fold — the inner-train AND inner-validation patients, never the test fold —
predicted by the selected (tested) weights: their rows of the run's one prediction pass (survlab.runner.predict),
nothing here runs the network. So a test patient's group does not depend on who else is in the test fold, and an
external cohort is grouped by the same numbers as the internal test fold.

    cutoffs = training_cutoffs(task.objectives, [rows["train"], rows["val"]], "median")  # {objective: cutoffs}
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from survlab.metrics.km import risk_cutoffs
from survlab.report.rows import PatientRows, merged
from survlab.tasks.objectives import SurvivalObjective

log = logging.getLogger("survlab.run")

__all__ = ["training_risks", "training_cutoffs"]


def training_risks(
    objectives: Mapping[str, Any], parts: Sequence[PatientRows | None]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per survival objective: (row index in the full cohort [n], predicted risk [n]) of the training patients'
    rows `parts` (inner-train, inner-validation: their rows of the run's one prediction pass), each patient once,
    sorted by index; {} without training rows (e.g. an external cohort's data module)."""
    rows = merged(*parts)
    out = {}
    for name, objective in objectives.items():
        r = rows.get(name)
        if not isinstance(objective, SurvivalObjective) or r is None:
            continue
        out[name] = (r["index"].astype(int), r["risk"].astype(float))
    return out


def training_cutoffs(
    objectives: Mapping[str, Any], parts: Sequence[PatientRows | None], method: str = "median"
) -> dict[str, np.ndarray]:
    """Risk-group cutoffs (`survlab.metrics.km.risk_cutoffs`) per survival objective, fitted on `training_risks`."""
    out = {}
    for name, (_, risk) in training_risks(objectives, parts).items():
        out[name] = risk_cutoffs(risk, method)  # type: ignore[arg-type]
        log.debug("KM %s cutoffs %s from %d training patients", name, out[name], len(risk))
    return out
