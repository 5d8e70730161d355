"""Objectives: one head of a network's `Prediction` each, with its loss on a batch and its metrics on the gathered
per-patient predictions. A task is a weighted set of objectives (survival per endpoint, patient- or slide-level
classification) plus the network's auxiliary losses; a one-endpoint survival run is the one-objective case.

Every objective:
- `loss(pred, batch, eval_mode)` -> scalar or None (None: no labelled patient in the batch; missing labels and
  missing endpoint values are masked out, never imputed);
- `collect(pred, batch)` -> per-row tensors for evaluation (`index` identifies the row for DDP de-duplication);
- `score(rows)` -> metrics; `metric_names`, `primary_metric` and `mode` say what it reports (an objective whose
  metric names depend on its options, like the horizons of `HorizonObjective`, lists generic names on the class and
  the exact ones on the instance and in `config_metric_names(options)`);
- `fit_reference(fitted)` reads what it needs from the fold's fitted preprocessing (`survlab.data.fitted.
  FoldPreprocessing`: bin edges, training outcomes, class counts), never from the data module.

Example (YAML, `model.task`):
    objectives:
      grade: {_target_: survlab.tasks.objectives.ClassificationObjective, label: grade, loss: focal}
      os: {_target_: survlab.tasks.objectives.SurvivalObjective, loss: nll, alpha: 0.5}
      os_horizons: {_target_: survlab.tasks.objectives.HorizonObjective, horizons: [12, 36, 60]}

The classes live in objective_base.py (Objective, SURVIVAL_METRICS, SLIDE_STRIDE), objective_survival.py,
objective_classification.py and objective_horizon.py; this module is the dotted path that YAML `_target_`s and
saved job.json files name (survlab.tasks.objectives.<Class>), so it imports the three objective classes and
nothing else. Code imports them from their homes.
"""

from __future__ import annotations

from survlab.tasks.objective_classification import ClassificationObjective
from survlab.tasks.objective_horizon import HorizonObjective
from survlab.tasks.objective_survival import SurvivalObjective

__all__ = ["SurvivalObjective", "ClassificationObjective", "HorizonObjective"]
