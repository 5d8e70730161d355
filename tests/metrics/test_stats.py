"""Cross-validation statistics (survlab.metrics.stats) against independent references: the corrected resampled
t-test by hand from Nadeau & Bengio's formula, Holm against the closed Bonferroni test and a textbook example, the
bootstrap against a plain loop over materialised resamples with scikit-survival / scikit-learn."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from survlab.metrics.stats import bootstrap_paired, bootstrap_pooled, corrected_resampled_ttest, holm


def test_corrected_resampled_ttest_equals_the_formula_by_hand() -> None:
    # 5-fold CV repeated twice (J = 10 differences), n_test/n_train = 1/(k-1) = 1/4
    d = [0.021, 0.034, -0.012, 0.040, 0.008, 0.015, 0.027, -0.004, 0.031, 0.012]
    mean = sum(d) / 10  # 0.0172
    s2 = sum((x - mean) ** 2 for x in d) / 9
    t_hand = mean / math.sqrt((1 / 10 + 1 / 4) * s2)
    out = corrected_resampled_ttest(d, test_train_ratio=1 / 4)
    assert out["mean"] == pytest.approx(0.0172)
    assert out["t"] == pytest.approx(t_hand) and out["df"] == 9
    assert out["p"] == pytest.approx(2 * stats.t.sf(t_hand, 9))
    # worked by hand: squared deviations sum to 2.5216e-3, s² = 2.80178e-4, se = sqrt(0.35 s²) = 9.9027e-3
    assert out["t"] == pytest.approx(1.7369, abs=1e-4)
    # without the correction term it is the ordinary one-sample (paired) t-test, which is far more confident
    plain = stats.ttest_1samp(d, 0.0)
    assert corrected_resampled_ttest(d, 0.0)["p"] == pytest.approx(plain.pvalue)
    assert plain.statistic == pytest.approx(3.2495, abs=1e-4)  # se = sqrt(s²/10) = 5.2932e-3
    assert plain.pvalue < 0.02 < 0.1 < out["p"]
    assert math.isnan(corrected_resampled_ttest([0.1], 0.25)["p"])
    assert corrected_resampled_ttest([0.0, 0.0, 0.0], 0.25)["p"] == 1.0
    with pytest.raises(ValueError, match="test_train_ratio must be >= 0, got -1"):
        corrected_resampled_ttest(d, -1)


def _closed_bonferroni(p: list[float]) -> list[float]:
    """Holm = the closed test of Bonferroni-tested intersections: adjusted p_i = max over the subsets S containing i
    of min(1, |S| · min_{j in S} p_j) (Marcus, Peritz & Gabriel 1976)."""
    m = len(p)
    out = []
    for i in range(m):
        worst = 0.0
        for size in range(1, m + 1):
            for s in itertools.combinations(range(m), size):
                if i in s:
                    worst = max(worst, min(1.0, size * min(p[j] for j in s)))
        out.append(worst)
    return out


def test_holm_equals_the_textbook_example_and_the_closed_bonferroni_test() -> None:
    # Holm (1979)-style worked example: p = .01, .04, .03, .005 -> sorted .005 .01 .03 .04 -> x4 x3 x2 x1
    # = .02 .03 .06 .04 -> running max .02 .03 .06 .06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    rng = np.random.default_rng(3)
    for m in (2, 3, 5, 6):
        p = rng.uniform(0, 0.3, m).tolist()
        assert holm(p) == pytest.approx(_closed_bonferroni(p))
    out = holm([0.02, float("nan"), 0.01])  # NaN (no test) neither adjusted nor counted
    assert np.isnan(out[1]) and out[[0, 2]] == pytest.approx([0.02, 0.02])


def _survival_pool(rng: np.random.Generator, ids: list[str], signal: float) -> pd.DataFrame:
    n = len(ids)
    x = rng.normal(size=n)
    time = rng.exponential(np.exp(-x)).round(1) + 0.1  # rounded: tied times occur
    return pd.DataFrame(
        {
            "case_id": ids,
            "risk": signal * x + rng.normal(size=n),
            "time": time,
            "event": (rng.random(n) < 0.7).astype(int),
        }
    )


def _loop(pools: list[pd.DataFrame], n_boot: int, seed: int, metric) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The plain reference: materialise each resample (same seeded draws over all pools' patients) and recompute
    the metric per pool on the drawn patients it predicted, averaged over pools."""
    ids = np.array(sorted(set().union(*(p["case_id"] for p in pools))))
    draws = np.random.default_rng(seed).integers(0, len(ids), size=(n_boot, len(ids)))
    by_id = [p.set_index("case_id") for p in pools]
    out = []
    for idx in draws:
        drawn = ids[idx]
        out.append(np.mean([metric(f.loc[[c for c in drawn if c in f.index]]) for f in by_id]))
    return np.array(out)


