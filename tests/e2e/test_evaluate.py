"""`survlab eval`: a trained run applied again to its own test fold (reproduces it exactly), to another
cohort (external metrics equal to scikit-survival's on the written predictions; predictions equal to the in-memory
`external_data=` path, so preprocessing.json carries everything that was fitted), to a cohort without outcomes
(predictions only) — and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sksurv.metrics import concordance_index_censored

from survlab.cli.eval import main
from survlab.utils.outputs import write_json
from tests.helpers.cli import TINY as TINY_COHORT
from tests.helpers.runs import run_job

TINY_SPEC = (
    "{n_patients: %d, feature_dim: 8, n_genes: 60, n_pathways: 8, patches_per_slide: [6, 20], seed: %d}"
)
TINY = [*TINY_COHORT, "export_attention=false"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A lab folder: a user config dir (SURVLAB_CONFIG_PATH) with a second synthetic survival cohort `synth_b`
    (another seed, 30 patients) and a second classification cohort `cls_b`."""
    base = tmp_path_factory.mktemp("lab")
    (base / "conf" / "data").mkdir(parents=True)
    (base / "conf" / "data" / "synth_b.yaml").write_text(
        f"defaults: [synthetic, _self_]\nname: synth_b\nroot: {base / 'cohorts' / 'synth_b'}\n"
        f"wsi: {{feature_dim: 8}}\nsynthetic: {TINY_SPEC % (30, 5)}\n"
    )
    (base / "conf" / "data" / "cls_b.yaml").write_text(
        f"defaults: [synthetic_classification, _self_]\nname: cls_b\nroot: {base / 'cohorts' / 'cls_b'}\n"
        "wsi: {feature_dim: 8}\nsynthetic: {kind: classification, n_patients: 30, feature_dim: 8, "
        "patches_per_slide: [6, 20], seed: 9}\n"
    )
    old = os.environ.get("SURVLAB_CONFIG_PATH")
    os.environ["SURVLAB_CONFIG_PATH"] = str(base / "conf")
    yield base
    if old is None:
        os.environ.pop("SURVLAB_CONFIG_PATH", None)
    else:
        os.environ["SURVLAB_CONFIG_PATH"] = old


def _train(lab: Path, name: str, overrides: list[str]) -> Path:
    out = lab / "runs" / name
    metrics = run_job(out, [f"paths.data_dir={lab / 'data'}", f"paths.log_dir={lab / 'logs'}", *overrides])
    write_json(out / "metrics.json", metrics)  # as `python -m survlab.run` does after train()
    return out


@pytest.fixture(scope="module")
def surv_run(lab: Path) -> Path:
    """late_fusion (WSI + genomics, NLL) on the tiny synthetic cohort, fold 1, with the in-memory external test on
    synth_b (<run>/external/)."""
    return _train(lab, "surv", ["model=late_fusion", *TINY, "fold=1", "external_data=synth_b"])


@pytest.fixture(scope="module")
def clin_run(lab: Path) -> Path:
    """clinical_mlp (clinical covariates, Cox) on the tiny synthetic cohort."""
    return _train(
        lab,
        "clin",
        [
            "model=clinical_mlp",
            *TINY,
            "model.net.output=risk",
            "model.task.loss=cox",
            "external_data=synth_b",
        ],
    )


@pytest.fixture(scope="module")
def table_run(lab: Path) -> Path:
    """coxmlp (a table network: genes + clinical, whichever the cohort has) on the tiny synthetic cohort."""
    return _train(lab, "table", ["model=coxmlp", *TINY, "external_data=synth_b"])


@pytest.fixture(scope="module")
def cls_run(lab: Path) -> Path:
    """abmil_cls (patient label) on a tiny synthetic classification cohort."""
    return _train(
        lab,
        "cls",
        [
            "model=abmil_cls",
            "data=synthetic_classification",
            "debug=tiny",
            "data.synthetic.n_patients=40",
            "data.synthetic.feature_dim=8",
            "data.wsi.feature_dim=8",
            "data.synthetic.patches_per_slide=[6,20]",
            "data.splits.folds=3",
            "data.max_patches=64",
            "export_attention=false",
        ],
    )


def _evaluate(*argv: str) -> int:
    return main([str(a) for a in argv])


