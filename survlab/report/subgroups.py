"""Test metrics overall and per patient subgroup (e.g. treatment), plus the survival figures MM-DLS reports.

For the whole test set ("all") and for every value of each subgroup column (`data.subgroups`, e.g. treatment:
immunotherapy / chemotherapy), every patient-level objective of the task is scored on exactly those patients' rows
with the objective's own `score` (so a subgroup's C-index / AUC is the overall metric computed on that subset), and
for every survival objective:

- ``auc_<t>``: cumulative/dynamic IPCW time-dependent AUC at fixed times ``eval_times`` (e.g. 12 / 24 / 36 months),
  censoring distribution from the fold's TRAINING patients; NaN at a time at or past the training patients' last
  follow-up (the censoring weights end there), recorded as ``ipcw_followup`` / ``n_auc_times_past_followup``;
- ``km_logrank_p``: log-rank test across risk tertiles (or median groups, ``km_groups``) and a KM plot
  ``km_<objective>_<group>.png``;
- ``hr_high_vs_low`` (+ ``hr_ci_low`` / ``hr_ci_high``, ``hr_p``): hazard ratio of the highest vs the lowest risk
  group from a lifelines Cox model with one indicator covariate, fitted on the patients of those two groups.

`subgroup_report` returns flat keys ``<group>/<objective>/<metric>`` (group "all" or "<column>=<value>") and writes
``subgroups.csv`` (one row per group x objective x metric).

Example:
    >>> subgroup_report(task.objectives, rows, datamodule, out_dir, eval_times=[12, 24, 36])["treatment=immunotherapy/os/cindex"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from survlab.metrics.km import hazard_ratio  # re-exported
from survlab.metrics.survival import time_dependent_auc, train_followup
from survlab.report.groups import MIN_SITE_EVENTS, site_report  # re-exported: one group metric, groups.py
from survlab.report.km import plot_km_by_risk
from survlab.tasks.objective_survival import SurvivalObjective
from survlab.utils.files import atomic_path

log = logging.getLogger(__name__)


def _subset(rows: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[keep] for k, v in rows.items()}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def survival_figures(
    objective: SurvivalObjective,
    rows: dict[str, np.ndarray],
    eval_times: Sequence[float],
    km_method: Literal["median", "tertiles"],
    km_path: Path | None,
    title: str = "",
    cutoffs: Any = None,
    time_unit: str = "months",
) -> dict[str, float]:
    """td-AUC at `eval_times`, log-rank p across risk groups (+ KM plot at `km_path`) and the high-vs-low HR of one
    survival objective's rows (risk, time, event); groups cut at `cutoffs` (training patients) when given."""
    ok = np.isfinite(rows["time"])
    risk, time, event = rows["risk"][ok], rows["time"][ok].astype(float), rows["event"][ok].astype(bool)
    out: dict[str, float] = {}
    if eval_times:
        aucs, _ = time_dependent_auc(
            risk, time, event, objective.train_time, objective.train_event, eval_times
        )
        times = np.unique(np.asarray(eval_times, dtype=float))
        out.update({f"auc_{t:g}": float(a) for t, a in zip(times, aucs, strict=True)})
        followup = train_followup(objective.train_time)
        if np.any(times >= followup):  # NaN there: the censoring weights end with the training follow-up
            out.update(ipcw_followup=followup, n_auc_times_past_followup=float(np.sum(times >= followup)))
    if len(risk) >= 3 and km_path is not None:
        km = plot_km_by_risk(
            risk, time, event, km_path, method=km_method, title=title, cutoffs=cutoffs, time_unit=time_unit
        )
        out["km_logrank_p"] = float(km["logrank_p"])
    out.update(hazard_ratio(risk, time, event, km_method, cutoffs))
    return out


def subgroup_report(
    objectives: Mapping[str, Any],
    rows: Mapping[str, dict[str, np.ndarray]],
    datamodule: Any,
    out_dir: Path | None,
    eval_times: Sequence[float] | None = None,
    km_method: Literal["median", "tertiles"] = "tertiles",
    prefix: str = "",
    cutoffs: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Metrics of every patient-level objective overall and per subgroup (see module docstring) -> flat dict.
    `rows`: the test patients' rows of the run's one prediction pass (`PatientRows.objectives`). `cutoffs`: objective
    name -> risk-group cutoffs fitted on the training patients (else the groups' own)."""
    table = datamodule.full_cohort.table
    columns = list(getattr(datamodule, "subgroups", []) or [])
    group_of = {col: table[col].astype(object).where(table[col].notna(), None).to_numpy() for col in columns}
    results: dict[str, float] = {}
    records = []
    for name, objective in objectives.items():
        part = rows.get(name, {})
        if not len(part.get("index", ())) or getattr(objective, "level", "patient") != "patient":
            continue
        idx = part["index"].astype(int)
        groups: list[tuple[str, np.ndarray]] = [("all", np.ones(len(idx), dtype=bool))]
        for col in columns:
            values = group_of[col][idx]
            groups += [
                (f"{col}={v}", values == v) for v in sorted({v for v in values if v is not None}, key=str)
            ]
        for group, keep in groups:
            if not keep.any():
                continue
            sub = _subset(part, keep)
            metrics = dict(objective.score(sub)) if group != "all" else {}
            if isinstance(objective, SurvivalObjective):
                km = None if out_dir is None else out_dir / f"km_{_safe(name)}_{_safe(group)}.png"
                metrics.update(
                    survival_figures(
                        objective,
                        sub,
                        list(eval_times or []),
                        km_method,
                        km,
                        title=f"{prefix}{name} · {group}",
                        cutoffs=(cutoffs or {}).get(name),
                        time_unit=str(getattr(datamodule, "time_unit", "months")),
                    )
                )
            for metric, value in metrics.items():
                results[f"{group}/{name}/{metric}"] = float(value)
                records.append({"group": group, "objective": name, "metric": metric, "value": float(value)})
    if out_dir is not None and records:
        with atomic_path(out_dir / "subgroups.csv") as tmp:
            pd.DataFrame(records).to_csv(tmp, index=False)
    return results


__all__ = ["MIN_SITE_EVENTS", "hazard_ratio", "site_report", "subgroup_report", "survival_figures"]
