"""Risk-group cutoffs for the KM figures, fitted on the fold's TRAINING patients with the selected model.

A run's test patients are put in risk groups by cutoffs (median, or tertiles: `km_groups`) of the predicted risks of
the training patients of the same outer fold — the inner-train AND inner-validation patients, never the test fold —
predicted by the selected (tested) weights. So a test patient's group does not depend on who else is in the test
fold, and an external cohort is grouped by the same numbers as the internal test fold.

    cutoffs = training_cutoffs(task, datamodule, "median")   # {objective name: np.ndarray of cutoffs}
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from survlab.metrics.km import risk_cutoffs
from survlab.tasks.objectives import SurvivalObjective

log = logging.getLogger("survlab.run")

__all__ = ["training_risks", "training_cutoffs"]


def training_risks(task: Any, datamodule: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per survival objective of `task` (its current weights): (row index in `datamodule.full_cohort` [n], predicted
    risk [n]) of the fold's training patients (`train_eval_dataloader` + `val_dataloader`, each patient once,
    sorted by index); {} when the data module has no training part (e.g. an external cohort)."""
    objectives = {n: o for n, o in task.objectives.items() if isinstance(o, SurvivalObjective)}
    datasets = getattr(datamodule, "datasets", None) or {}
    if not objectives or "train" not in datasets:
        return {}
    loaders = [datamodule.train_eval_dataloader()]
    if "val" in datasets and len(datasets["val"]):
        loaders.append(datamodule.val_dataloader())
    rows: dict[str, dict[int, float]] = {n: {} for n in objectives}
    was_training = task.training
    task.eval()
    try:
        with torch.no_grad():
            for loader in loaders:
                for batch in loader:
                    batch = batch.to(task.device)
                    pred = task(batch)
                    for name, objective in objectives.items():
                        out = objective.collect(pred, batch)
                        for i, r in zip(out["index"].tolist(), out["risk"].cpu().tolist(), strict=True):
                            rows[name][int(i)] = float(r)
    finally:
        task.train(was_training)
    return {
        n: (np.array(sorted(r), dtype=int), np.array([r[i] for i in sorted(r)], dtype=float))
        for n, r in rows.items()
        if r
    }


def training_cutoffs(task: Any, datamodule: Any, method: str = "median") -> dict[str, np.ndarray]:
    """Risk-group cutoffs (`survlab.metrics.km.risk_cutoffs`) per survival objective, fitted on `training_risks`."""
    out = {}
    for name, (_, risk) in training_risks(task, datamodule).items():
        out[name] = risk_cutoffs(risk, method)  # type: ignore[arg-type]
        log.debug("KM %s cutoffs %s from %d training patients", name, out[name], len(risk))
    return out