def _tree(folder: Path) -> list[tuple[str, int, int]]:
    return sorted(
        (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")
    )


# ---------------------------------------------------------------------------------------------------- own test fold
@pytest.mark.parametrize("run", ["surv_run", "clin_run", "cls_run", "table_run"])
def test_own_test_fold_reproduces_the_run_exactly(
    run: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    run_dir: Path = request.getfixturevalue(run)
    assert _evaluate(f"run={run_dir}", f"out={tmp_path / 'eval'}") == 0
    before, again = (
        pd.read_csv(run_dir / "predictions.csv"),
        pd.read_csv(tmp_path / "eval" / "predictions.csv"),
    )
    pd.testing.assert_frame_equal(before, again, check_exact=True)
    trained = json.loads((run_dir / "metrics.json").read_text())
    scored = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    tests = {k: v for k, v in trained.items() if k.startswith("test/")}
    assert tests and {k: scored[k] for k in tests} == tests
    assert scored["n_test"] == trained["n_test"] and scored["val/best"] == trained["val/best"]


def test_preprocessing_json_holds_what_was_fitted(surv_run: Path, clin_run: Path, cls_run: Path) -> None:
    state = json.loads((surv_run / "preprocessing.json").read_text())
    protocol = json.loads((surv_run / "protocol.json").read_text())
    assert state["fold"] == 1 and state["split_hash"] == protocol["cohort"]["split_hash"]
    assert state["time_bins"]["os"]["edges"] == protocol["cohort"]["preprocessing"]["time_bins"]["edges"]
    split = pd.read_csv(protocol["cohort"]["split_file"], dtype={"case_id": str})
    assert len(state["train_survival"]["os"]["time"]) == int((split["split"] == "train").sum())
    groups = state["genomics"]["groups"]
    assert len(state["genomics"]["scaler"]["shift"]) == len({g for grp in groups["genes"] for g in grp})
    assert state["dims"]["genomic_sizes"] == [len(g) for g in groups["genes"]]
    clin = json.loads((clin_run / "preprocessing.json").read_text())
    assert [c for c in clin["clinical"]["columns"]] == [
        "age",
        "marker_level",
        "sex",
        "noise_num_0",
        "noise_cat_1",
    ]
    assert (
        clin["clinical"]["params"]["sex"]["kind"] == "categorical"
        and clin["cox_baseline"]["survival"]["train_risk"]
    )
    cls = json.loads((cls_run / "preprocessing.json").read_text())
    assert cls["labels"]["label"]["classes"] == ["negative", "positive"] and cls["endpoints"] == []


# ---------------------------------------------------------------------------------------------------- another cohort
def test_external_cohort_metrics_and_protocol(surv_run: Path, lab: Path) -> None:
    cohort = lab / "cohorts" / "synth_b"
    before = _tree(cohort)
    assert _evaluate(f"run={surv_run}", "data=synth_b") == 0
    out = surv_run / "eval" / "synth_b"
    preds = pd.read_csv(out / "predictions.csv", dtype={"case_id": str})
    clinical = pd.read_csv(cohort / "clinical.csv", dtype={"case_id": str})
    assert (
        sorted(preds["case_id"]) == sorted(clinical["case_id"].unique()) and len(preds) == 30
    )  # every patient once
    metrics = json.loads((out / "metrics.json").read_text())
    reference = concordance_index_censored(
        preds["event"].astype(bool).to_numpy(), preds["time"].to_numpy(), preds["risk"].to_numpy()
    )[0]
    assert metrics["test/cindex"] == pytest.approx(reference, abs=1e-12)
    assert (
        metrics["evaluation"] == "external"
        and metrics["trained_on"] == "synthetic"
        and metrics["cohort"] == "synth_b"
    )
    # the JSON preprocessing reproduces the in-memory external test of the training run, value for value
    in_memory = pd.read_csv(surv_run / "external" / "predictions.csv", dtype={"case_id": str})
    pd.testing.assert_frame_equal(
        preds.drop(columns="fold"), in_memory.drop(columns="fold"), check_exact=True
    )
    protocol = json.loads((out / "protocol.json").read_text())
    assert protocol["trained_on"]["cohort"] == "synthetic" and protocol["trained_on"]["fold"] == 1
    assert protocol["trained_on"]["run_dir"] == str(surv_run.resolve())
    assert protocol["evaluated_on"]["cohort"] == "synth_b"
    assert protocol["evaluated_on"]["files"]["expression"] == str(cohort / "expression.csv")
    card = (out / "protocol.md").read_text()
    assert "**synthetic** fold 1" in card and "**synth_b**" in card and "test/cindex" in card
    assert (out / "km.png").read_bytes()[:4] == b"\x89PNG"
    # KM groups on the other cohort are cut at the run's training-patient cutoffs, as the in-memory external test
    run_cuts = json.loads((surv_run / "metrics.json").read_text())["km_cutoffs"]
    assert metrics["km_cutoffs"] == run_cuts
    assert (
        metrics["km_cutoffs"]
        == json.loads((surv_run / "external" / "metrics.json").read_text())["km_cutoffs"]
    )
    assert (
        metrics["km_logrank_p"]
        == json.loads((surv_run / "external" / "metrics.json").read_text())["km_logrank_p"]
    )
    assert _tree(cohort) == before, "survlab wrote into the external cohort's folder"


def test_external_cohort_in_the_real_layout(surv_run: Path, tmp_path: Path) -> None:
    """data=tcga_luad pointed at files in the CLAM/MCAT layout (.pt bags under features/<encoder>/, a cohort with no
    classification labels — the model scores none), kept read-only: scored, and nothing written into it."""
    from survlab.data.sources.synthetic import generate_cohort
    from survlab.data.sources.synthetic_spec import SyntheticSpec

    spec = SyntheticSpec(
        n_patients=36, feature_dim=8, n_genes=60, n_pathways=8, patches_per_slide=(6, 20), seed=11
    )
    cohort = generate_cohort(tmp_path / "tcga_luad", spec, encoder="resnet50_trunc")
    before = _tree(cohort)
    for p in [cohort, *cohort.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)  # user data is read-only
    try:
        args = (f"run={surv_run}", "data=tcga_luad", f"data.root={cohort}", "data.wsi.feature_dim=8")
        assert _evaluate(*args, "data.wsi.format=pt", f"out={tmp_path / 'out'}") == 0
    finally:
        for p in [cohort, *cohort.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert (
        metrics["cohort"] == "tcga_luad" and metrics["n_test"] == 36 and np.isfinite(metrics["test/cindex"])
    )
    assert _tree(cohort) == before


def test_cohort_without_outcomes_gets_predictions_only(surv_run: Path, lab: Path, tmp_path: Path) -> None:
    """synth_b with its outcome and label columns removed: the same risks as with outcomes, no metrics."""
    if not (lab / "cohorts" / "synth_b" / "clinical.csv").is_file():
        assert _evaluate(f"run={surv_run}", "data=synth_b", f"out={tmp_path / 'with'}") == 0
    copy = tmp_path / "blind"
    shutil.copytree(lab / "cohorts" / "synth_b", copy)
    clinical = pd.read_csv(copy / "clinical.csv", dtype={"case_id": str})
    clinical.drop(columns=["survival_months", "censorship", "label", "grade"]).to_csv(
        copy / "clinical.csv", index=False
    )
    out = tmp_path / "blind_eval"
    assert (
        _evaluate(
            f"run={surv_run}", "data=synth_b", f"data.root={copy}", "data.name=synth_b_blind", f"out={out}"
        )
        == 0
    )
    preds = pd.read_csv(out / "predictions.csv", dtype={"case_id": str})
    assert not (out / "metrics.json").exists() and not (out / "km.png").exists()
    assert {"time", "event"}.isdisjoint(preds.columns) and {"risk", "hazard_0", "surv_3"} <= set(
        preds.columns
    )
    with_outcomes = pd.read_csv(surv_run / "external" / "predictions.csv", dtype={"case_id": str})
    merged = preds.merge(with_outcomes, on="case_id", suffixes=("", "_ref"))
    assert len(merged) == 30
    np.testing.assert_allclose(merged["risk"], merged["risk_ref"], rtol=1e-6)
    protocol = json.loads((out / "protocol.json").read_text())
    assert (
        protocol["evaluation"].startswith("predictions only")
        and "no metrics" in (out / "protocol.md").read_text()
    )


def test_classification_predictions_only_names_classes(cls_run: Path, lab: Path, tmp_path: Path) -> None:
    assert _evaluate(f"run={cls_run}", "data=cls_b", f"out={tmp_path / 'ext'}") == 0
    ext = json.loads((tmp_path / "ext" / "metrics.json").read_text())
    preds = pd.read_csv(tmp_path / "ext" / "predictions.csv", dtype={"case_id": str})
    labelled = preds.dropna(subset=["label"])
    assert ext["test/balanced_accuracy"] == pytest.approx(
        np.mean(
            [
                np.mean(labelled.loc[labelled["label"] == c, "label_pred"] == c)
                for c in labelled["label"].unique()
            ]
        )
    )
    blind = tmp_path / "blind"
    shutil.copytree(lab / "cohorts" / "cls_b", blind)
    clinical = pd.read_csv(blind / "clinical.csv", dtype={"case_id": str})
    clinical.drop(columns=["label", "grade", "slide_label"]).to_csv(blind / "clinical.csv", index=False)
    assert (
        _evaluate(f"run={cls_run}", "data=cls_b", f"data.root={blind}", f"out={tmp_path / 'blind_eval'}") == 0
    )
    only = pd.read_csv(tmp_path / "blind_eval" / "predictions.csv", dtype={"case_id": str})
    assert not (tmp_path / "blind_eval" / "metrics.json").exists()
    assert set(only["label_pred"]) <= {"negative", "positive"}
    np.testing.assert_allclose(
        only[["label_prob_negative", "label_prob_positive"]].sum(axis=1), 1.0, rtol=1e-6
    )
    merged = only.merge(preds, on="case_id", suffixes=("", "_ref"))
    np.testing.assert_allclose(merged["label_prob_positive"], merged["label_prob_positive_ref"], rtol=1e-6)


def test_cox_model_external_metrics_use_the_saved_breslow_baseline(clin_run: Path, tmp_path: Path) -> None:
    """A Cox model's survival curves (IBS) on another cohort need the training patients' risks: saved in
    preprocessing.json, they give the in-memory external_data= metrics exactly."""
    assert _evaluate(f"run={clin_run}", "data=synth_b", f"out={tmp_path / 'ext'}") == 0
    scored = json.loads((tmp_path / "ext" / "metrics.json").read_text())
    in_memory = json.loads((clin_run / "external" / "metrics.json").read_text())
    assert scored["test/ibs"] is not None and 0.0 < scored["test/ibs"] < 1.0
    tests = {k: v for k, v in in_memory.items() if k.startswith("test/")}
    assert {k: scored[k] for k in tests} == tests


def test_external_clinical_codes_unseen_in_training_are_reported(
    clin_run: Path, lab: Path, tmp_path: Path
) -> None:
    """sex coded 'male'/'female' instead of the training 'M'/'F': encoded as zeros (as sklearn's OneHotEncoder with
    handle_unknown='ignore'), and reported in the protocol card rather than passed over in silence."""
    copy = tmp_path / "recoded"
    shutil.copytree(lab / "cohorts" / "synth_b", copy)
    clinical = pd.read_csv(copy / "clinical.csv", dtype={"case_id": str})
    clinical["sex"] = clinical["sex"].map({"M": "male", "F": "female"})
    clinical.to_csv(copy / "clinical.csv", index=False)
    out = tmp_path / "out"
    assert _evaluate(f"run={clin_run}", "data=synth_b", f"data.root={copy}", f"out={out}") == 0
    protocol = json.loads((out / "protocol.json").read_text())
    assert protocol["cohort"]["dropped"]["unseen_categories"] == {"sex": ["female", "male"]}
    recoded = pd.read_csv(out / "predictions.csv", dtype={"case_id": str}).set_index("case_id")["risk"]
    original = pd.read_csv(clin_run / "external" / "predictions.csv", dtype={"case_id": str}).set_index(
        "case_id"
    )
    assert not np.allclose(
        recoded.sort_index(), original["risk"].sort_index()
    )  # the covariate really changed


@pytest.mark.slow
def test_petct_multi_objective_external_equals_the_in_memory_path(tmp_path: Path) -> None:
    """MM-DLS (CT + PET/radiomics tables + clinical; survival, horizons, classes) on the second synthetic centre:
    the CT/PET table encoders and class orders from preprocessing.json give the in-memory external predictions."""
    run = tmp_path / "run"
    metrics = run_job(
        run,
        [
            "experiment=mmdls_synthetic",
            "debug=fast_dev_run",
            f"paths.data_dir={tmp_path / 'data'}",
            f"paths.log_dir={tmp_path / 'logs'}",
            "data.synthetic.n_patients=40",
            "model.net.dim=16",
            "model.net.hidden=16",
            "model.net.heads=2",
            "external_data=synthetic_petct_external",
        ],
    )
    write_json(run / "metrics.json", metrics)
    assert _evaluate(f"run={run}", "data=synthetic_petct_external") == 0
    out = run / "eval" / "synthetic_petct_external"
    scored = pd.read_csv(out / "predictions.csv").drop(columns="fold")
    pd.testing.assert_frame_equal(
        scored, pd.read_csv(run / "external" / "predictions.csv").drop(columns="fold")
    )
    assert {"subtype_prob_LUSC", "os_horizons_p_36"} <= set(scored.columns) and len(scored) == 120
    ext = json.loads((out / "metrics.json").read_text())
    assert ext["test/cindex"] == metrics["external/test/cindex"]


# ---------------------------------------------------------------------------------------------------- bad input
def _error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert _evaluate(*argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("survlab: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_missing_genes_error_by_default_or_mean_imputed(
    surv_run: Path, lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "fewer_genes"
    shutil.copytree(lab / "cohorts" / "synth_b", copy)
    expr = pd.read_csv(copy / "expression.csv", dtype={"case_id": str})
    state = json.loads((surv_run / "preprocessing.json").read_text())
    dropped = state["genomics"]["groups"]["genes"][0][:2]
    expr.drop(columns=dropped).to_csv(copy / "expression.csv", index=False)
    args = (f"run={surv_run}", "data=synth_b", f"data.root={copy}", f"out={tmp_path / 'out'}")
    err = _error(capsys, *args)
    assert "lacks 2 of the" in err and dropped[0] in err and "missing_genes=mean" in err
    assert _evaluate(*args, "missing_genes=mean") == 0
    assert len(pd.read_csv(tmp_path / "out" / "predictions.csv")) == 30


def test_bad_input_is_one_line(
    surv_run: Path, clin_run: Path, lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "model needs genomics but data=synth_b provides clinical+wsi" in _error(
        capsys, f"run={surv_run}", "data=synth_b", "data.genomics=null", f"out={tmp_path / 'o'}"
    )
    assert "unknown argument 'dat'" in _error(capsys, f"run={surv_run}", "dat=synth_b")
    assert "run=<run dir> is required" in _error(capsys, "data=synth_b")
    assert "no such directory" in _error(capsys, f"run={tmp_path / 'nowhere'}")
    assert "no conf/data/nope.yaml" in _error(capsys, f"run={surv_run}", "data=nope")
    assert "inside the cohort folder" in _error(
        capsys, f"run={surv_run}", "data=synth_b", f"out={lab / 'cohorts' / 'synth_b' / 'eval'}"
    )
    assert not (lab / "cohorts" / "synth_b" / "eval").exists()
    # the run's own cohort changed since training: refitted preprocessing differs from preprocessing.json
    protocol = json.loads((clin_run / "protocol.json").read_text())
    changed = tmp_path / "changed"
    shutil.copytree(protocol["config"]["data"]["root"], changed)
    clinical = pd.read_csv(changed / "clinical.csv", dtype={"case_id": str})
    clinical["age"] = clinical["age"] + 1.0
    clinical.to_csv(changed / "clinical.csv", index=False)
    err = _error(capsys, f"run={clin_run}", f"data.root={changed}", f"out={tmp_path / 'c'}")
    assert "changed since the run (clinical differ" in err
    # a run without preprocessing.json (older survlab)
    old = tmp_path / "old_run"
    shutil.copytree(clin_run, old, ignore=shutil.ignore_patterns("preprocessing.json"))
    assert "no preprocessing.json" in _error(capsys, f"run={old}")


def test_table_network_external_equals_the_in_memory_path(table_run: Path, tmp_path: Path) -> None:
    """coxmlp reads genes + clinical (table_modalities): `survlab eval` asks the other cohort for the same inputs and
    gives the in-memory external_data= predictions."""
    protocol = json.loads((table_run / "protocol.json").read_text())
    assert set(protocol["model"]["modalities"]) == {"genomics", "clinical"}
    assert _evaluate(f"run={table_run}", "data=synth_b", f"out={tmp_path / 'ext'}") == 0
    scored = pd.read_csv(tmp_path / "ext" / "predictions.csv", dtype={"case_id": str})
    in_memory = pd.read_csv(table_run / "external" / "predictions.csv", dtype={"case_id": str})
    pd.testing.assert_frame_equal(
        scored.drop(columns="fold"), in_memory.drop(columns="fold"), check_exact=True
    )
