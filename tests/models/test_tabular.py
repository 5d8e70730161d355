"""Table baselines on genes + clinical without slides: the Cox MLP (model=coxmlp) and the penalised linear Cox
(model=coxnet, scikit-survival), the training-fold gene filter, and the below-chance selection warning."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from survlab.utils.job_identity import identity_of
from tests.helpers.runs import compose_config, run_job
from tests.helpers.table_cohort import PLANTED, write_table_cohort, write_user_config

QUIET = [
    "logger=csv",
    "trainer.enable_progress_bar=false",
    "callbacks.rich_progress_bar=null",
    "callbacks.lr_monitor=null",
    "export_attention=false",
]


@pytest.fixture()
def table_cohort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A 200-patient planted-signal table cohort registered as data=my_table through SURVLAB_CONFIG_PATH."""
    root = write_table_cohort(tmp_path / "data" / "my_table")
    write_user_config(tmp_path / "conf", "my_table", root)
    monkeypatch.setenv("SURVLAB_CONFIG_PATH", str(tmp_path / "conf"))
    return root


def _job(tmp_path: Path, name: str, overrides: list[str]) -> tuple[dict, Path]:
    out = tmp_path / name
    metrics = run_job(out, [*QUIET, "data=my_table", f"paths.log_dir={tmp_path / 'logs'}", *overrides])
    return metrics, out


def _split(out: Path) -> pd.DataFrame:
    protocol = json.loads((out / "protocol.json").read_text())
    return pd.read_csv(protocol["cohort"]["split_file"], dtype={"case_id": str})


def _oracle(root: Path, case_ids: list[str], time: np.ndarray, event: np.ndarray) -> float:
    from survlab.metrics.survival import harrell_cindex

    truth = pd.read_csv(root.parent / f"{root.name}_truth.csv").set_index("case_id")["true_risk"]
    return harrell_cindex(truth.loc[case_ids].to_numpy(), time, event)


@pytest.mark.slow  # end-to-end: a training run / CLI subprocess (make test-e2e)
def test_coxmlp_learns_the_planted_signal_from_genes_and_clinical(tmp_path: Path, table_cohort: Path) -> None:
    metrics, out = _job(tmp_path, "coxmlp", ["model=coxmlp", "trainer.max_epochs=40"])
    preds = pd.read_csv(out / "predictions.csv", dtype={"case_id": str})
    oracle = _oracle(
        table_cohort, preds["case_id"].tolist(), preds["time"].to_numpy(), preds["event"].to_numpy()
    )
    assert metrics["test/cindex"] > 0.68, metrics["test/cindex"]
    assert metrics["test/cindex"] > oracle - 0.12, (metrics["test/cindex"], oracle)
    protocol = json.loads((out / "protocol.json").read_text())
    assert protocol["cohort"]["modalities"] == ["genomics", "clinical"]  # both tables, no slides
    # genes + age + 3 one-hot stages -> 64 (the default width) -> 1, plus the learned stand-in of the 30 genes for
    # a patient without genomics (data.missing=keep; AbsentModalities)
    assert protocol["model"]["n_parameters"] == (30 + 4) * 64 + 64 + 65 + 30
    assert metrics["selection_warning"] is None


