"""Synthetic cohorts: determinism, caching, on-disk layout, planted signal and the oracle C-index."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from survlab.data.sources.synthetic import generate_cohort
from survlab.data.sources.synthetic_spec import SyntheticSpec, cohort_dir

TINY = SyntheticSpec(
    n_patients=30, feature_dim=8, n_genes=60, n_pathways=8, patches_per_slide=(6, 20), seed=3
)
# many patients, minimal bags: for survival / genomic statistics
TABLE = SyntheticSpec(
    n_patients=200,
    feature_dim=8,
    n_genes=60,
    n_pathways=8,
    slides_per_patient=(1, 1),
    patches_per_slide=(2, 3),
)
MULTI = SyntheticSpec(
    n_patients=120,
    feature_dim=8,
    n_genes=60,
    n_pathways=8,
    patches_per_slide=(64, 64),
    multiscale=True,
    seed=1,
)
CSVS = ("clinical.csv", "expression.csv", "signatures_mcat6.csv", "signatures_pathways.csv", "truth.csv")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_cohort(cohort_dir(tmp_path_factory.mktemp("syn"), "tiny", TINY), TINY)


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_cohort(tmp_path_factory.mktemp("syn") / "multi", MULTI)


def _patients(root: Path) -> pd.DataFrame:
    """One row per patient: clinical fields joined with truth.csv."""
    clinical = pd.read_csv(root / "clinical.csv").drop_duplicates("case_id").drop(columns="slide_id")
    return clinical.merge(pd.read_csv(root / "truth.csv"), on="case_id", validate="one_to_one")


def _load_pt(root: Path, slide_id: str, sub: str = "") -> torch.Tensor:
    return torch.load(
        root / "features" / "synthetic" / sub / "pt_files" / f"{slide_id}.pt", weights_only=True
    )


def test_same_spec_gives_identical_files(tiny: Path, tmp_path: Path) -> None:
    again = generate_cohort(tmp_path / "again", TINY)
    for name in (*CSVS, "oracle.json"):
        assert (tiny / name).read_bytes() == (again / name).read_bytes(), name
    for slide_id in pd.read_csv(tiny / "clinical.csv").slide_id:
        assert torch.equal(_load_pt(tiny, slide_id), _load_pt(again, slide_id))


def test_other_seed_gives_other_cohort(tiny: Path, tmp_path: Path) -> None:
    other = generate_cohort(tmp_path / "other", replace(TINY, seed=4))
    assert (tiny / "truth.csv").read_bytes() != (other / "truth.csv").read_bytes()
    assert cohort_dir("b", "n", TINY) != cohort_dir("b", "n", replace(TINY, seed=4))
    assert cohort_dir("b", "n", TINY) == cohort_dir("b", "n", replace(TINY))


def test_generation_is_cached_and_respects_spec(tmp_path: Path) -> None:
    root = generate_cohort(tmp_path / "c", TINY)
    stamps = {name: (root / name).stat().st_mtime_ns for name in (*CSVS, "oracle.json")}
    assert generate_cohort(root, TINY) == root
    assert {name: (root / name).stat().st_mtime_ns for name in stamps} == stamps
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp folders left behind"
    # a different spec at the same path replaces the stale cohort
    generate_cohort(root, replace(TINY, n_patients=12))
    assert json.loads((root / "oracle.json").read_text())["spec"]["n_patients"] == 12
    assert pd.read_csv(root / "truth.csv").shape[0] == 12


def test_layout_pt_and_h5_hold_the_same_bag(tiny: Path) -> None:
    clinical = pd.read_csv(tiny / "clinical.csv")
    assert list(clinical.columns[:4]) == ["case_id", "slide_id", "survival_months", "censorship"]
    assert {"label", "grade", "stage", "age", "sex", "site", "noise_num_0", "noise_cat_1"} <= set(
        clinical.columns
    )
    for slide_id in clinical.slide_id:
        pt = _load_pt(tiny, slide_id)
        with h5py.File(tiny / "features" / "synthetic" / "h5_files" / f"{slide_id}.h5", "r") as f:
            feats, coords = f["features"][:], f["coords"][:]
        assert pt.dtype == torch.float32 and feats.dtype == np.float32
        assert pt.shape == (feats.shape[0], 8) and 6 <= feats.shape[0] <= 20
        assert np.array_equal(pt.numpy(), feats)
        assert coords.shape == (feats.shape[0], 2) and np.issubdtype(coords.dtype, np.integer)
        assert len({tuple(c) for c in coords}) == feats.shape[0]  # distinct patch positions


def test_slides_per_patient_and_clinical_values(tiny: Path) -> None:
    clinical = pd.read_csv(tiny / "clinical.csv")
    per_patient = clinical.groupby("case_id").slide_id.nunique()
    assert len(per_patient) == 30 and per_patient.between(1, 3).all() and per_patient.nunique() > 1
    assert clinical.slide_id.is_unique
    # patient fields are repeated identically on each slide row
    patient_cols = [c for c in clinical.columns if c != "slide_id"]
    assert (clinical[patient_cols].drop_duplicates().groupby("case_id").size() == 1).all()
    assert set(clinical.censorship) == {0, 1} and (clinical.survival_months > 0).all()
    assert np.allclose(clinical.survival_months, clinical.survival_months.round(1))
    assert set(clinical.stage) <= {"I", "II", "III", "IV"} and set(clinical.grade) <= {0, 1, 2, 3}
    assert set(clinical.sex) <= {"M", "F"} and clinical.site.nunique() > 1
    patients = clinical.drop_duplicates("case_id")
    assert patients.age.isna().sum() >= 1 and patients.noise_num_0.isna().sum() >= 1
    assert patients.label.value_counts().to_dict() == {0: 15, 1: 15}


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_event_rate_and_oracle_match_reference(tmp_path: Path, seed: int) -> None:
    sksurv_metrics = pytest.importorskip("sksurv.metrics")
    root = generate_cohort(tmp_path / "t", replace(TABLE, seed=seed))
    oracle = json.loads((root / "oracle.json").read_text())
    patients = _patients(root)
    event = patients.censorship.to_numpy() == 0
    assert 0.25 <= oracle["event_rate"] <= 0.6 and oracle["event_rate"] == pytest.approx(event.mean())
    assert abs(oracle["event_rate"] - 0.4) <= 0.01  # censoring is calibrated to the target
    reference = sksurv_metrics.concordance_index_censored(
        event, patients.survival_months.to_numpy(), patients.true_risk.to_numpy()
    )[0]
    assert oracle["oracle_cindex"] == pytest.approx(reference, abs=1e-12)
    assert oracle["oracle_cindex"] > 0.7
    assert oracle["n_patients"] == 200 and oracle["n_slides"] == 200


def test_expression_rows_are_a_shuffled_permutation(tiny: Path) -> None:
    expr = pd.read_csv(tiny / "expression.csv")
    patients = pd.read_csv(tiny / "clinical.csv").case_id.drop_duplicates().tolist()
    assert expr.columns[0] == "case_id" and expr.shape == (30, 61)
    assert sorted(expr.case_id) == sorted(patients) and expr.case_id.tolist() != patients
    assert (expr.drop(columns="case_id").to_numpy() > 0).all()


def test_signatures_reference_absent_genes(tiny: Path) -> None:
    genes = set(pd.read_csv(tiny / "expression.csv", nrows=1).columns[1:])
    mcat = pd.read_csv(tiny / "signatures_mcat6.csv")
    pathways = pd.read_csv(tiny / "signatures_pathways.csv")
    assert list(mcat.columns) == [
        "tumor_suppression", "oncogenesis", "protein_kinases",
        "cellular_differentiation", "transcription", "cytokines_and_growth",
    ]  # fmt: skip
    assert list(pathways.columns) == [f"PATHWAY_{p:02d}" for p in range(8)]
    for table in (mcat, pathways):
        groups = {c: set(table[c].dropna()) for c in table.columns}
        assert all(len(g & genes) >= 3 for g in groups.values())
        assert 1 <= sum(bool(g - genes) for g in groups.values()) < len(groups)  # some, not all, miss genes
    assert all(3 <= len(pathways[c].dropna()) <= 32 for c in pathways.columns)


def test_genomic_signal_lives_in_signal_pathways(tmp_path: Path) -> None:
    root = generate_cohort(tmp_path / "g", TABLE)
    truth = pd.read_csv(root / "truth.csv")
    log_expr = np.log(pd.read_csv(root / "expression.csv").set_index("case_id").loc[truth.case_id])
    corr = log_expr.apply(lambda g: abs(np.corrcoef(g, truth.z_gen)[0, 1]))
    pathways = pd.read_csv(root / "signatures_pathways.csv")
    signal = {g for c in pathways.columns[:4] for g in pathways[c].dropna()} & set(corr.index)
    assert corr[list(signal)].min() > 0.3
    assert corr.drop(list(signal)).max() < 0.25
    mcat = pd.read_csv(root / "signatures_mcat6.csv")
    assert set(mcat.oncogenesis.dropna()) & set(corr.index) <= signal
    assert not set(mcat.transcription.dropna()) & signal
    patients = _patients(root).dropna(subset=["age"])
    assert np.corrcoef(patients.age, patients.z_clin)[0, 1] > 0.8


def test_multiscale_bag_sizes_follow_1_4_16(multi: Path) -> None:
    for slide_id in pd.read_csv(multi / "clinical.csv").slide_id[:20]:
        sizes = {sc: _load_pt(multi, slide_id, sc).shape for sc in ("x5", "x10", "x20")}
        assert sizes == {"x5": (4, 8), "x10": (16, 8), "x20": (64, 8)}
        assert torch.equal(_load_pt(multi, slide_id), _load_pt(multi, slide_id, "x20"))  # flat = x20
        with h5py.File(multi / "features" / "synthetic" / "x5" / "h5_files" / f"{slide_id}.h5", "r") as f:
            assert f["coords"].shape == (4, 2)
    tiny_bags = generate_cohort(
        multi.parent / "small", replace(MULTI, n_patients=4, patches_per_slide=(3, 3))
    )
    slide_id = pd.read_csv(tiny_bags / "clinical.csv").slide_id[0]
    assert _load_pt(tiny_bags, slide_id, "x5").shape[0] == 2  # at least 2 patches per scale


def _wsi_fit(root: Path, scale: str) -> float:
    """In-sample correlation of z_wsi with a least-squares fit on per-patient max-pooled bag features."""
    clinical = pd.read_csv(root / "clinical.csv")
    truth = pd.read_csv(root / "truth.csv").set_index("case_id")
    feats = clinical.groupby("case_id").slide_id.apply(
        lambda s: np.concatenate([_load_pt(root, i, scale).numpy() for i in s]).max(0)
    )
    x = np.column_stack([np.stack(feats.to_numpy()), np.ones(len(feats))])
    z = truth.loc[feats.index, "z_wsi"].to_numpy()
    return float(np.corrcoef(x @ np.linalg.lstsq(x, z, rcond=None)[0], z)[0, 1])


def test_wsi_signal_only_at_signal_scale(multi: Path) -> None:
    assert _wsi_fit(multi, "x5") > 0.7
    assert _wsi_fit(multi, "x20") < 0.45  # chance level for 9 regressors on 120 patients is ~0.27


def test_invalid_spec_is_rejected() -> None:
    with pytest.raises(ValueError, match="signal_scale"):
        SyntheticSpec(signal_scale="x40")
    with pytest.raises(ValueError, match="patches_per_slide"):
        SyntheticSpec(patches_per_slide=(10, 5))


def test_multiscale_x20_bags_are_hard_links_of_the_single_scale_bags(tiny_multiscale_cohort: Path) -> None:
    """features/<enc>/x20/ holds the same bags as features/<enc>/ (one copy on disk: hard links)."""
    base = tiny_multiscale_cohort / "features" / "synthetic"
    files = sorted((base / "h5_files").glob("*.h5")) + sorted((base / "pt_files").glob("*.pt"))
    assert files
    for f in files:
        twin = base / "x20" / f.parent.name / f.name
        assert twin.read_bytes() == f.read_bytes() and os.path.samefile(twin, f)


def test_planted_site_effects_shift_stain_and_baseline_hazard_per_site(tmp_path: Path) -> None:
    """n_sites > 0: TCGA barcodes carrying the site, even site sizes, a per-site constant in true_risk (the
    baseline hazard) and a per-site shift of every patch; the default spec's hash and files are untouched."""
    from survlab.data.cohort.split_groups import tcga_sites

    site_keys = {"n_sites", "site_stain_shift", "site_hazard_sd"}
    assert not site_keys & set(SyntheticSpec().to_json())  # default spec: the same hash, the same cohort dir
    assert site_keys & set(SyntheticSpec(n_sites=4, site_hazard_sd=1.0).to_json()) == {
        "n_sites",
        "site_hazard_sd",
    }
    spec = SyntheticSpec(
        n_patients=48,
        feature_dim=8,
        n_genes=20,
        n_pathways=4,
        patches_per_slide=(10, 12),
        slides_per_patient=(1, 1),
        n_sites=4,
        site_stain_shift=3.0,
        site_hazard_sd=1.0,
        weights=(1.0, 0.0, 0.0),
        formats=("h5",),
    )
    root = generate_cohort(tmp_path / "sites", spec)
    clin = pd.read_csv(root / "clinical.csv")
    assert list(tcga_sites(clin["case_id"])) == clin["site"].tolist()  # TCGA-<site>-<nnnn>
    assert clin["site"].value_counts().tolist() == [12, 12, 12, 12]
    truth = pd.read_csv(root / "truth.csv").merge(clin[["case_id", "site"]], on="case_id")
    baseline = (truth["true_risk"] - truth["z_wsi"]).groupby(truth["site"])
    assert baseline.std().max() < 1e-9 and baseline.mean().std() > 0.3  # one baseline log-hazard per site
    means = {}
    for slide, site in zip(clin["slide_id"], clin["site"], strict=True):
        with h5py.File(root / "features" / "synthetic" / "h5_files" / f"{slide}.h5") as f:
            means.setdefault(site, []).append(f["features"][:].mean(0))
    site_means = np.stack([np.mean(v, 0) for v in means.values()])
    within = np.mean([np.std(v, 0).mean() for v in means.values()])
    assert np.std(site_means, 0).mean() > 2 * within  # the stain shift separates the sites
    with pytest.raises(ValueError, match="need n_sites > 0"):
        SyntheticSpec(site_hazard_sd=1.0)