def test_bootstrap_of_the_pooled_cindex_equals_a_plain_loop_with_scikit_survival() -> None:
    from sksurv.metrics import concordance_index_censored

    rng = np.random.default_rng(0)
    ids = [f"P{i:02d}" for i in range(40)]
    base = _survival_pool(rng, ids, 1.0)
    # a second repeat: other risks, rows in another order, 4 patients missing (its fold 3 failed, say)
    repeat2 = base.assign(risk=base["risk"] + rng.normal(0, 0.5, 40)).sample(frac=1, random_state=1).iloc[4:]
    pools = [base, repeat2]

    def harrell(f: pd.DataFrame) -> float:
        return concordance_index_censored(f["event"].astype(bool), f["time"], f["risk"])[0]

    out = bootstrap_pooled(pools, n_boot=100, seed=5)
    ref = _loop(pools, 100, 5, harrell)
    assert out["estimate"] == pytest.approx(np.mean([harrell(p) for p in pools]))
    assert (out["ci_low"], out["ci_high"]) == pytest.approx(tuple(np.percentile(ref, [2.5, 97.5])))
    assert out["n_patients"] == 40 and out["n_boot_defined"] == 100
    assert bootstrap_pooled(pools, n_boot=100, seed=5) == out  # seeded
    assert bootstrap_pooled(pools, n_boot=100, seed=6)["ci_low"] != out["ci_low"]


def test_paired_bootstrap_uses_the_same_resamples_and_only_shared_patients() -> None:
    from sksurv.metrics import concordance_index_censored

    rng = np.random.default_rng(1)
    ids = [f"P{i:02d}" for i in range(50)]
    good = _survival_pool(rng, ids, 2.0)
    weak = good.assign(risk=rng.normal(size=50))  # no signal
    weak_missing = weak.iloc[5:]  # the reference predicted 45 patients only: the pairs use those 45

    def harrell(f: pd.DataFrame) -> float:
        return concordance_index_censored(f["event"].astype(bool), f["time"], f["risk"])[0]

    out = bootstrap_paired([good], [weak_missing], n_boot=150, seed=2)
    shared = sorted(weak_missing["case_id"])
    draws = np.random.default_rng(2).integers(0, 45, size=(150, 45))
    g, w = good.set_index("case_id").loc[shared], weak.set_index("case_id").loc[shared]
    ref = np.array([harrell(g.iloc[i]) - harrell(w.iloc[i]) for i in draws])
    assert out["n_patients"] == 45
    assert out["estimate"] == pytest.approx(harrell(g) - harrell(w))
    assert (out["ci_low"], out["ci_high"]) == pytest.approx(tuple(np.percentile(ref, [2.5, 97.5])))
    assert out["ci_low"] > 0  # the planted signal: the stronger risk wins on every plausible resample
    # the same resamples for both: the paired CI is narrower than the difference of two independent CIs
    a = bootstrap_pooled([g.reset_index()], n_boot=150, seed=2)
    b = bootstrap_pooled([w.reset_index()], n_boot=150, seed=2)
    assert out["ci_high"] - out["ci_low"] < (a["ci_high"] - a["ci_low"]) + (b["ci_high"] - b["ci_low"])


