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

from survlab.metrics.survival import (
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


# ------------------------------------------------------------------ edge-case sweep: eval times at event/censor times
# Heavy ties: integer times 1..8 (x `unit`). unit = 0.1 gives times that float32 cannot represent (like real months,
# 12.3): torchsurv casts `time` to float32 but not `new_time`, so a death at exactly t became a control there.
UNITS = [1.0, 0.1]
TIE_SEEDS = [0, 1, 2, 3, 4]


def _tied(seed: int, unit: float, n: int = 40) -> dict[str, np.ndarray]:
    """Test cohort with integer times 1..8 (x unit), ~60% events, tied risks in {0, .5, 1, 1.5}; a training cohort on
    the same grid whose last time (9 x unit) is an event, so G > 0 wherever sksurv evaluates it."""
    rng = np.random.default_rng(seed)
    test_time = rng.integers(1, 9, n) * unit
    train_time = np.append(rng.integers(1, 9, 2 * n) * unit, 9 * unit)
    train_event = np.append(rng.random(2 * n) < 0.6, True)
    d = {"t": test_time, "e": rng.random(n) < 0.6, "risk": rng.integers(0, 4, n) / 2, "tt": train_time}
    return d | {"te": train_event}


def _in_follow_up(d: dict, times: np.ndarray) -> np.ndarray:
    """The unique `times` sksurv accepts: inside [min test time, max test time)."""
    times = np.unique(times)
    return times[(times >= d["t"].min()) & (times < d["t"].max())]


def _eval_time_sets(d: dict) -> dict[str, np.ndarray]:
    """Eval times equal to event times, to censoring times, to every observed time, and single times."""
    events, censored = _in_follow_up(d, d["t"][d["e"]]), _in_follow_up(d, d["t"][~d["e"]])
    shared = np.intersect1d(events, censored)  # an event and a censoring at the same time
    assert len(shared) > 0 and len(events) >= 2 and len(censored) >= 2  # the edge cases really occur
    sets = {"events": events, "censorings": censored, "all": _in_follow_up(d, d["t"]), "shared": shared}
    return sets | {f"single_{s:g}": np.array([s]) for s in (events[0], censored[-1], shared[0])}


def _sk_auc(d: dict, times: np.ndarray) -> tuple[np.ndarray, float]:
    with np.errstate(invalid="ignore", divide="ignore"):
        return cumulative_dynamic_auc(_surv(d, False), _surv(d), d["risk"], times)


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("seed", TIE_SEEDS)
def test_td_auc_matches_sksurv_when_eval_times_are_observed_times(seed: int, unit: float) -> None:
    d = _tied(seed, unit)
    n_defined = 0
    for name, times in _eval_time_sets(d).items():
        exp_auc, exp_mean = _sk_auc(d, times)
        auc, mean = time_dependent_auc(d["risk"], d["t"], d["e"], d["tt"], d["te"], times)
        np.testing.assert_allclose(auc, exp_auc, atol=1e-12, equal_nan=True, err_msg=name)
        assert np.isclose(mean, exp_mean, atol=1e-12, equal_nan=True), (name, mean, exp_mean)
        n_defined += int(np.isfinite(auc).sum()) + int(np.isfinite(mean))
    assert n_defined >= 10  # mostly real numbers, not NaN == NaN


def test_td_auc_counts_a_death_at_the_eval_time_as_a_case() -> None:
    """Unit IPCW weights (no training censoring). At t = 0.6: cases T<=0.6 with an event: 0.3 (risk .5) and 0.6
    (risk 2); controls T>0.6: 0.9 (risk 3), 1.2 (risk 0); the patient censored at 0.6 is neither. Concordant
    case-control pairs: (.5, 0), (2, 0) of 4 -> 0.5 (torchsurv made both 0.6 patients controls: 0.25)."""
    t, e = np.array([0.3, 0.6, 0.6, 0.9, 1.2]), np.array([True, True, False, True, False])
    risk, train_t = np.array([0.5, 2.0, 1.0, 3.0, 0.0]), np.array([0.3, 0.6, 0.9, 1.2, 1.5])
    auc, mean = time_dependent_auc(risk, t, e, train_t, np.ones(5, bool), [0.6])
    assert auc.tolist() == [0.5] and mean == 0.5
    d = {"risk": risk, "t": t, "e": e, "tt": train_t, "te": np.ones(5, bool)}
    assert _sk_auc(d, np.array([0.6]))[0].tolist() == [0.5]


def test_td_auc_at_an_eval_time_just_below_the_end_of_follow_up() -> None:
    """default_eval_times clips to nextafter(max time, -inf), which sksurv accepts (torchsurv rounded it to float32
    = max time and raised). G = 1. At 2: cases risks {1, 3}, controls {2, 4}: 1 of 4 pairs concordant; just
    before 4: cases {1, 3}, control {4}: 0. Test KM: S(2) = .5, S(4−) = .5 -> mean = .25 · .5 / .5."""
    t, e, r = (
        np.array([1.0, 2.0, 3.0, 4.0]),
        np.array([True, True, False, True]),
        np.array([1.0, 3.0, 2.0, 4.0]),
    )
    d = {"risk": r, "t": t, "e": e, "tt": np.array([1.0, 5.0]), "te": np.ones(2, bool)}
    times = np.array([2.0, np.nextafter(4.0, 0.0)])
    auc, mean = time_dependent_auc(r, t, e, d["tt"], d["te"], times)
    assert auc.tolist() == [0.25, 0.0] and mean == 0.25
    exp_auc, exp_mean = _sk_auc(d, times)
    assert exp_auc.tolist() == [0.25, 0.0] and exp_mean == 0.25


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("seed", TIE_SEEDS)
def test_uno_matches_sksurv_with_tau_at_event_times(seed: int, unit: float) -> None:
    d = _tied(seed, unit)
    event_times = np.unique(d["t"][d["e"]])
    for tau in [None, *event_times[1:]]:  # sksurv needs a test event before tau
        expected = concordance_index_ipcw(_surv(d, False), _surv(d), d["risk"], tau=tau)[0]
        got = uno_cindex(d["risk"], d["t"], d["e"], d["tt"], d["te"], tau=tau)
        assert np.isfinite(got) and got == pytest.approx(expected, abs=1e-12), tau


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("seed", TIE_SEEDS)
def test_harrell_matches_sksurv_with_tied_times_and_mixed_events(seed: int, unit: float) -> None:
    d = _tied(seed, unit)
    expected = concordance_index_censored(d["e"], d["t"], d["risk"])[0]
    assert harrell_cindex(d["risk"], d["t"], d["e"]) == pytest.approx(expected, abs=1e-12)


def test_harrell_hand_case_tied_time_with_event_and_censoring() -> None:
    """Events at 2 (risks 1, 3), a censoring at 2 (risk 2), a censoring at 3 (risk 0). Comparable: each event with
    the censoring at 2 and at 3 (two events at the same time are not comparable): 4 pairs, concordant: (1, 0),
    (3, 2), (3, 0) -> 3/4."""
    t, e, r = [2.0, 2.0, 2.0, 3.0], [True, True, False, False], [1.0, 3.0, 2.0, 0.0]
    assert harrell_cindex(r, t, e) == 0.75
    assert concordance_index_censored(np.array(e), np.array(t), np.array(r))[0] == 0.75


def _weibull_like_survival(d: dict, times: np.ndarray) -> np.ndarray:
    return np.exp(-np.exp(d["risk"])[:, None] * times[None, :] / (10 * times.max()))


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("seed", TIE_SEEDS)
def test_ibs_matches_sksurv_when_eval_times_are_observed_times(seed: int, unit: float) -> None:
    d = _tied(seed, unit)
    for name, times in _eval_time_sets(d).items():
        if len(times) < 2:
            continue
        surv = _weibull_like_survival(d, times)
        expected = sk_ibs(_surv(d, False), _surv(d), surv, times)
        got = integrated_brier_score(surv, d["t"], d["e"], d["tt"], d["te"], times)
        assert got == pytest.approx(expected, abs=1e-12), name


def test_ibs_keeps_times_apart_that_float32_would_merge() -> None:
    """S = .8 for all, G = 1. At t = 1: case {1} (S² = .64), controls {1 + 5e-8, 2, 3} ((1 − S)² = .04 each):
    BS = .76 / 4 = .19; at t = 2: cases {1, 1 + 5e-8, 2}, control {3}: BS = 1.96 / 4 = .49; IBS = (.19 + .49) / 2.
    (torchsurv rounds times to float32, which makes 1 + 5e-8 a case at t = 1: .415.)"""
    t, e = np.array([1.0, 1.0 + 5e-8, 2.0, 3.0]), np.array([True, True, True, False])
    ibs = integrated_brier_score(
        np.full((4, 2), 0.8), t, e, np.array([1.0, 4.0]), np.ones(2, bool), [1.0, 2.0]
    )
    assert ibs == pytest.approx(0.34, abs=1e-12)
    d = {"t": t, "e": e, "tt": np.array([1.0, 4.0]), "te": np.ones(2, bool)}
    assert sk_ibs(_surv(d, False), _surv(d), np.full((4, 2), 0.8), [1.0, 2.0]) == pytest.approx(
        0.34, abs=1e-12
    )


def test_ibs_without_test_events_is_a_number_not_an_exception() -> None:
    """All test patients censored, no training censoring (G = 1): BS(t) = mean over patients of 1{T>t}(1 − S)²;
    BS(2) = (.5² + .5² + .5²) / 4 = .1875, BS(3) = (.5² + .5²) / 4 = .125; IBS = (.1875 + .125) / 2."""
    t, e = np.array([2.0, 3.0, 4.0, 5.0]), np.zeros(4, bool)
    ibs = integrated_brier_score(
        np.full((4, 2), 0.5), t, e, np.array([1.0, 6.0]), np.ones(2, bool), [2.0, 3.0]
    )
    assert ibs == pytest.approx((0.1875 + 0.125) / 2, abs=1e-12)


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("seed", TIE_SEEDS)
def test_censoring_km_matches_sksurv(seed: int, unit: float) -> None:
    from sksurv.nonparametric import CensoringDistributionEstimator

    from survlab.metrics.survival import _censoring_survival

    d = _tied(seed, unit)
    # at, between and before the training times
    grid = np.unique(np.concatenate([d["tt"], d["tt"] + unit / 2, [unit / 2]]))
    grid = grid[grid <= d["tt"].max()]
    expected = CensoringDistributionEstimator().fit(_surv(d, False)).predict_proba(grid)
    np.testing.assert_allclose(_censoring_survival(d["tt"], d["te"])(grid), expected, rtol=0, atol=1e-12)
    all_events = CensoringDistributionEstimator().fit(Surv.from_arrays(np.ones(len(d["tt"]), bool), d["tt"]))
    np.testing.assert_array_equal(
        _censoring_survival(d["tt"], np.ones(len(d["tt"]), bool))(grid), all_events.predict_proba(grid)
    )


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("seed", TIE_SEEDS)
def test_default_eval_times_with_heavy_ties_match_sksurv(seed: int, unit: float) -> None:
    """Quantiles of tied event times land ON observed times; sksurv must accept them and agree with us there."""
    d = _tied(seed, unit)
    times = default_eval_times(d["t"], d["e"], d["tt"], d["te"])
    quantiles = np.quantile(d["t"][d["e"]], np.linspace(0.1, 0.8, 10))
    lo, hi = max(d["t"].min(), d["tt"].min()), min(d["t"].max(), d["tt"].max())
    inside = quantiles.clip(np.nextafter(lo, np.inf), np.nextafter(hi, 0))
    np.testing.assert_array_equal(times, np.unique(inside))
    assert len(times) >= 2 and np.isin(times, d["t"]).sum() >= 2  # eval times ON observed times do occur
    exp_auc, exp_mean = _sk_auc(d, times)
    auc, mean = time_dependent_auc(d["risk"], d["t"], d["e"], d["tt"], d["te"], times)
    np.testing.assert_allclose(auc, exp_auc, atol=1e-12, equal_nan=True)
    assert np.isclose(mean, exp_mean, atol=1e-12, equal_nan=True)
    surv = _weibull_like_survival(d, times)
    expected = sk_ibs(_surv(d, False), _surv(d), surv, times)
    assert integrated_brier_score(surv, d["t"], d["e"], d["tt"], d["te"], times) == pytest.approx(
        expected, abs=1e-12
    )


# ---------------------------------------------------------------- issue 21.10: exact (float64) times end to end
def _scored_through_the_task(
    risk: np.ndarray,
    t: np.ndarray,
    e: np.ndarray,
    tt: np.ndarray,
    te: np.ndarray,
    train_risk: np.ndarray | None = None,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Metrics as a run computes them: per-patient items (times from the table) -> collate -> the survival
    objective's collect -> score, IPCW from the training outcomes (IBS from the Breslow curves of `train_risk`).
    -> (metrics, collected rows)."""
    from survlab.data.batch import PatientItem, collate
    from survlab.models.base import Prediction
    from survlab.tasks.objective_survival import SurvivalObjective

    objective = SurvivalObjective(loss="cox")
    objective.set_reference(np.array([0.0, 1.0]), tt, te)
    objective.train_risk = train_risk
    items = [PatientItem(case_id=f"p{i}", index=i, time=float(t[i]), event=bool(e[i])) for i in range(len(t))]
    batch = collate(items)
    pred = Prediction(risk=torch.as_tensor(risk, dtype=torch.float32))
    rows = {k: v.numpy() for k, v in objective.collect(pred, batch).items()}
    return objective.score(rows), rows


def _days_cohort(seed: int, n: int = 120) -> dict[str, np.ndarray]:
    """Times in months from whole days (days / 30.4375: decimals float32 cannot hold); every test event time is
    also a training censoring time (the tie IPCW resolves by the exact value); the last training time is an event."""
    rng = np.random.default_rng(seed)
    t = rng.integers(30, 3000, n) / 30.4375
    e = rng.random(n) < 0.6
    tt = np.concatenate([t[e], rng.integers(30, 3000, 2 * n) / 30.4375, [3100 / 30.4375]])
    te = np.concatenate([np.zeros(e.sum(), bool), rng.random(2 * n) < 0.5, [True]])
    risk = (rng.integers(0, 50, n) - 0.02 * t).astype(np.float32).astype(float)
    train_risk = rng.normal(size=len(tt))
    return {"risk": risk, "t": t, "e": e, "tt": tt, "te": te, "train_risk": train_risk}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_of_a_run_use_the_exact_times_and_equal_sksurv(seed: int) -> None:
    """Uno's C, the td-AUC and the IBS of the task path equal scikit-survival on the exact (float64) times; the
    collected times are the table's values bit for bit (float32 gave e.g. Uno C off by 0.009 on GBSG-2)."""
    d = _days_cohort(seed)
    assert np.any(d["t"].astype(np.float32).astype(float) != d["t"])  # float32 really cannot hold them
    got, rows = _scored_through_the_task(d["risk"], d["t"], d["e"], d["tt"], d["te"], d["train_risk"])
    assert got["cindex_uno"] == pytest.approx(
        concordance_index_ipcw(_surv(d, False), _surv(d), d["risk"])[0], abs=1e-12
    )
    times = default_eval_times(d["t"], d["e"], d["tt"], d["te"])
    assert got["auc_td"] == pytest.approx(_sk_auc(d, times)[1], abs=1e-12)
    surv = breslow_survival(d["train_risk"], d["tt"], d["te"], d["risk"], times)
    assert got["ibs"] == pytest.approx(sk_ibs(_surv(d, False), _surv(d), surv, times), abs=1e-12)
    np.testing.assert_array_equal(rows["time"], d["t"])  # the table's values bit for bit


def test_gbsg2_uno_cindex_of_the_task_path_equals_sksurv() -> None:
    """A real cohort: GBSG-2 (686 patients, days converted to months as survlab's cohorts store them), a Cox model
    fitted on 4/5 of the patients, scored on the rest. Float32 times gave 0.6206 where scikit-survival gives 0.6296."""
    from sklearn.model_selection import StratifiedKFold
    from sksurv.datasets import load_gbsg2
    from sksurv.linear_model import CoxPHSurvivalAnalysis
    from sksurv.preprocessing import OneHotEncoder

    x, y = load_gbsg2()
    x = OneHotEncoder().fit_transform(x).to_numpy(float)
    t, e = y["time"].astype(float) / 30.4375, y["cens"].astype(bool)
    train, test = list(StratifiedKFold(5, shuffle=True, random_state=0).split(x, e))[4]
    risk = CoxPHSurvivalAnalysis().fit(x[train], Surv.from_arrays(e[train], t[train])).predict(x[test])
    got, rows = _scored_through_the_task(risk, t[test], e[test], t[train], e[train])
    expected = concordance_index_ipcw(
        Surv.from_arrays(e[train], t[train]), Surv.from_arrays(e[test], t[test]), rows["risk"].astype(float)
    )[0]
    assert got["cindex_uno"] == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.6296, abs=5e-4)


# ---------------------------------------------------------------- issue 21.11: no IPCW weight past the training follow-up
def _late_event_cohort() -> dict[str, np.ndarray]:
    """Training follow-up ends at 9 (an event, so G stays > 0 after it and a naive step function extends it);
    two test events at 10.5 and 11, after it; the test follow-up runs to 12."""
    d = _tied(0, 1.0)
    d["t"] = np.append(d["t"], [10.5, 11.0, 12.0])
    d["e"] = np.append(d["e"], [True, True, False])
    d["risk"] = np.append(d["risk"], [2.0, 0.0, 0.5])
    assert d["tt"].max() == 9.0 and d["te"][np.argmax(d["tt"])]
    return d


def _censored_at_followup(d: dict) -> dict:
    """The same test set with the events past the training follow-up censored there (what the metrics assume)."""
    late = d["t"] > d["tt"].max()
    return d | {"e": d["e"] & ~late, "t": np.where(late, d["tt"].max(), d["t"])}


def test_td_auc_is_restricted_to_the_training_follow_up(caplog: pytest.LogCaptureFixture) -> None:
    d = _late_event_cohort()
    with pytest.raises(ValueError, match="smaller than largest observed time"):  # scikit-survival refuses
        cumulative_dynamic_auc(_surv(d, False), _surv(d), d["risk"], [3.0, 10.0])
    with caplog.at_level(logging.WARNING):
        auc, mean = time_dependent_auc(d["risk"], d["t"], d["e"], d["tt"], d["te"], [3.0, 5.0, 9.0, 11.5])
    assert np.isnan(auc[2:]).all() and "at or past the training follow-up 9" in caplog.text
    expected, expected_mean = _sk_auc(_censored_at_followup(d), np.array([3.0, 5.0]))
    np.testing.assert_allclose(auc[:2], expected, atol=1e-12)
    assert mean == pytest.approx(expected_mean, abs=1e-12)
    surv = np.full((len(d["t"]), 2), 0.7)
    assert np.isnan(integrated_brier_score(surv, d["t"], d["e"], d["tt"], d["te"], [3.0, 10.0]))


def test_uno_past_the_training_follow_up_is_truncated_there_and_recorded() -> None:
    d = _late_event_cohort()
    assert np.isnan(uno_cindex(d["risk"], d["t"], d["e"], d["tt"], d["te"]))  # undefined without a tau
    expected = concordance_index_ipcw(_surv(d, False), _surv(_censored_at_followup(d)), d["risk"], tau=9.0)[0]
    assert uno_cindex(d["risk"], d["t"], d["e"], d["tt"], d["te"], tau=9.0) == pytest.approx(
        expected, abs=1e-12
    )
    out = survival_metrics(d["risk"], d["t"], d["e"], d["tt"], d["te"])
    assert out["cindex_uno"] == pytest.approx(expected, abs=1e-12)
    assert (out["cindex_uno_tau"], out["n_events_past_followup"]) == (9.0, 2.0)
    assert "cindex_uno_tau" not in survival_metrics(*(_cohorts(0)[k] for k in ("risk", "t", "e", "tt", "te")))


def test_every_endpoint_keeps_its_exact_times_through_collate() -> None:
    """Secondary endpoints too (their Cox objectives take the IPCW training times from collected rows)."""
    from survlab.data.batch import PatientItem, collate

    days = np.array([1234.0, 17.0, 999.0]) / 30.4375
    items = [
        PatientItem(
            case_id=f"p{i}",
            index=i,
            time=float(d),
            endpoint_time={"dfs": float(d / 2)},
            endpoint_event={"dfs": True},
            endpoint_time_bin={"dfs": 0},
        )
        for i, d in enumerate(days)
    ]
    batch = collate(items)
    np.testing.assert_array_equal(batch.time.numpy(), days)
    np.testing.assert_array_equal(batch.endpoint_time["dfs"].numpy(), days / 2)
