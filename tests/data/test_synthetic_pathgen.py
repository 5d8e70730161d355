"""The synthetic PathGen cohort (planted, partly predictable expression) and `genomics.values_from` (synthetic values
through the scaler fitted on the REAL training expression)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from survlab.data.datamodule import CohortDataModule
from survlab.data.sources.synthetic_pathgen import PathGenSpec, generate_pathgen_cohort

SPEC = dict(
    n_patients=48, feature_dim=8, patches_per_slide=(6, 16), genes_per_family=(4, 5, 5, 5, 6, 4), seed=1
)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_pathgen_cohort(tmp_path_factory.mktemp("pg") / "c", PathGenSpec(**SPEC))


def _dm(root: Path, split_dir: Path, **genomics: object) -> CohortDataModule:
    dm = CohortDataModule(
        name="pg",
        root=str(root),
        wsi={"encoder": "synthetic", "format": "h5"},
        genomics={"signatures": "signatures_mcat6.csv", "scaling": "standard", "log1p": True, **genomics},
        labels={"grade": {"column": "grade", "classes": ["G1", "G2", "G3", "G4"], "ordinal": True}},
        splits={"dir": str(split_dir), "folds": 3, "val_fraction": 0.2, "calibration_fraction": 0.25},
        modalities=("wsi", "genomics"),
        batch_size=4,
    )
    dm.setup("fit")
    return dm


def test_layout_truth_and_ceiling(cohort: Path, tmp_path: Path) -> None:
    oracle = json.loads((cohort / "oracle.json").read_text())
    ceiling = oracle["generation_ceiling"]
    assert 0.2 < ceiling["spearman_per_gene_overall"] < 0.9
    assert set(ceiling["spearman_per_gene"]) == set(pd.read_csv(cohort / "signatures_mcat6.csv").columns)
    clinical = pd.read_csv(cohort / "clinical.csv")
    assert {"case_id", "slide_id", "survival_months", "censorship", "grade", "age", "sex"} <= set(
        clinical.columns
    )
    truth = pd.read_csv(cohort / "truth.csv").set_index("case_id")
    grade = clinical.groupby("case_id")["grade"].first().str[1].astype(int).reindex(truth.index)
    # grade depends on the image factor AND the genomics-only factor
    assert (
        np.corrcoef(grade, truth["z_img_0"])[0, 1] > 0.3 and np.corrcoef(grade, truth["z_gene"])[0, 1] > 0.3
    )
    # deterministic: the same spec gives identical files
    again = generate_pathgen_cohort(tmp_path / "again", PathGenSpec(**SPEC))
    assert (again / "expression.csv").read_bytes() == (cohort / "expression.csv").read_bytes()


def test_expression_is_partly_predictable_from_the_image_factors(cohort: Path) -> None:
    expr = pd.read_csv(cohort / "expression.csv", index_col="case_id")
    truth = pd.read_csv(cohort / "truth.csv", index_col="case_id").reindex(expr.index)
    z = truth[[c for c in truth.columns if c.startswith("z_img_")]].to_numpy()
    log_expr = np.log(expr.to_numpy())
    beta, *_ = np.linalg.lstsq(np.c_[np.ones(len(z)), z], log_expr, rcond=None)
    r2 = 1 - ((log_expr - np.c_[np.ones(len(z)), z] @ beta) ** 2).sum(0) / (
        (log_expr - log_expr.mean(0)) ** 2
    ).sum(0)
    assert (r2 > 0.5).mean() > 0.3  # many genes follow the slides' factors ...
    assert (r2 < 0.2).mean() > 0.2  # ... and many do not


def test_pathgen_kind_through_the_datamodule(tmp_path: Path) -> None:
    dm = CohortDataModule(
        name="pg",
        root=str(tmp_path / "gen"),
        wsi={"encoder": "synthetic", "format": "h5"},
        genomics={"signatures": "signatures_mcat6.csv"},
        labels={"grade": {"column": "grade"}},
        splits={"calibration_fraction": 0.2},
        synthetic={"kind": "pathgen", **SPEC},
    )
    dm.setup("fit")
    assert dm.dims.genomic_sizes == SPEC["genes_per_family"]
    assert len(dm.datasets["calibration"]) > 0 and dm.dims.n_classes == {"grade": 4}
    with pytest.raises(ValueError, match="unknown synthetic option"):
        CohortDataModule(name="pg", root=str(tmp_path / "x"), synthetic={"kind": "pathgen", "n_genes": 5})


def test_values_from_uses_the_real_training_scaler(cohort: Path, tmp_path: Path) -> None:
    real = _dm(cohort, tmp_path / "splits")
    table = pd.read_csv(cohort / "expression.csv", index_col="case_id")
    fake = table * 2.0 + 1.0
    fake.to_csv(tmp_path / "synthetic.csv")
    swapped = _dm(cohort, tmp_path / "splits", values_from=str(tmp_path / "synthetic.csv"))
    assert np.array_equal(
        real.fitted.gene_scaler.shift, swapped.fitted.gene_scaler.shift
    )  # fitted on real training values
    case = real.split.test[0]
    got = np.concatenate(swapped.sources.genomics[case])
    genes = [g for grp in real.fitted.gene_groups.genes for g in grp]
    expected = real.fitted.gene_scaler.transform(fake.loc[[case], genes].to_numpy())[0]
    assert np.allclose(got, expected, atol=1e-5)
    assert not np.allclose(got, np.concatenate(real.sources.genomics[case]))
    fake.drop(index=case).to_csv(tmp_path / "short.csv")
    with pytest.raises(ValueError, match=rf"short.csv: genomics.values_from lacks 1 cohort patient.*{case}"):
        _dm(cohort, tmp_path / "splits", values_from=str(tmp_path / "short.csv"))


def test_scaler_never_sees_test_patients(cohort: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(cohort, copy, ignore=shutil.ignore_patterns("splits"))
    base = _dm(cohort, tmp_path / "splits")
    expr = pd.read_csv(copy / "expression.csv", index_col="case_id")
    expr.loc[base.split.test] *= 50.0  # wildly different test expression
    expr.to_csv(copy / "expression.csv")
    moved = _dm(copy, tmp_path / "splits")
    assert np.allclose(base.fitted.gene_scaler.shift, moved.fitted.gene_scaler.shift)
    assert np.allclose(base.fitted.gene_scaler.scale, moved.fitted.gene_scaler.scale)