def test_coxnet_matches_scikit_survival_and_lifelines_on_the_same_matrices(
    tmp_path: Path, table_cohort: Path
) -> None:
    """The run's coefficients and test risks equal an independent fit on matrices built here from the CSVs by
    case_id (z-scores of the inner training patients, the data module's scaler), fitted on ALL training-part
    patients (inner train + inner validation: select=cv does not use the validation split on its own) at the
    penalty the run chose; protocol.json says so."""
    from lifelines import CoxPHFitter
    from sksurv.linear_model import CoxnetSurvivalAnalysis
    from sksurv.util import Surv

    l1 = 0.5
    metrics, out = _job(
        tmp_path, "coxnet", ["model=coxnet", "model.net.inputs=[genomics]", f"model.estimator.l1_ratio={l1}"]
    )
    est = json.loads((out / "estimator.json").read_text())
    split = _split(out)
    clinical = pd.read_csv(table_cohort / "clinical.csv", dtype={"case_id": str}).set_index("case_id")
    expr = pd.read_csv(table_cohort / "expression.csv", dtype={"case_id": str}).set_index("case_id")
    inner = sorted(split.loc[split["split"] == "train", "case_id"])
    train = sorted(split.loc[split["split"].isin(["train", "val"]), "case_id"])
    test = sorted(split.loc[split["split"] == "test", "case_id"])
    assert len(train) > len(inner) > 0.7 * len(train)
    mean, std = expr.loc[inner].mean(), expr.loc[inner].std(ddof=0)
    x_train, x_test = ((expr.loc[train] - mean) / std).to_numpy(), ((expr.loc[test] - mean) / std).to_numpy()
    y = Surv.from_arrays(
        clinical.loc[train, "censorship"].to_numpy() == 0, clinical.loc[train, "survival_months"]
    )

    path = CoxnetSurvivalAnalysis(l1_ratio=l1, alphas=est["path"]["alphas"], max_iter=100000).fit(x_train, y)
    k = int(np.argmin(np.abs(np.asarray(est["path"]["alphas"]) - est["alpha"])))
    coefs = pd.read_csv(out / "coefficients.csv").set_index("feature")["coefficient"]
    assert list(coefs.index) == list(expr.columns)
    np.testing.assert_allclose(coefs.to_numpy(), path.coef_[:, k], atol=1e-5)
    preds = pd.read_csv(out / "predictions.csv", dtype={"case_id": str}).set_index("case_id").loc[test]
    np.testing.assert_allclose(preds["risk"].to_numpy(), path.predict(x_test, alpha=est["alpha"]), atol=1e-4)
    assert (
        coefs[list(PLANTED)].abs().min() > 3 * coefs.drop(list(PLANTED)).abs().max()
    )  # it found the planted genes
    assert metrics["test/cindex"] > 0.65 and est["n_fit"] == len(train) == est["n_train"] + est["n_val"]
    card = json.loads((out / "protocol.json").read_text())["estimator"]
    assert card["n_fit"] == len(train) and card["fitted_on"].startswith(
        "training part: inner train + inner val"
    )
    assert metrics["val/best"] == pytest.approx(max(c for c in est["path"]["cindex"] if c is not None))

    # lifelines solves the same penalised partial likelihood (its L1 term is a smooth approximation: loose tolerance)
    frame = pd.DataFrame(x_train, columns=expr.columns)
    frame["T"], frame["E"] = y["time"], y["event"].astype(int)
    ll = CoxPHFitter(penalizer=est["alpha"], l1_ratio=l1).fit(frame, "T", "E")
    np.testing.assert_allclose(
        ll.params_[list(PLANTED)].to_numpy(), coefs[list(PLANTED)].to_numpy(), atol=0.03
    )


def test_coxnet_cv_fits_on_training_and_validation_rows_and_val_on_training_rows_only() -> None:
    """select=cv: CV over, and the fit on, the inner train + inner validation rows together — the coefficients equal
    scikit-survival's CoxnetSurvivalAnalysis fitted on all of them at the chosen alpha. select=val: the fit stays on
    the inner training rows (the validation rows chose the penalty)."""
    from sksurv.linear_model import CoxnetSurvivalAnalysis
    from sksurv.util import Surv

    from survlab.runner.estimators.coxnet import PenalisedCox

    rng = np.random.default_rng(0)
    x = rng.standard_normal((90, 6))
    time = rng.exponential(np.exp(-x[:, 0] + 0.5 * x[:, 1]))
    event = rng.random(90) < 0.7
    tr, va = slice(0, 70), slice(70, 90)
    cv = PenalisedCox(l1_ratio=0.5, n_alphas=20, select="cv", cv_folds=3)
    fit = cv.fit(x[tr], time[tr], event[tr], x[va], time[va], event[va])
    every = CoxnetSurvivalAnalysis(l1_ratio=0.5, n_alphas=20, alpha_min_ratio=0.01, max_iter=100000).fit(
        x, Surv.from_arrays(event, time)
    )
    np.testing.assert_allclose(fit.alphas, every.alphas_, rtol=1e-12)
    k = fit.alphas.index(fit.alpha)
    np.testing.assert_allclose(fit.coef, every.coef_[:, k], atol=1e-8)
    assert fit.n_fit == 90 and fit.best_score == max(s for s in fit.scores if s is not None)
    inner = CoxnetSurvivalAnalysis(l1_ratio=0.5, n_alphas=20, alpha_min_ratio=0.01, max_iter=100000).fit(
        x[tr], Surv.from_arrays(event[tr], time[tr])
    )
    assert not np.allclose(fit.coef, inner.coef_[:, np.argmin(np.abs(inner.alphas_ - fit.alpha))], atol=1e-3)
    val = PenalisedCox(l1_ratio=0.5, n_alphas=20, select="val").fit(
        x[tr], time[tr], event[tr], x[va], time[va], event[va]
    )
    k = val.alphas.index(val.alpha)
    np.testing.assert_allclose(val.coef, inner.coef_[:, k], atol=1e-8)
    assert val.n_fit == 70


