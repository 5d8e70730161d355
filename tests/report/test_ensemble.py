"""Fold ensembles (survlab.report.ensemble, survlab.runner.eval_ensemble.fold_runs): per-patient means of the folds'
risks / probabilities aligned by case id, scored by the folds' own objectives and equal to lifelines' / scikit-learn's
metrics on the averaged values; the sweep's fold jobs found (and unusable ones skipped) by the summary's discovery."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines.utils import concordance_index
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from survlab.report.ensemble import average_predictions, average_rows, fold_summary
from survlab.runner.eval_ensemble import fold_runs
from survlab.tasks.objective_classification import ClassificationObjective
from survlab.tasks.objective_survival import SurvivalObjective


def _planted(seed: int = 0, n: int = 60) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Case ids, a planted true risk, times drawn from it and events (about 70 %)."""
    rng = np.random.default_rng(seed)
    ids = [f"P{i:03d}" for i in range(n)]
    true = rng.normal(size=n)
    time = rng.exponential(np.exp(-true)) * 24 + 0.1
    event = rng.random(n) < 0.7
    return ids, true, time, event


def _fold_rows(ids: list[str], key: np.ndarray, seed: int, **cols: np.ndarray) -> tuple[dict, list[str]]:
    """The rows of one fold as the prediction pass gives them: this fold's cohort table has the patients in its own
    (shuffled) order, `index` = row of the patient in that table, rows in yet another order."""
    rng = np.random.default_rng(seed)
    table = list(np.array(ids)[rng.permutation(len(ids))])
    pos = {c: i for i, c in enumerate(table)}
    order = rng.permutation(len(ids))  # row order of the pass
    rows = {"index": np.array([pos[ids[i]] for i in order])}
    rows.update({k: np.asarray(v)[order] for k, v in cols.items()})
    return rows, table


def _z(r: np.ndarray) -> np.ndarray:
    return (r - r.mean()) / r.std()


def test_survival_ensemble_is_the_mean_risk_and_its_cindex_equals_lifelines() -> None:
    ids, true, time, event = _planted()
    rng = np.random.default_rng(1)
    risks = [true + rng.normal(scale=1.0, size=len(ids)) for _ in range(3)]  # three noisy folds
    folds = [_fold_rows(ids, true, 10 + f, risk=r, time=time, event=event) for f, r in enumerate(risks)]
    rows = average_rows([r for r, _ in folds], [t for _, t in folds], "test")
    table0 = folds[0][1]
    got_ids = [table0[i] for i in rows["index"]]
    mean = np.mean([_z(r) for r in risks], axis=0)  # each fold standardised over the scored patients
    expected = dict(zip(ids, mean, strict=True))
    np.testing.assert_allclose(rows["risk"], [expected[c] for c in got_ids], rtol=0, atol=1e-12)
    by_id_time = dict(zip(ids, time, strict=True))
    np.testing.assert_array_equal(rows["time"], [by_id_time[c] for c in got_ids])

    objective = SurvivalObjective(loss="cox")
    objective.set_reference(
        np.array([0.0, 100.0]), time, event
    )  # censoring distribution of "training" patients
    metrics = objective.score(rows)
    lifelines_c = concordance_index(time, -mean, event)
    assert metrics["cindex"] == pytest.approx(lifelines_c, abs=1e-12)
    # the planted signal: averaging independent noisy folds beats the average fold
    singles = [concordance_index(time, -r, event) for r in risks]
    assert lifelines_c > np.mean(singles) + 0.01
    assert np.isnan(metrics.get("ibs", np.nan))  # no survival curve of the ensemble


def test_a_fold_on_another_risk_scale_does_not_take_over_the_ensemble() -> None:
    """A Cox fold's risks are defined up to a shift and their spread differs between folds: multiplying one fold's
    risks by 100 and shifting them leaves the ensemble unchanged (a raw mean would be that fold's ranking)."""
    ids, true, time, event = _planted()
    rng = np.random.default_rng(2)
    risks = [true + rng.normal(scale=1.0, size=len(ids)) for _ in range(3)]
    wide = [risks[0] * 100.0 + 7.0, risks[1], risks[2]]
    rows = {}
    for name, rs in (("same", risks), ("wide", wide)):
        folds = [_fold_rows(ids, true, 30 + f, risk=r, time=time, event=event) for f, r in enumerate(rs)]
        rows[name] = average_rows([r for r, _ in folds], [t for _, t in folds], "test")
    np.testing.assert_allclose(rows["wide"]["risk"], rows["same"]["risk"], rtol=0, atol=1e-12)
    raw = np.mean(wide, axis=0)  # what the mean of raw risks ranks by: fold 0 alone
    assert concordance_index(time, -raw, event) == pytest.approx(
        concordance_index(time, -risks[0], event), abs=0.01
    )


