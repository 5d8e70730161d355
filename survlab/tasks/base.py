"""The task protocol: what every task class (the LightningModule a job trains) declares, so the runner and the config
checks never tell task kinds apart by duck typing (`hasattr(task, ...)`).

A task class declares, on the class (read from the config before any data is loaded):
- `config_metric_names(options)`: the metric names (without `val/` / `test/`) a job with this `model.task` node
  reports, "loss" first;
- `config_primary_metric(options)`: its headline metric (`monitor: auto` -> `val/<it>`);
- `config_metric_mode(options, metric)`: "max" or "min" for one of those metrics;
- `REPORTER`: the dotted path of the function in `survlab/report/` that writes a finished run's outputs,
  `(cfg, out_dir, task, datamodule, trainer, ckpt, wall_s=...) -> metrics` (a name, resolved by the runner: tasks sit
  below the report layer); None = the task is a pipeline stage, not a job of its own;
- `FITTED_PREPROCESSING`: the run writes the preprocessing fitted on its training patients (preprocessing.json) and
  can be applied to an external cohort (`external_data=`);
and, on the instance, `fit_references(fitted)` (training-fold quantities from the fold's FoldPreprocessing, called before fitting) and
`test_metrics` ({metric: value} after `trainer.test`).

Example:
    >>> class MyTask(Task):
    ...     METRICS, PRIMARY_METRIC, MODES = ("dice", "fp"), "dice", {"fp": "min"}
    >>> MyTask.config_metric_names({}), MyTask.config_primary_metric({}), MyTask.config_metric_mode({}, "fp")
    (['loss', 'dice', 'fp'], 'dice', 'min')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import lightning as L


class Task(L.LightningModule):
    """Base of every task class; subclasses set the class attributes below or override the `config_*` methods
    (OutcomeTask derives its metrics from its objectives)."""

    #: metric names besides "loss" (tasks with a fixed set; OutcomeTask computes them from its objectives)
    METRICS: ClassVar[tuple[str, ...]] = ()
    #: the headline metric (`monitor: auto`)
    PRIMARY_METRIC: ClassVar[str] = "loss"
    #: metric -> "min" for metrics where lower is better ("loss" always is); the rest are "max"
    MODES: ClassVar[dict[str, str]] = {}
    #: dotted path of the writer in survlab/report/ (None: a pipeline stage with no outputs of its own)
    REPORTER: ClassVar[str | None] = None
    #: the run writes preprocessing.json and can be evaluated on an external cohort
    FITTED_PREPROCESSING: ClassVar[bool] = False

    test_metrics: dict[str, float]

    @classmethod
    def config_metric_names(cls, options: Mapping[str, Any]) -> list[str]:
        """Metric names (without val/ or test/) a job with the task node `options` reports."""
        return ["loss", *cls.METRICS]

    @classmethod
    def config_primary_metric(cls, options: Mapping[str, Any]) -> str:
        """The metric `monitor: auto` selects on (without val/)."""
        return cls.PRIMARY_METRIC

    @classmethod
    def config_metric_mode(cls, options: Mapping[str, Any], metric: str) -> str:
        """'max' or 'min' for a metric name (without val/)."""
        leaf = metric.rsplit("/", 1)[-1]
        return "min" if leaf == "loss" else cls.MODES.get(leaf, "max")

    def fit_references(self, fitted: Any) -> None:  # noqa: B027 - optional hook
        """Training-fold quantities the task needs from the fold's FoldPreprocessing (None for a task without
        FITTED_PREPROCESSING); nothing by default. Called once the data module is set up."""


def target_class(target: Any, key: str) -> type:
    """The class a `_target_` names; an unimportable one is a one-line ValueError naming `key`."""
    import hydra

    try:
        return hydra.utils.get_class(str(target))
    except Exception as err:  # noqa: BLE001 - any import problem is a config problem here
        raise ValueError(f"{key}._target_={target}: cannot import it ({str(err).splitlines()[0]})") from None


__all__ = ["Task", "target_class"]