@pytest.mark.slow  # end-to-end: a training run / CLI subprocess (make test-e2e)
def test_coxnet_penalty_ignores_the_test_patients(tmp_path: Path, table_cohort: Path) -> None:
    """Scrambling the test patients' outcomes and expression leaves the chosen penalty and coefficients unchanged;
    changing the TRAINING patients' outcomes changes them (so the check can fail)."""
    base, out = _job(tmp_path, "a", ["model=coxnet"])
    split = _split(out)
    test_ids = set(split.loc[split["split"] == "test", "case_id"])
    train_ids = set(split.loc[split["split"] == "train", "case_id"])

    def variant(name: str, ids: set[str]) -> tuple[dict, Path]:
        root = table_cohort.parent / name
        shutil.copytree(table_cohort, root)
        clinical = pd.read_csv(root / "clinical.csv", dtype={"case_id": str})
        rows = clinical["case_id"].isin(ids)
        clinical.loc[rows, "survival_months"] = clinical.loc[rows, "survival_months"].to_numpy()[::-1]
        clinical.loc[rows, "censorship"] = 1 - clinical.loc[rows, "censorship"]
        clinical.to_csv(root / "clinical.csv", index=False)
        expr = pd.read_csv(root / "expression.csv", dtype={"case_id": str})
        expr.loc[expr["case_id"].isin(ids), list(PLANTED)] *= -1
        expr.to_csv(root / "expression.csv", index=False)
        # same split files (the split dir is keyed by the cohort's name and patient set, reused as-is)
        return _job(tmp_path, name, ["model=coxnet", f"data.root={root}"])

    _, out_test = variant("scrambled_test", test_ids)
    _, out_train = variant("scrambled_train", train_ids)
    est = [json.loads((o / "estimator.json").read_text()) for o in (out, out_test, out_train)]
    coef = [pd.read_csv(o / "coefficients.csv")["coefficient"].to_numpy() for o in (out, out_test, out_train)]
    assert _split(out_test).equals(split)
    assert est[1]["alpha"] == est[0]["alpha"] and est[1]["path"] == est[0]["path"]
    np.testing.assert_array_equal(coef[1], coef[0])
    assert not np.allclose(coef[2], coef[0], atol=1e-3)
    assert base["test/cindex"] > 0.65


def test_gene_filter_is_fitted_on_training_patients_and_recorded(tmp_path: Path, table_cohort: Path) -> None:
    from survlab.data.datamodule import CohortDataModule

    def genes(root: Path) -> tuple[list[str], dict]:
        dm = CohortDataModule(
            name="my_table",
            root=str(root),
            slide_col=None,
            genomics={"select": {"method": "variance", "top_k": 5}},
            clinical=None,
            splits={"folds": 5, "val_fraction": 0.2},
            split_root=str(tmp_path / "splits"),
            modalities=("genomics",),
            fold=0,
        )
        dm.setup()
        return [g for grp in dm.fitted.gene_groups.genes for g in grp], dm

    chosen, dm = genes(table_cohort)
    expr = pd.read_csv(table_cohort / "expression.csv", dtype={"case_id": str}).set_index("case_id")
    train = dm.split.train
    expected = expr.loc[list(train)].var(ddof=0).sort_values(ascending=False).index[:5]
    assert sorted(chosen) == sorted(expected) and dm.dims.genomic_sizes == (5,)
    report = dm.describe()["preprocessing"]["genomics"]["select"]
    assert (
        report["genes"] == sorted(expected)
        and report["n_genes_before"] == 30
        and report["fitted_on"] == "train"
    )

    def with_values(name: str, ids: list[str]) -> list[str]:
        root = table_cohort.parent / name
        shutil.copytree(table_cohort, root)
        other = expr.copy()
        low = [g for g in expr.columns if g not in chosen][:5]
        other.loc[ids, low] = np.random.default_rng(1).normal(0, 1000, size=(len(ids), 5))  # huge variance
        other.reset_index().to_csv(root / "expression.csv", index=False)
        return genes(root)[0]

    assert with_values("noisy_test", list(dm.split.test)) == chosen  # test patients cannot move the choice
    assert sorted(with_values("noisy_train", list(train))) != sorted(chosen)


