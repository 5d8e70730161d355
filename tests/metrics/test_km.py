"""Kaplan–Meier and log-rank against lifelines; risk groups and their cutoffs (the KM figure: tests/report/test_km_figure.py)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from helpers.km_data import km_data as _data
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test as ll_logrank
from lifelines.statistics import multivariate_logrank_test

from survlab.metrics.km import (
    kaplan_meier,
    logrank_test,
    risk_cutoffs,
    risk_groups,
)


@pytest.mark.parametrize("seed", [0, 1])
def test_kaplan_meier_matches_lifelines(seed: int) -> None:
    time, event, _ = _data(seed)
    times, surv = kaplan_meier(torch.tensor(time), torch.tensor(event))
    np.testing.assert_array_equal(times, np.unique(time[event]))
    expected = KaplanMeierFitter().fit(time, event).survival_function_at_times(times).to_numpy()
    np.testing.assert_allclose(surv, expected, atol=1e-10)


def test_kaplan_meier_small_example() -> None:
    times, surv = kaplan_meier([1, 2, 2, 3], [1, 1, 0, 1])
    np.testing.assert_allclose(times, [1, 2, 3])
    np.testing.assert_allclose(surv, [0.75, 0.5, 0.0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_logrank_two_groups_matches_lifelines(seed: int) -> None:
    time, event, groups = _data(seed)
    two = (groups > 0).astype(int)
    chi2, p = logrank_test(time, event, two)
    ref = ll_logrank(time[two == 0], time[two == 1], event[two == 0], event[two == 1])
    assert chi2 == pytest.approx(ref.test_statistic, rel=1e-8)
    assert p == pytest.approx(ref.p_value, rel=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_logrank_three_groups_matches_lifelines(seed: int) -> None:
    time, event, groups = _data(seed)
    chi2, p = logrank_test(time, event, groups)
    ref = multivariate_logrank_test(time, groups, event)
    assert chi2 == pytest.approx(ref.test_statistic, rel=1e-8)
    assert p == pytest.approx(ref.p_value, rel=1e-6)


def test_logrank_undefined_is_nan(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert np.isnan(logrank_test([1.0, 2.0, 3.0], [False, False, False], [0, 1, 1])[1])
        assert np.isnan(logrank_test([1.0, 2.0, 3.0], [True, True, False], [0, 0, 0])[0])
    assert "log-rank test undefined" in caplog.text


def test_risk_groups() -> None:
    np.testing.assert_array_equal(risk_groups([0.1, 2.0, 0.5, 3.0], "median"), [0, 1, 0, 1])
    groups = risk_groups(np.arange(9.0), "tertiles")
    np.testing.assert_array_equal(np.bincount(groups), [3, 3, 3])
    assert groups[0] == 0 and groups[-1] == 2
    with pytest.raises(ValueError, match="median"):
        risk_groups([1.0, 2.0], "quartiles")  # type: ignore[arg-type]


def test_bad_cutoffs_are_refused() -> None:
    with pytest.raises(ValueError, match="needs 2 cutoff"):
        risk_groups([0.1, 0.2], "tertiles", [0.0])
    with pytest.raises(ValueError, match="no finite risk"):
        risk_cutoffs([np.nan, np.nan])
