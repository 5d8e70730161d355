"""Split-conformal sets: parity with MAPIE, coverage on exchangeable data, survival-bin probabilities, censoring rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from survlab.metrics.conformal import (
    CalibrationSizeError,
    bin_probabilities,
    calibrate_and_predict,
    conformal_quantile,
    known_bin,
    subgroup_table,
)


def _draw(rng: np.random.Generator, n: int, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities [n, k] of a softmax model and labels drawn from a DIFFERENT (sharper) distribution: the model
    is miscalibrated, conformal coverage must hold anyway."""
    logits = rng.normal(size=(n, k)) * 1.5
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    true = np.exp(2 * logits) / np.exp(2 * logits).sum(1, keepdims=True)
    y = (true.cumsum(1) > rng.random((n, 1))).argmax(1)
    return p, y


class _Probs(ClassifierMixin, BaseEstimator):
    """A prefit 'classifier' whose features are its class probabilities (lets MAPIE score given probabilities)."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> _Probs:
        self.classes_ = np.arange(x.shape[1])
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x).argmax(1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sets_equal_mapie_lac(seed: int) -> None:
    from mapie.classification import SplitConformalClassifier

    rng = np.random.default_rng(seed)
    p, y = _draw(rng, 300)
    mapie = SplitConformalClassifier(
        _Probs().fit(p, y), confidence_level=[0.9, 0.8], conformity_score="lac", prefit=True
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