@pytest.mark.parametrize("classes", [["neg", "pos"], ["a", "b", "c"]])
def test_bootstrap_of_the_pooled_auc_equals_a_plain_loop_with_scikit_learn(classes: list[str]) -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(4)
    n = 45
    y = rng.integers(0, len(classes), n)
    logits = rng.normal(size=(n, len(classes))) + 1.5 * np.eye(len(classes))[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    probs[0] = probs[1]  # tied scores
    pool = pd.DataFrame({"case_id": [f"C{i}" for i in range(n)], "grade": [classes[i] for i in y]})
    pool["grade_pred"] = [classes[i] for i in probs.argmax(1)]
    for j, c in enumerate(classes):
        pool[f"grade_prob_{c}"] = probs[:, j]

    def auc(f: pd.DataFrame) -> float:
        cols = [f"grade_prob_{c}" for c in classes]
        if len(classes) == 2:
            return roc_auc_score(f["grade"] == classes[1], f[cols[1]])
        return roc_auc_score(f["grade"], f[cols].to_numpy(), multi_class="ovr", labels=classes)

    out = bootstrap_pooled([pool], n_boot=80, seed=9)
    ref = _loop([pool], 80, 9, auc)
    assert out["estimate"] == pytest.approx(auc(pool))
    assert (out["ci_low"], out["ci_high"]) == pytest.approx(tuple(np.percentile(ref, [2.5, 97.5])))


@pytest.mark.parametrize("classes", [["0", "1"], ["pN0", "pN1", "pN2"]])
def test_pooled_auc_leaves_out_patients_without_the_label(classes: list[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A predictions.csv row with an empty label (a patient labelled for another objective only, or with slides but no
    patient label) is neither a positive nor a negative: the pooled AUC is scikit-learn's on the labelled rows, and
    numeric classes read back as floats (1.0) still match their `<label>_prob_1` column. Before the fix such rows
    counted as negatives of every class (binary AUC 0.81 -> ~0.5) and numeric classes gave NaN."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(7)
    n, k = 60, len(classes)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    pool = pd.DataFrame({"case_id": [f"C{i}" for i in range(n)], "grade": [classes[i] for i in y]})
    pool["grade_pred"] = [classes[i] for i in probs.argmax(1)]
    cols = [f"grade_prob_{c}" for c in classes]
    pool[cols] = probs
    unlabelled = pool.iloc[:15].assign(case_id=[f"U{i}" for i in range(15)])
    unlabelled[["grade", "grade_pred", *cols]] = np.nan
    path = tmp_path / "predictions.csv"
    pd.concat([pool, unlabelled]).to_csv(path, index=False)
    read = pd.read_csv(
        path, dtype={"case_id": str}
    )  # as the sweep summary reads it (numeric classes: floats)

    if k == 2:
        ref = roc_auc_score(y == 1, probs[:, 1])
    else:
        ref = roc_auc_score(y, probs, multi_class="ovr", labels=list(range(k)))
    out = bootstrap_pooled([read], n_boot=50, seed=1)
    assert out["estimate"] == pytest.approx(ref)
    assert out["n_patients"] == n  # the unlabelled patients are not resampled
    assert out["ci_low"] <= ref <= out["ci_high"]
    # paired: the same rows for the model and the reference give a difference of exactly 0
    paired = bootstrap_paired([read], [read], n_boot=20, seed=1)
    assert paired["estimate"] == 0.0 and paired["n_patients"] == n


def test_pooled_statistic_pairs_patients_of_the_same_fold_only() -> None:
    """Each fold's model has its own risk scale: a fold whose risks are shifted and shrunk (a Cox model's offset is
    arbitrary) must not change the pooled C-index / AUC, which counts pairs within a fold (= scikit-survival's /
    scikit-learn's counts per fold, summed); the all-pairs value of the concatenation drops."""
    from helpers.pooled import within_fold_auc, within_fold_cindex
    from sksurv.metrics import concordance_index_censored

    from survlab.metrics.stats import bootstrap_pooled, pooled_statistic

    rng = np.random.default_rng(0)
    frames = []
    for k in range(3):
        time = rng.exponential(10, 40).round(1) + 0.1  # rounded: tied times
        risk = -np.log(time) + rng.normal(0, 0.8, 40)
        frames.append(
            pd.DataFrame(
                {
                    "case_id": [f"P{k}-{i}" for i in range(40)],
                    "fold": k,
                    "time": time,
                    "event": rng.integers(0, 2, 40),
                    "risk": risk,
                }
            )
        )
    pool = pd.concat(frames, ignore_index=True)
    shifted = pool.assign(risk=np.where(pool["fold"] == 1, 0.1 * pool["risk"] + 5.0, pool["risk"]))
    c = pooled_statistic(pool)
    assert c == pytest.approx(within_fold_cindex(pool), abs=1e-12)
    assert pooled_statistic(shifted) == pytest.approx(c, abs=1e-12)
    assert bootstrap_pooled([shifted], n_boot=20)["estimate"] == pytest.approx(c, abs=1e-12)
    all_pairs = concordance_index_censored(shifted["event"].astype(bool), shifted["time"], shifted["risk"])[0]
    assert all_pairs < c - 0.05  # what the concatenation reported
    # without a fold column: one stratum, every pair (= scikit-survival on the concatenation)
    assert pooled_statistic(shifted.drop(columns="fold")) == pytest.approx(all_pairs, abs=1e-12)
    # classification: binary AUC over the pairs within a fold
    y = (pool["time"] < pool["time"].median()).to_numpy()
    p_high = 1 / (1 + np.exp(-(pool["risk"].to_numpy() + rng.normal(0, 0.5, len(pool)))))
    cls = pd.DataFrame(
        {
            "case_id": pool["case_id"],
            "fold": pool["fold"],
            "grade": np.where(y, "high", "low"),
            "grade_pred": np.where(p_high > 0.5, "high", "low"),
            "grade_prob_low": 1 - p_high,
            "grade_prob_high": p_high,
        }
    )
    cls_shifted = cls.assign(grade_prob_high=np.where(cls["fold"] == 2, p_high / 3, p_high))
    auc = pooled_statistic(cls)
    assert auc == pytest.approx(within_fold_auc(y, p_high, pool["fold"].to_numpy()), abs=1e-12)
    assert pooled_statistic(cls_shifted) == pytest.approx(auc, abs=1e-12)