def test_covariates_in_their_own_table_give_the_same_inputs(tmp_path: Path) -> None:
    """survival.csv + clinical.csv (clinical.table) + expression.csv == one clinical.csv with everything, patient by
    patient (joined by case_id, both tables in other row orders); a patient without a covariate row is one line."""
    from survlab.data.cohort.checks import DataFileError
    from survlab.data.datamodule import CohortDataModule

    one = write_table_cohort(tmp_path / "one")
    three = write_table_cohort(tmp_path / "three", three_files=True)

    def inputs(root: Path, **kw: object) -> dict[str, np.ndarray]:
        dm = CohortDataModule(
            name="t",
            root=str(root),
            slide_col=None,
            genomics={},
            splits={"folds": 5},
            split_root=str(tmp_path / "splits" / root.name),
            fold=0,
            **kw,
        )
        dm.setup()
        return {
            c: np.concatenate([*dm.sources.genomics[c], dm.sources.clinical[c]]) for c in dm.cohort.case_ids
        }

    a = inputs(one, clinical={"columns": ["age", "stage"], "categorical": ["stage"]})
    b = inputs(
        three,
        clinical_csv="survival.csv",
        clinical={"table": "clinical.csv", "columns": ["age", "stage"], "categorical": ["stage"]},
    )
    assert a.keys() == b.keys() and all(np.array_equal(a[c], b[c]) for c in a)
    covariates = pd.read_csv(three / "clinical.csv", dtype={"case_id": str})
    covariates[covariates["case_id"] != "P007"].to_csv(three / "clinical.csv", index=False)
    with pytest.raises(
        DataFileError, match=r"clinical.csv: no row for 1 cohort patient\(s\) \(P007\); add their rows"
    ):
        inputs(three, clinical_csv="survival.csv", clinical={"table": "clinical.csv", "columns": ["age"]})
    with pytest.raises(DataFileError, match=r"clinical.csv: no column\(s\) weight"):
        inputs(
            three,
            clinical_csv="survival.csv",
            clinical={"table": "clinical.csv", "columns": ["age", "weight"]},
        )


def test_cox_score_statistic_equals_lifelines_logrank_for_a_binary_gene() -> None:
    """For a 0/1 covariate the Cox score statistic at beta = 0 is the log-rank statistic (no tied times)."""
    from lifelines.statistics import logrank_test

    from survlab.data.modalities.gene_filter import cox_score_statistic

    rng = np.random.default_rng(3)
    n = 80
    groups = rng.integers(0, 2, size=(n, 3)).astype(float)
    time, event = rng.exponential(10, n) * np.exp(-0.8 * groups[:, 0]), rng.random(n) < 0.7
    stats = cox_score_statistic(groups, time, event)
    for j in range(3):
        a = groups[:, j] == 1
        ref = logrank_test(time[a], time[~a], event[a], event[~a]).test_statistic
        assert stats[j] == pytest.approx(ref, rel=1e-10)
    assert stats[0] > 5 * max(stats[1], stats[2])  # the gene that moves the hazard


def test_univariate_cox_filter_finds_the_planted_genes_from_training_outcomes(tmp_path: Path) -> None:
    from survlab.data.datamodule import CohortDataModule

    root = write_table_cohort(tmp_path / "cohort")

    def chosen(root: Path) -> tuple[list[str], CohortDataModule]:
        dm = CohortDataModule(
            name="t",
            root=str(root),
            slide_col=None,
            clinical=None,
            modalities=("genomics",),
            genomics={"select": {"method": "univariate_cox", "top_k": 2}},
            split_root=str(tmp_path / "splits"),
            fold=0,
        )
        dm.setup()
        return [g for grp in dm.fitted.gene_groups.genes for g in grp], dm

    genes, dm = chosen(root)
    assert sorted(genes) == list(PLANTED)
    assert dm.describe()["preprocessing"]["genomics"]["select"]["method"] == "univariate_cox"
    # the test patients' outcomes reversed: the same genes (they are not used)
    other = tmp_path / "other"
    shutil.copytree(root, other)
    clinical = pd.read_csv(other / "clinical.csv", dtype={"case_id": str})
    rows = clinical["case_id"].isin(set(dm.split.test))
    clinical.loc[rows, "survival_months"] = clinical.loc[rows, "survival_months"].to_numpy()[::-1]
    clinical.to_csv(other / "clinical.csv", index=False)
    assert chosen(other)[0] == genes