def test_classification_ensemble_is_the_mean_probability_scored_like_sklearn() -> None:
    rng = np.random.default_rng(3)
    n = 50
    ids = [f"C{i}" for i in range(n)]
    label = rng.integers(0, 2, n)
    probs = []
    for _ in range(2):
        p1 = 1 / (1 + np.exp(-(2.0 * (label - 0.5) + rng.normal(scale=1.5, size=n))))
        probs.append(np.stack([1 - p1, p1], axis=1))
    folds = [_fold_rows(ids, label, 20 + f, probs=p, label=label) for f, p in enumerate(probs)]
    rows = average_rows([r for r, _ in folds], [t for _, t in folds], "test")
    got = [folds[0][1][i] for i in rows["index"]]
    pos = {c: i for i, c in enumerate(ids)}
    mean = np.mean(probs, axis=0)[[pos[c] for c in got]]
    np.testing.assert_allclose(rows["probs"], mean, atol=1e-12)
    np.testing.assert_allclose(rows["probs"].sum(1), 1.0)
    metrics = ClassificationObjective().score(rows)
    y = label[[pos[c] for c in got]]
    assert metrics["auroc"] == pytest.approx(roc_auc_score(y, mean[:, 1]), abs=1e-12)
    assert metrics["balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(y, mean.argmax(1)), abs=1e-12
    )


def test_folds_that_scored_other_patients_or_outcomes_are_an_error() -> None:
    ids, true, time, event = _planted(n=10)
    a, ta = _fold_rows(ids, true, 1, risk=true, time=time, event=event)
    b, tb = _fold_rows(ids[:-1], true[:-1], 2, risk=true[:-1], time=time[:-1], event=event[:-1])
    with pytest.raises(ValueError, match=r"^here: fold 1 scored other patients than fold 0 .*P009"):
        average_rows([a, b], [ta, tb], "here")
    c, tc = _fold_rows(ids, true, 3, risk=true, time=time + 1.0, event=event)
    with pytest.raises(ValueError, match=r"^here: fold 1 read other time values"):
        average_rows([a, c], [ta, tc], "here")


def test_average_predictions_keeps_the_columns_and_recomputes_the_class() -> None:
    one = pd.DataFrame(
        {
            "case_id": ["a", "b", "c"],
            "fold": [0, 0, 0],
            "risk": [1.0, 2.0, 3.0],
            "time": [5.0, 6.0, 7.0],
            "event": [1, 0, 1],
            "grade": ["lo", "hi", "lo"],
            "grade_pred": ["lo", "hi", "hi"],
            "grade_prob_hi": [0.4, 0.9, 0.6],
            "grade_prob_lo": [0.6, 0.1, 0.4],
        }
    )
    two = one.iloc[[2, 0, 1]].copy()  # another row order
    two["fold"] = 1
    two["risk"] = [1.0, 3.0, 0.0]  # c, a, b
    two["grade_prob_hi"] = [0.2, 0.4, 0.7]
    two["grade_prob_lo"] = 1 - two["grade_prob_hi"]
    out = average_predictions([one, two], "test")
    assert list(out.columns) == list(one.columns)
    # a, b, c: each fold's risks standardised over the three patients, then averaged
    np.testing.assert_allclose(
        out["risk"], (_z(np.array([1.0, 2.0, 3.0])) + _z(np.array([3.0, 0.0, 1.0]))) / 2
    )
    np.testing.assert_allclose(out["grade_prob_hi"], [0.4, 0.8, 0.4])
    assert out["grade_pred"].tolist() == ["lo", "hi", "lo"]
    assert out["grade"].tolist() == ["lo", "hi", "lo"] and out["fold"].isna().all()
    with pytest.raises(ValueError, match=r"^test: fold 1's predictions.csv has other columns or patients"):
        average_predictions([one, two.drop(columns="risk")], "test")


