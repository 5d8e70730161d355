"""Split-conformal sets: parity with MAPIE, coverage on exchangeable data, survival-bin probabilities, censoring rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from survlab.metrics.conformal import (
    CalibrationSizeError,
    bin_probabilities,
    calibrate_and_predict,
    conformal_quantile,
    known_bin,
    lac_scores,
    mondrian_calibrate_and_predict,
    mondrian_quantiles,
    subgroup_table,
)
from tests.helpers.conformal import Probs


def _draw(rng: np.random.Generator, n: int, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities [n, k] of a softmax model and labels drawn from a DIFFERENT (sharper) distribution: the model
    is miscalibrated, conformal coverage must hold anyway."""
    logits = rng.normal(size=(n, k)) * 1.5
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    true = np.exp(2 * logits) / np.exp(2 * logits).sum(1, keepdims=True)
    y = (true.cumsum(1) > rng.random((n, 1))).argmax(1)
    return p, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sets_equal_mapie_lac(seed: int) -> None:
    from mapie.classification import SplitConformalClassifier

    rng = np.random.default_rng(seed)
    p, y = _draw(rng, 300)
    mapie = SplitConformalClassifier(
        Probs().fit(p, y), confidence_level=[0.9, 0.8], conformity_score="lac", prefit=True
    )
    mapie.conformalize(p[:120], y[:120])
    _, mapie_sets = mapie.predict_set(p[120:])
    for j, alpha in enumerate([0.1, 0.2]):
        _, sets = calibrate_and_predict(p[:120], y[:120], p[120:], alpha)
        assert np.array_equal(sets, mapie_sets[:, :, j])
        assert 1.0 < sets.sum(1).mean() < 4.0  # informative sets, not all classes


@pytest.mark.parametrize("alpha", [0.1, 0.2])
def test_coverage_on_exchangeable_data_is_near_target(alpha: float) -> None:
    rng = np.random.default_rng(7)
    coverages = []
    for _ in range(200):
        p, y = _draw(rng, 400)
        _, sets = calibrate_and_predict(p[:200], y[:200], p[200:], alpha)
        coverages.append(sets[np.arange(200), y[200:]].mean())
    mean = float(np.mean(coverages))
    # guarantee: 1 - alpha <= E[coverage] <= 1 - alpha + 1/(n+1); mean of 200 draws has sd ~0.0015
    assert 1 - alpha - 0.01 <= mean <= 1 - alpha + 1 / 201 + 0.01, mean


def test_quantile_rank_and_errors() -> None:
    scores = (
        np.arange(1, 10) / 10.0
    )  # n = 9: rank ceil(10 * 0.9) = 9 -> 0.9; alpha 0.05 -> rank 10 > n -> refused (no finite q̂)
    assert conformal_quantile(scores, 0.1) == pytest.approx(0.9)
    assert conformal_quantile(scores, 0.5) == pytest.approx(0.5)
    with pytest.raises(CalibrationSizeError, match="needs >= 19"):
        conformal_quantile(scores, 0.05)
    with pytest.raises(ValueError, match="alpha must be in"):
        conformal_quantile(scores, 1.5)
    with pytest.raises(ValueError, match="no calibration patient has a known label"):
        calibrate_and_predict(np.full((3, 2), 0.5), np.array([-1, -1, -1]), np.full((2, 2), 0.5), 0.1)


def test_bin_probabilities_match_direct_computation() -> None:
    logits = np.array([[0.0, 1.0, -1.0, 2.0], [-3.0, -3.0, -3.0, -3.0]])
    h = 1 / (1 + np.exp(-logits))
    for row in range(2):
        s = 1.0
        expected = []
        for k in range(3):
            expected.append(s * h[row, k])
            s *= 1 - h[row, k]
        expected.append(s)  # the last bin takes the tail
        assert np.allclose(bin_probabilities(logits)[row], expected)
    assert np.allclose(bin_probabilities(logits).sum(1), 1.0)


def test_censored_patients_rule() -> None:
    # events keep their bin; censored before the last bin -> unknown (-1); censored in the last bin -> known
    bins = known_bin(np.array([0, 1, 2, 3, 1, 3]), np.array([1, 1, 0, 0, 0, 1]), n_bins=4)
    assert bins.tolist() == [0, 1, -1, 3, -1, 3]