def test_external_cohort_gets_the_training_folds_gene_filter_and_covariate_join(
    tmp_path: Path, table_cohort: Path
) -> None:
    """external_data= on the same patients kept as three CSVs under another name: the training fold's filtered genes,
    scaler and encoder apply, so the fold's test patients get exactly their test-fold risks."""
    three = write_table_cohort(tmp_path / "data" / "copy3", three_files=True)
    write_user_config(tmp_path / "conf", "copy3", three, three_files=True)
    select = "+data.genomics.select={method: variance, top_k: 10}"
    _, out = _job(tmp_path, "ext", ["model=coxnet", select, "external_data=copy3"])
    test = pd.read_csv(out / "predictions.csv", dtype={"case_id": str}).set_index("case_id")
    ext = pd.read_csv(out / "external" / "predictions.csv", dtype={"case_id": str}).set_index("case_id")
    assert len(ext) == 200 and len(pd.read_csv(out / "coefficients.csv")) == 10 + 4
    np.testing.assert_allclose(ext.loc[test.index, "risk"].to_numpy(), test["risk"].to_numpy(), atol=1e-6)


def test_external_data_overrides_point_the_external_cohort_at_other_files(
    tmp_path: Path, table_cohort: Path
) -> None:
    """external_data_overrides={root: <dir>}: the external cohort's config with that key replaced (here its files
    moved, the survival times changed): the run scores the files there; the job's identity records the override."""
    three = write_table_cohort(tmp_path / "data" / "copy3", three_files=True)
    write_user_config(tmp_path / "conf", "copy3", three, three_files=True)
    moved = tmp_path / "elsewhere" / "copy3"
    shutil.copytree(three, moved)
    survival = pd.read_csv(moved / "survival.csv", dtype={"case_id": str})
    survival["survival_months"] = (survival["survival_months"] + 1000).round(4)
    survival.to_csv(moved / "survival.csv", index=False)
    _, out = _job(
        tmp_path, "ext", ["model=coxnet", "external_data=copy3", f"external_data_overrides={{root:{moved}}}"]
    )
    ext = pd.read_csv(out / "external" / "predictions.csv", dtype={"case_id": str}).set_index("case_id")
    expected = survival.set_index("case_id")["survival_months"]
    assert len(ext) == 200 and ext["time"].min() > 1000
    np.testing.assert_allclose(ext["time"].to_numpy(), expected.loc[ext.index].to_numpy())
    base = ["data=my_table", "model=coxnet", "external_data=copy3"]
    plain, default = (
        identity_of(compose_config(tmp_path / "id", o))
        for o in (base, [*base, "external_data_overrides=null"])
    )
    moved_id = identity_of(
        compose_config(tmp_path / "id", [*base, f"external_data_overrides={{root:{moved}}}"])
    )
    assert plain == default != moved_id and moved_id["external_data_overrides"] == {"root": str(moved)}


def test_gene_filter_bad_option_is_one_line(tmp_path: Path, table_cohort: Path) -> None:
    from survlab.data.modalities.gene_filter import GeneFilter

    with pytest.raises(
        ValueError, match=r"genomics.select.method='pca'; allowed: \['variance', 'univariate_cox'\]"
    ):
        GeneFilter.from_config({"method": "pca"})
    with pytest.raises(ValueError, match=r"unknown genomics.select option\(s\) \['k'\]"):
        GeneFilter.from_config({"k": 5})


