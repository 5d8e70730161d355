"""Metric parity with scikit-survival (tied times and tied risks), conventions and undefined cases."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from sksurv.metrics import (
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
)
from sksurv.metrics import integrated_brier_score as sk_ibs
from sksurv.util import Surv

from survlab.eval.metrics import (
    breslow_survival,
    default_eval_times,
    harrell_cindex,
    integrated_brier_score,
    survival_at_times,
    survival_metrics,
    time_dependent_auc,
    uno_cindex,
)

TOL = 1e-4
SEEDS = [0, 1, 2, 3]


def _cohorts(seed: int, n: int = 100) -> dict[str, np.ndarray]:
    """Integer times (many ties, events and censorings at the same time) and risks on a coarse grid (tied risks).
    Training follow-up extends past the test follow-up so IPCW is defined at every test time."""
    rng = np.random.default_rng(seed)
    test_time = rng.integers(1, 30, n).astype(float)
    test_event = rng.random(n) < 0.6
    risk = rng.integers(0, 8, n) / 3 - 0.1 * (test_time > 15)  # tied risks, mildly informative
    train_time = rng.integers(1, 40, 2 * n).astype(float)
    train_event = rng.random(2 * n) < 0.6
    train_time[0], train_event[0] = 45.0, True  # last training time is an event: G > 0 everywhere
    return {"risk": risk, "t": test_time, "e": test_event, "tt": train_time, "te": train_event}


def _surv(d: dict, test: bool = True) -> np.ndarray:
    return Surv.from_arrays(d["e"], d["t"]) if test else Surv.from_arrays(d["te"], d["tt"])


@pytest.mark.parametrize("seed", SEEDS)
def test_harrell_matches_sksurv(seed: int) -> None:
    d = _cohorts(seed)
    assert len(np.unique(d["risk"])) < 20 and len(np.unique(d["t"])) < 30  # ties really are present
    expected = concordance_index_censored(d["e"], d["t"], d["risk"])[0]
    assert harrell_cindex(
        torch.tensor(d["risk"]), torch.tensor(d["t"]), torch.tensor(d["e"])
    ) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("tau", [None, 12.0, 20.5])
def test_uno_matches_sksurv(seed: int, tau: float | None) -> None:
    d = _cohorts(seed)
    expected = concordance_index_ipcw(_surv(d, False), _surv(d), d["risk"], tau=tau)[0]
    assert uno_cindex(d["risk"], d["t"], d["e"], d["tt"], d["te"], tau=tau) == pytest.approx(
        expected, abs=TOL
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_td_auc_matches_sksurv(seed: int) -> None:
    d = _cohorts(seed)
    times = np.array([3.0, 7.5, 12.0, 20.0, 25.0])
    exp_auc, exp_mean = cumulative_dynamic_auc(_surv(d, False), _surv(d), d["risk"], times)
    auc, mean = time_dependent_auc(d["risk"], d["t"], d["e"], d["tt"], d["te"], times)
    np.testing.assert_allclose(auc, exp_auc, atol=TOL)
    assert mean == pytest.approx(exp_mean, abs=TOL)


def _discrete_model_survival(d: dict, times: np.ndarray) -> np.ndarray:
    edges = np.array([0.0, 5.0, 10.0, 18.0, 50.0])
    logits = -1.5 + d["risk"][:, None] + np.array([0.0, 0.3, 0.1, -0.2])[None, :]
    return survival_at_times(logits, edges, times)


@pytest.mark.parametrize("seed", SEEDS)
def test_ibs_matches_sksurv_with_discrete_time_curves(seed: int) -> None:
    d = _cohorts(seed)
    times = default_eval_times(d["t"], d["e"], d["tt"], d["te"])
    surv = _discrete_model_survival(d, times)
    expected = sk_ibs(_surv(d, False), _surv(d), surv, times)
    assert integrated_brier_score(surv, d["t"], d["e"], d["tt"], d["te"], times) == pytest.approx(
        expected, abs=TOL
    )


def test_survival_metrics_matches_individual_metrics() -> None:
    d = _cohorts(5)
    times = default_eval_times(d["t"], d["e"], d["tt"], d["te"])
    surv = _discrete_model_survival(d, times)
    out = survival_metrics(d["risk"], d["t"], d["e"], d["tt"], d["te"], surv_at_times=surv, eval_times=times)
    assert out["cindex"] == pytest.approx(concordance_index_censored(d["e"], d["t"], d["risk"])[0], abs=TOL)
    assert out["cindex_uno"] == pytest.approx(
        concordance_index_ipcw(_surv(d, False), _surv(d), d["risk"])[0], abs=TOL
    )
    assert out["auc_td"] == pytest.approx(
        cumulative_dynamic_auc(_surv(d, False), _surv(d), d["risk"], times)[1], abs=TOL
    )
    assert out["ibs"] == pytest.approx(sk_ibs(_surv(d, False), _surv(d), surv, times), abs=TOL)
    assert (out["n"], out["n_events"]) == (100.0, float(d["e"].sum()))
    assert "ibs" not in survival_metrics(d["risk"], d["t"], d["e"], d["tt"], d["te"])


def test_default_eval_times_are_valid_for_sksurv() -> None:
    d = _cohorts(6)
    d["tt"] = d["tt"].clip(max=28.0)  # training follow-up ends before the test follow-up
    times = default_eval_times(d["t"], d["e"], d["tt"], d["te"])
    assert 2 <= len(times) <= 10 and np.all(np.diff(times) > 0)
    assert times[0] > max(d["t"].min(), d["tt"].min()) and times[-1] < min(d["t"].max(), d["tt"].max())
    expected = np.quantile(d["t"][d["e"]], 0.1)
    assert times[0] == pytest.approx(max(expected, np.nextafter(1.0, 2.0)))
    assert not np.isnan(time_dependent_auc(d["risk"], d["t"], d["e"], d["tt"], d["te"], times)[1])


def test_undefined_metrics_are_nan_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    t, e, r = np.array([1.0, 2.0, 3.0]), np.array([False, False, False]), np.array([0.1, 0.2, 0.3])
    with caplog.at_level(logging.WARNING):
        out = survival_metrics(r, t, e, t, np.array([True, False, True]))
    assert np.isnan(out["cindex"]) and np.isnan(out["cindex_uno"]) and np.isnan(out["auc_td"])
    assert "no comparable pairs" in caplog.text and out["n_events"] == 0.0
    # all events at one time: no pair with T_i < T_j
    assert np.isnan(harrell_cindex([0.1, 0.2], [5.0, 5.0], [True, True]))
    # td-AUC at a time with no cases yet: NaN at that time only
    t, e, r = (
        np.array([2.0, 3, 4, 5, 6]),
        np.array([False, True, True, False, True]),
        np.array([0.0, 3, 2, 1, 0]),
    )
    auc, mean = time_dependent_auc(
        r, t, e, np.array([1.0, 2, 3, 10]), np.array([True, False, True, True]), [2.5, 4.5]
    )
    assert np.isnan(auc[0]) and auc[1] == pytest.approx(1.0) and np.isnan(mean)
    d = _cohorts(0)
    assert np.isnan(integrated_brier_score(np.ones((100, 1)), d["t"], d["e"], d["tt"], d["te"], [10.0]))


def test_uno_nan_when_censoring_survival_hits_zero() -> None:
    train_t, train_e = np.array([1.0, 2.0, 3.0, 4.0]), np.array([True, True, False, False])  # G(4) = 0
    t, e, r = np.array([1.0, 4.0, 5.0]), np.array([True, True, False]), np.array([3.0, 2.0, 1.0])
    assert np.isnan(uno_cindex(r, t, e, train_t, train_e))
    assert uno_cindex(r, t, e, train_t, train_e, tau=3.5) == pytest.approx(1.0)


def test_survival_at_times_convention() -> None:
    logits = torch.zeros(1, 2)  # h = 0.5 in both bins -> S_0 = 0.5, S_1 = 0.25
    got = survival_at_times(logits, [0.0, 10.0, 20.0], [0.0, 5.0, 9.99, 10.0, 15.0, 20.0, 99.0])
    np.testing.assert_allclose(got, [[1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]])
    two = survival_at_times(np.array([[0.0, 0.0], [np.log(3), 0.0]]), [0.0, 10.0, 20.0], [12.0])
    np.testing.assert_allclose(two[:, 0], [0.5, 0.25])  # sigmoid(log 3) = 0.75


def test_breslow_survival_matches_sksurv_cox() -> None:
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2))
    time = rng.integers(1, 25, 120).astype(float)
    event = rng.random(120) < 0.7
    model = CoxPHSurvivalAnalysis(ties="breslow").fit(x, Surv.from_arrays(event, time))
    x_new = rng.normal(size=(7, 2)) * 2
    times = np.array([1.0, 3.5, 10.0, 24.0])
    expected = np.stack([fn(times) for fn in model.predict_survival_function(x_new)])
    got = breslow_survival(
        x @ model.coef_ + 7.0, time, event, x_new @ model.coef_ + 7.0, times
    )  # shift-invariant
    np.testing.assert_allclose(got, expected, atol=TOL)
    assert not np.allclose(got[:, 0], 1.0)
    before_first = breslow_survival(x @ model.coef_, time, event, x_new @ model.coef_, [0.5])
    assert before_first[:, 0].tolist() == [1.0] * 7  # S = 1 before the first event time


def test_harrell_chunked_path_matches_sksurv_for_5000_patients() -> None:
    """n = 5000 goes through the chunked O(n^2) path; it must still equal scikit-survival exactly."""
    rng = np.random.default_rng(0)
    t = np.round(rng.random(5000) * 50, 1)  # many tied times
    e = rng.random(5000) < 0.5
    r = np.round(rng.random(5000), 2)  # many tied risks
    expected = concordance_index_censored(e, t, r)[0]
    assert harrell_cindex(r, t, e) == pytest.approx(expected, abs=1e-6)
