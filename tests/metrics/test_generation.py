"""Generation metrics: per-family / overall Spearman (per gene, per patient) and MAE vs scipy, training-mean reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from survlab.metrics.generation import generation_metrics


def test_metrics_match_scipy_and_reference_is_trivial() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(30, 7))
    pred = real + rng.normal(scale=0.7, size=real.shape)
    pred[:, 6] = 0.25  # a constant gene: Spearman 0 by definition
    ref = real.mean(0) + 0.1
    m = generation_metrics(pred, real, sizes=(4, 3), names=("a", "b"), reference=ref)
    per_gene = [spearmanr(pred[:, g], real[:, g]).statistic if g < 6 else 0.0 for g in range(7)]
    assert m["generator"]["a"]["spearman_gene"] == pytest.approx(np.mean(per_gene[:4]))
    assert m["generator"]["overall"]["spearman_gene"] == pytest.approx(np.mean(per_gene))
    per_patient = [spearmanr(pred[i, 4:], real[i, 4:]).statistic for i in range(30)]
    assert m["generator"]["b"]["spearman_patient"] == pytest.approx(np.nanmean(per_patient))
    assert m["generator"]["overall"]["mae"] == pytest.approx(np.abs(pred - real).mean())
    assert m["training_mean"]["overall"]["spearman_gene"] == 0.0
    assert m["training_mean"]["a"]["mae"] == pytest.approx(np.abs(ref[:4] - real[:, :4]).mean())
    assert m["generator"]["overall"]["spearman_gene"] > 0.5 and m["n_patients"] == 30


def test_shape_mismatch_is_a_one_line_error() -> None:
    with pytest.raises(ValueError, match=r"do not match the group sizes \(4, 4\)"):
        generation_metrics(
            np.zeros((5, 7)), np.zeros((5, 7)), sizes=(4, 4), names=("a", "b"), reference=np.zeros(7)
        )