def test_fold_summary_mean_and_sample_sd() -> None:
    mean, sd = fold_summary({"f0": {"c": 0.6, "u": np.nan}, "f1": {"c": 0.7, "u": 0.5}, "f2": {"c": 0.8}})
    assert mean["c"] == pytest.approx(0.7) and sd["c"] == pytest.approx(np.std([0.6, 0.7, 0.8], ddof=1))
    assert mean["u"] == 0.5 and np.isnan(sd["u"])


def _job(d: Path, model: str, cohort: str, fold: int, done: bool = True, prep: bool = True) -> Path:
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"model": model, "cohort": cohort, "fold": fold, "seed": 0}))
    if done:
        (d / "DONE").write_text("")
    if prep:
        (d / "preprocessing.json").write_text("{}")
    return d


def test_fold_runs_skips_unusable_jobs_and_asks_to_narrow_mixed_sweeps(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sweep = tmp_path / "sweep"
    a0 = _job(sweep / "abmil" / "synthetic" / "fold0", "abmil", "synthetic", 0)
    a1 = _job(sweep / "abmil" / "synthetic" / "fold1", "abmil", "synthetic", 1)
    _job(sweep / "abmil" / "synthetic" / "fold2", "abmil", "synthetic", 2, done=False)
    _job(sweep / "abmil" / "synthetic" / "fold3", "abmil", "synthetic", 3, prep=False)
    # an earlier ensemble's outputs are not a job
    (sweep / "abmil" / "synthetic" / "external" / "b" / "ensemble").mkdir(parents=True)
    (sweep / "abmil" / "synthetic" / "external" / "b" / "ensemble" / "metrics.json").write_text("{}")
    with caplog.at_level(logging.WARNING, logger="survlab.runner.evaluate"):
        assert fold_runs(sweep) == [a0, a1]
    text = "\n".join(
        r.getMessage() for r in caplog.records
    )  # the messages, not the file names of the log lines
    assert "fold2 skipped: incomplete (no DONE marker)" in text
    assert "fold3 skipped: no preprocessing.json" in text
    assert "ensemble" not in text

    _job(sweep / "coxmlp" / "synthetic" / "fold0", "coxmlp", "synthetic", 0)
    with pytest.raises(
        ValueError,
        match=r"2 model x cohort groups \(abmil/synthetic, coxmlp/synthetic\).*"
        r"narrow run= to one group's dir, e.g. run=.*abmil/synthetic$",
    ):
        fold_runs(sweep)
    assert fold_runs(sweep / "abmil" / "synthetic") == [a0, a1]
    with pytest.raises(ValueError, match=r"1 finished fold job\(s\).*pass run=.*coxmlp/synthetic/fold0"):
        fold_runs(sweep / "coxmlp")
    (tmp_path / "plain").mkdir()
    assert fold_runs(tmp_path / "plain") is None  # no job dir: not a sweep (load_run says what is missing)


def test_fold_runs_refuses_folds_of_several_configurations(tmp_path: Path) -> None:
    """A sweep over model.task.lr puts both learning rates' fold jobs under <model>/<cohort>/fold<k>/: they are two
    models' folds, not one model's, and used to be averaged into one "ensemble of 4 folds". Seeds (and repeats)
    of one configuration are still one ensemble."""
    from survlab.utils.job_identity import write_record

    sweep = tmp_path / "sweep"
    for fold in range(2):
        for lr in ("0.001", "0.1"):
            d = _job(
                sweep / "abmil" / "synthetic" / f"fold{fold}" / f"model.task.lr={lr}",
                "abmil",
                "synthetic",
                fold,
            )
            write_record(d, {}, ["model=abmil", f"fold={fold}", f"model.task.lr={lr}"])
    with pytest.raises(
        ValueError,
        match=r"^run=.*abmil/synthetic holds the fold jobs of 2 configurations \(model.task.lr=0.001, 0.1\); a fold "
        r"ensemble averages the folds of ONE configuration",
    ):
        fold_runs(sweep / "abmil" / "synthetic")
    seeds = tmp_path / "seeds"
    dirs = []
    for fold in range(2):
        for seed in (0, 1):
            d = _job(
                seeds / "abmil" / "synthetic" / f"fold{fold}" / f"seed={seed}", "abmil", "synthetic", fold
            )
            write_record(d, {}, ["model=abmil", f"fold={fold}", f"seed={seed}"])
            dirs.append(d)
    assert sorted(fold_runs(seeds)) == sorted(dirs)