def test_subgroup_table_counts() -> None:
    sets = np.array([[1, 0], [1, 1], [0, 1], [1, 0]], dtype=bool)
    labels = np.array([0, 0, 0, -1])
    groups = pd.DataFrame({"sex": ["F", "M", "F", "F"]})
    table = subgroup_table(sets, labels, groups).set_index(["subgroup", "value"])
    assert table.loc[("all", "all"), "n"] == 3 and table.loc[("all", "all"), "n_excluded"] == 1
    assert table.loc[("all", "all"), "coverage"] == pytest.approx(2 / 3)
    assert table.loc[("sex", "F"), "coverage"] == pytest.approx(0.5)
    assert table.loc[("sex", "F"), "mean_set_size"] == pytest.approx(1.0)
    assert table.loc[("sex", "M"), "mean_set_size"] == pytest.approx(2.0)


# ------------------------------------------------------------------ MAPIE parity: ties, alpha edges, Mondrian
def _mapie_sets(cal_p: np.ndarray, cal_y: np.ndarray, test_p: np.ndarray, alpha: float) -> np.ndarray:
    """MAPIE's LAC sets [n_test, K] of a prefit model whose probabilities are given (calibrated on cal_p / cal_y)."""
    from mapie.classification import SplitConformalClassifier

    mapie = SplitConformalClassifier(
        Probs().fit(cal_p, cal_y), confidence_level=1 - alpha, conformity_score="lac", prefit=True
    )
    mapie.conformalize(cal_p, cal_y)
    return mapie.predict_set(test_p)[1][:, :, 0]


def _grid_probs(rng: np.random.Generator, n: int, k: int, step: float = 0.05) -> np.ndarray:
    """Probabilities on a coarse grid (multiples of `step`, rows sum to 1): many exact ties between scores."""
    units = round(1 / step)
    cuts = np.sort(rng.integers(0, units + 1, size=(n, k - 1)), axis=1)
    counts = np.diff(np.concatenate([np.zeros((n, 1), int), cuts, np.full((n, 1), units)], axis=1), axis=1)
    return counts * step


@pytest.mark.parametrize("seed", [0, 1])
def test_sets_equal_mapie_with_tied_scores_at_every_small_size(seed: int) -> None:
    # grid probabilities: calibration scores tie, and test probabilities hit q̂ exactly; every n where MAPIE
    # calibrates (n >= 1/alpha), including n where ceil((n+1)(1-alpha)) = n (q̂ = the largest score)
    rng = np.random.default_rng(seed)
    checked = 0
    for n in (5, 9, 10, 11, 19, 20, 21, 40):
        cal_p, test_p = _grid_probs(rng, n, 3), _grid_probs(rng, 60, 3)
        cal_y = rng.integers(0, 3, size=n)
        for alpha in (0.05, 0.1, 0.2, 0.25, 0.5):
            if n < max(1 / alpha, 1 / (1 - alpha)):  # MAPIE refuses these sizes
                continue
            _, sets = calibrate_and_predict(cal_p, cal_y, test_p, alpha)
            assert np.array_equal(sets, _mapie_sets(cal_p, cal_y, test_p, alpha)), (n, alpha)
            checked += 1
    assert checked == 33  # the (n, alpha) pairs MAPIE accepts


def test_near_ties_are_decided_as_mapie_decides() -> None:
    # test probabilities 5e-9 below the calibration score's class probability: MAPIE includes the class (its
    # tolerance 1e-8); survlab's earlier 1e-12 tolerance left it out
    cal_p = np.array([[0.7, 0.3], [0.6, 0.4], [0.2, 0.8], [0.55, 0.45], [0.1, 0.9]] * 4)
    cal_y = np.array([0, 0, 1, 1, 1] * 4)
    q_alpha = 0.2
    qhat, _ = calibrate_and_predict(cal_p, cal_y, cal_p[:1], q_alpha)
    assert qhat == pytest.approx(0.55)  # rank ceil(21 * 0.8) = 17 of the 20 scores (4 x .3 .4 .2 .45 .1)
    edge = 1 - qhat - 5e-9
    test_p = np.array([[edge, 1 - edge], [1 - edge, edge], [0.5, 0.5]])
    _, sets = calibrate_and_predict(cal_p, cal_y, test_p, q_alpha)
    assert np.array_equal(sets, _mapie_sets(cal_p, cal_y, test_p, q_alpha))
    assert sets.tolist() == [[True, True], [True, True], [True, True]]


