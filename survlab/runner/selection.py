"""Warn when the selected checkpoint's inner-validation metric is below chance (a model that ranks validation
patients worse than a coin: under-trained, diverged or mis-specified), instead of testing it silently.

Chance levels: C-index (Harrell / Uno), time-dependent AUC, AUROC, horizon AUC = 0.5; balanced accuracy = 1 / K
for a K-class label. Other metrics (losses, Brier, F1, kappa, ...) have no fixed chance level and are not checked.
"""

from __future__ import annotations

from typing import Any

HALF = ("cindex", "cindex_uno", "auc_td", "auroc", "auc_mean")


def chance_level(monitor: str, task: Any) -> float | None:
    """Chance value of the monitored metric (`val/cindex`, `val/grade/balanced_accuracy`, ...), or None."""
    parts = str(monitor).split("/")
    metric = parts[-1]
    if metric in HALF or metric.startswith("auc_"):
        return 0.5
    if metric != "balanced_accuracy":
        return None
    objectives = getattr(task, "objectives", None)  # an nn.ModuleDict (no .get) or a plain dict
    named = parts[1] if len(parts) == 3 else None
    objective = (
        (objectives[named] if objectives is not None and named in objectives else None)
        if named is not None
        else getattr(task, "primary", None)
    )
    label = getattr(objective, "label", None)
    dims = getattr(getattr(task, "net", None), "dims", None)
    if label is None or dims is None:
        return None
    k = (dims.slide_n_classes if getattr(objective, "level", "patient") == "slide" else dims.n_classes).get(
        label
    )
    return 1.0 / k if k else None


def selection_warning(monitor: str, mode: str, value: float | None, task: Any) -> str | None:
    """One line naming the metric, its value and what to try when the selected checkpoint is below chance on the
    inner validation split (only for metrics maximised with a known chance level), else None."""
    chance = chance_level(monitor, task)
    if value is None or chance is None or mode != "max" or value != value or value >= chance:
        return None
    return (
        f"the selected checkpoint's inner-validation {monitor} is {value:.3f}, below chance ({chance:.3f}): the model "
        f"ranks validation patients worse than random; train longer (trainer.max_epochs, "
        f"callbacks.early_stopping.patience), raise model.task.lr or data.batch_size, use a smaller network (on a "
        f"table cohort: the settings of experiment=clinical_mlp_gse7390 / _tabular) or compare with model=coxnet "
        f"before trusting its test metrics"
    )


def small_split_line(selection: str, datamodule: Any) -> str | None:
    """The one-line warning (`survlab.data.cohort.split_sizes.small_split_warning`) when the set-up fold of `datamodule` is too
    small for `selection` (best_val: the validation part) or for a test log-rank test; None when it is not."""
    from survlab.data.cohort.split_sizes import small_split_warning

    sizes = getattr(datamodule, "split_sizes", None)
    if not sizes:
        return None
    folds = int((getattr(datamodule, "split_meta", None) or {}).get("folds") or datamodule.split_cfg["folds"])
    line = small_split_warning(sizes, folds, selection, bool(getattr(datamodule, "has_survival", True)))
    return None if line is None else f"data={datamodule.name} fold {datamodule.fold}: {line}"