@pytest.mark.slow  # end-to-end: a training run / CLI subprocess (make test-e2e)
def test_below_chance_validation_warns_in_log_and_metrics(
    tmp_path: Path, table_cohort: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Inner-validation patients whose planted genes run the other way: a Cox MLP trained on the inner training
    split ranks them worse than chance at every epoch, and the run says so. (Not coxnet: select=cv fits on the
    validation patients too and reports its CV C-index; select=val can always fall back to the all-zero model, 0.5.)"""
    mlp = ["model=coxmlp", "model.net.inputs=[genomics]", "model.task.lr=0.01", "trainer.max_epochs=4"]
    _, out = _job(tmp_path, "first", mlp)
    split = _split(out)
    val = split.loc[split["split"] == "val", "case_id"]
    root = table_cohort.parent / "inverted_val"
    shutil.copytree(table_cohort, root)
    expr = pd.read_csv(root / "expression.csv", dtype={"case_id": str})
    rows = expr["case_id"].isin(set(val))
    expr.loc[rows, list(PLANTED)] = expr.loc[
        rows, list(PLANTED[::-1])
    ].to_numpy()  # swap the two planted genes
    expr.to_csv(root / "expression.csv", index=False)
    with caplog.at_level("WARNING", logger="survlab.run"):
        metrics, _ = _job(tmp_path, "inverted", [*mlp, f"data.root={root}"])
    assert metrics["val/best"] < 0.4
    assert metrics["selection_warning"].startswith(
        f"the selected checkpoint's inner-validation val/cindex is {metrics['val/best']:.3f}, below chance (0.500)"
    )
    assert [r.message for r in caplog.records if r.levelname == "WARNING" and "below chance" in r.message]


def test_coxnet_bad_settings_fail_before_any_data_is_read(tmp_path: Path) -> None:
    from survlab.config.check import check_config
    from survlab.config.check_values import ConfigError
    from survlab.runner.estimators.coxnet import PenalisedCox
    from tests.helpers.runs import compose_config

    cfg = compose_config(tmp_path / "run", ["model=coxnet", "data=gse7390", "+model.estimator.l1=0.5"])
    with pytest.raises(ConfigError, match="model.estimator.l1: unknown option of PenalisedCox; allowed: "):
        check_config(cfg)
    with pytest.raises(ValueError, match=r"model.estimator.l1_ratio=0.0: must be in \(0, 1\]"):
        PenalisedCox(l1_ratio=0.0)
    with pytest.raises(ValueError, match=r"model.estimator.select='test': must be one of \['cv', 'val'\]"):
        PenalisedCox(select="test")


def test_chance_levels_of_monitored_metrics() -> None:
    from types import SimpleNamespace

    from survlab.data.dims import ModalityDims
    from survlab.runner.selection import chance_level, selection_warning

    objective = SimpleNamespace(label="grade", level="patient")
    task = SimpleNamespace(
        objectives={"grade": objective},
        primary=objective,
        net=SimpleNamespace(dims=ModalityDims(n_classes={"grade": 3})),
    )
    assert chance_level("val/cindex", task) == 0.5 and chance_level("val/survival/auc_td", task) == 0.5
    assert chance_level("val/grade/balanced_accuracy", task) == pytest.approx(1 / 3)
    assert chance_level("val/balanced_accuracy", task) == pytest.approx(1 / 3)
    assert chance_level("val/loss", task) is None and chance_level("val/ibs", task) is None
    assert selection_warning("val/grade/balanced_accuracy", "max", 0.30, task) is not None
    assert selection_warning("val/grade/balanced_accuracy", "max", 0.34, task) is None
    assert selection_warning("val/cindex", "max", 0.5, task) is None
    assert selection_warning("val/loss", "min", 9.0, task) is None
    # a real OutcomeTask holds its objectives in an nn.ModuleDict (no .get): named objectives are looked up there
    from torch import nn

    class Grade(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.label, self.level = "grade", "patient"

    module_task = SimpleNamespace(objectives=nn.ModuleDict({"grade": Grade()}), primary=None, net=task.net)
    assert chance_level("val/grade/balanced_accuracy", module_task) == pytest.approx(1 / 3)
    assert chance_level("val/subtype/balanced_accuracy", module_task) is None


def test_table_model_on_a_cohort_without_tables_is_one_line() -> None:
    from survlab.models.coxmlp import CoxMLP
    from survlab.runner.modalities import job_modalities

    assert job_modalities(CoxMLP, {"name": "x", "genomics": {}, "clinical": {"columns": ["age"]}}) == (
        "genomics",
        "clinical",
    )
    assert job_modalities(CoxMLP, {"name": "x", "genomics": None, "clinical": {"columns": ["age"]}}) == (
        "clinical",
    )
    with pytest.raises(
        ValueError, match="CoxMLP reads genomics and/or clinical but data=slides_only has neither"
    ):
        job_modalities(CoxMLP, {"name": "slides_only", "genomics": None, "clinical": None})
    with pytest.raises(ValueError, match=r"model.net.inputs=\['wsi'\]"):
        job_modalities(CoxMLP, {"name": "x", "genomics": {}}, {"inputs": ["wsi"]})
