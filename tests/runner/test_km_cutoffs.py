"""Another cohort's KM risk groups are cut at the run's TRAINING cutoffs for every survival objective (primary and
secondary endpoints), never at the scored cohort's own quantiles (survlab.runner.eval_cohort.run_km_cutoffs). No
training: a stub task and planted risks, the hazard ratio checked against lifelines."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter

from survlab.report.subgroups import survival_figures
from survlab.runner.eval_cohort import run_km_cutoffs
from survlab.tasks.objective_classification import ClassificationObjective
from survlab.tasks.objective_survival import SurvivalObjective


class _Task(dict):
    """A task stub: its objectives (name -> Objective), also readable as `task.objectives`."""

    @property
    def objectives(self) -> dict:
        return self


def _task() -> _Task:
    return _Task(
        os=SurvivalObjective(loss="cox"),
        dfs=SurvivalObjective(endpoint="dfs", loss="cox"),
        subtype=ClassificationObjective(label="subtype"),
    )


def test_every_survival_objective_is_cut_at_its_training_cutoffs() -> None:
    """MM-DLS (os + dfs) scored on another cohort: before, only the primary objective's cutoffs were recorded and
    read back, so the dfs KM groups and HR of the external cohort were cut at that cohort's own median."""
    task = _task()
    run = {"km_cutoffs": [0.1], "km_cutoffs_by_objective": {"os": [0.1], "dfs": [2.0]}}
    cuts = run_km_cutoffs(run, task, "run/metrics.json")
    assert sorted(cuts) == ["dfs", "os"]
    np.testing.assert_array_equal(cuts["dfs"], [2.0])
    np.testing.assert_array_equal(cuts["os"], [0.1])

    # the dfs hazard ratio of the scored cohort: high = risk above the TRAINING cutoff 2.0 (lifelines on that split),
    # not above the scored cohort's own median (about 0 here)
    rng = np.random.default_rng(3)
    n = 120
    risk = rng.normal(0, 2, n)
    time = rng.exponential(np.exp(-0.5 * risk)) * 10
    event = rng.random(n) < 0.7
    objective = task.objectives["dfs"]
    objective.train_time, objective.train_event = time, event
    rows = {"risk": risk, "time": time, "event": event}
    out = survival_figures(objective, rows, [], "median", None, cutoffs=cuts["dfs"])
    df = pd.DataFrame({"high": (risk > 2.0).astype(float), "T": time, "E": event.astype(int)})
    ref = float(np.exp(CoxPHFitter().fit(df, "T", "E").params_["high"]))
    assert out["hr_high_vs_low"] == pytest.approx(ref)
    own = survival_figures(
        objective, rows, [], "median", None, cutoffs=None
    )  # the scored cohort's own median
    assert own["hr_high_vs_low"] != pytest.approx(ref)


def test_an_older_run_cuts_secondary_objectives_at_the_scored_cohort_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = _task()
    with caplog.at_level(logging.WARNING, logger="survlab.runner.evaluate"):
        cuts = run_km_cutoffs({"km_cutoffs": [0.1]}, task, "old/metrics.json")
    assert list(cuts) == ["os"]
    assert "old/metrics.json records no KM cutoffs of dfs (an older run)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="survlab.runner.evaluate"):
        assert run_km_cutoffs({}, task, "older/metrics.json") == {}
    assert "older/metrics.json records no km_cutoffs" in caplog.text