def test_smallest_calibration_size_gives_the_largest_score() -> None:
    # n = 9 at alpha 0.1: rank ceil(10 x 0.9) = 9 = n -> q̂ = the largest score (MAPIE refuses n < 1/alpha = 10);
    # n = 8: rank 9 > 8 -> not computable
    scores_p = np.array([[0.95, 0.05], [0.9, 0.1], [0.85, 0.15], [0.8, 0.2], [0.75, 0.25]] + [[0.7, 0.3]] * 4)
    labels = np.zeros(9, dtype=int)
    qhat, sets = calibrate_and_predict(scores_p, labels, np.array([[0.7, 0.3], [0.69, 0.31]]), 0.1)
    assert qhat == pytest.approx(0.3)
    assert sets.tolist() == [[True, False], [False, False]]  # 1 - 0.69 = 0.31 > q̂: an empty set
    with pytest.raises(CalibrationSizeError, match="needs >= 9"):
        calibrate_and_predict(scores_p[:8], labels[:8], scores_p[:1], 0.1)


@pytest.mark.parametrize(("seed", "alpha"), [(0, 0.1), (1, 0.2), (2, 0.1)])
def test_mondrian_sets_equal_mapie_calibrated_per_class(seed: int, alpha: float) -> None:
    # Mondrian CP = split CP calibrated on each true class's calibration patients, class k's column from its own
    # calibration: MAPIE calibrated on the class-k patients decides column k
    rng = np.random.default_rng(seed)
    p, y = _draw(rng, 500)
    cal_p, cal_y, test_p = p[:250], y[:250], p[250:]
    qhats, sets = mondrian_calibrate_and_predict(cal_p, cal_y, test_p, alpha)
    expected = np.column_stack(
        [_mapie_sets(cal_p[cal_y == k], cal_y[cal_y == k], test_p, alpha)[:, k] for k in range(4)]
    )
    assert np.array_equal(sets, expected)
    for k in range(4):  # q̂_k = the class-k scores' own quantile
        assert qhats[k] == conformal_quantile(1 - cal_p[cal_y == k, k], alpha)
    assert len(set(np.round(qhats, 6))) == 4  # a different threshold per class, not the marginal one


def test_mondrian_coverage_holds_within_every_class() -> None:
    # the model is miscalibrated for class 0 (its probability is too high): marginal sets under-cover class 3;
    # Mondrian sets cover each class at >= 1 - alpha (mean over 100 draws)
    rng = np.random.default_rng(11)
    per_class = {"marginal": [], "mondrian": []}
    for _ in range(100):
        p, y = _draw(rng, 800)
        p = p * np.array([3.0, 1.0, 1.0, 1.0])
        p /= p.sum(1, keepdims=True)
        _, marginal = calibrate_and_predict(p[:400], y[:400], p[400:], 0.1)
        _, mondrian = mondrian_calibrate_and_predict(p[:400], y[:400], p[400:], 0.1)
        for name, sets in (("marginal", marginal), ("mondrian", mondrian)):
            covered = sets[np.arange(400), y[400:]]
            per_class[name].append([covered[y[400:] == k].mean() for k in range(4)])
    mondrian_cov = np.mean(per_class["mondrian"], axis=0)
    marginal_cov = np.mean(per_class["marginal"], axis=0)
    assert (mondrian_cov >= 0.9 - 0.01).all(), mondrian_cov
    assert marginal_cov.min() < 0.88, marginal_cov  # the planted miscalibration: some class under-covered


def test_mondrian_too_few_patients_of_a_class_names_it() -> None:
    cal_p = np.full((30, 3), 1 / 3)
    cal_y = np.array([0] * 20 + [1] * 8 + [2] * 2)
    with pytest.raises(CalibrationSizeError, match=r"needs >= 9 .*class 1: 8, class 2: 2"):
        mondrian_quantiles(lac_scores(cal_p, cal_y), cal_y, 3, 0.1)
    # unknown labels (-1) are left out before the per-class count
    qhats, _ = mondrian_calibrate_and_predict(
        cal_p, np.where(np.arange(30) < 2, -1, np.array([0, 1, 2] * 10)), cal_p[:2], 0.5
    )
    assert qhats.shape == (3,)
