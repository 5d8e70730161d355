"""TRIDENT's native layout (<job>/<mag>x_<size>px_<overlap>px_overlap/features_<enc>/<slide>.h5) read directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import pytest
import torch

from survlab.data.cohort.checks import DataFileError
from survlab.data.modalities.trident import resolve_trident

PATCHING = "20x_256px_0px_overlap"


def _trident_job(cohort: Path, job: Path, encoder: str = "uni_v1", leading_one: bool = False) -> Path:
    """Copy the cohort's CLAM-layout h5 bags into a TRIDENT job dir (features optionally saved [1, N, D], as some
    TRIDENT versions do), with TRIDENT's coords attrs and sibling folders."""
    src = cohort / "features" / "synthetic" / "h5_files"
    feats_dir = job / PATCHING / f"features_{encoder}"
    feats_dir.mkdir(parents=True)
    (job / PATCHING / "patches").mkdir()
    (job / "10x_512px_0px_overlap" / "features_conch_v15").mkdir(parents=True)
    for p in sorted(src.glob("*.h5")):
        with h5py.File(p, "r") as f, h5py.File(feats_dir / p.name, "w") as g:
            x = f["features"][()]
            g.create_dataset("features", data=x[None] if leading_one else x)
            c = g.create_dataset("coords", data=f["coords"][()])
            c.attrs.update(
                {"patch_size": 256, "patch_size_level0": 512, "target_magnification": 20, "overlap": 0}
            )
    return job


def _trident_wsi(job: Path, **over: Any) -> dict[str, Any]:
    spec = {"job_dir": str(job), "encoder": "uni_v1", "mag": 20, "patch_size": 256, "overlap": 0, **over}
    return {"layout": "trident", "trident": spec, "feature_dim": 8}


@pytest.mark.parametrize("leading_one", [False, True])
def test_trident_bags_equal_clam_bags(
    make_datamodule, tiny_cohort: Path, tmp_path: Path, leading_one: bool
) -> None:
    job = _trident_job(tiny_cohort, tmp_path / "job", leading_one=leading_one)
    clam = make_datamodule(wsi={"encoder": "synthetic", "feature_dim": 8, "format": "h5"})
    trident = make_datamodule(wsi=_trident_wsi(job))
    assert trident.sources.wsi.folder == job / PATCHING / "features_uni_v1"
    assert trident.cohort.case_ids == clam.cohort.case_ids and trident.split.test == clam.split.test
    n_rows = 0
    for slides in clam.cohort.table["slide_ids"]:
        a, b = clam.sources.wsi.load_patient(slides), trident.sources.wsi.load_patient(slides)
        assert torch.equal(a.features, b.features) and torch.equal(a.coords, b.coords)
        assert torch.equal(a.slide_index, b.slide_index)
        n_rows += a.features.shape[0]
    assert n_rows > 100
    batch_a, batch_b = next(iter(clam.test_dataloader())), next(iter(trident.test_dataloader()))
    assert torch.equal(batch_a.wsi, batch_b.wsi)
    card = trident.describe()
    assert card["encoder"] == "uni_v1" and card["wsi_layout"]["patch_size"] == 256


def test_trident_packed_store_keys_on_patching(make_datamodule, tiny_cohort: Path, tmp_path: Path) -> None:
    job = _trident_job(tiny_cohort, tmp_path / "job")
    wsi = {
        **_trident_wsi(job),
        "packed": True,
        "packed_dir": str(tmp_path / "packed"),
        "packed_dtype": "float32",
    }
    dm = make_datamodule(wsi=wsi)
    assert (tmp_path / "packed" / "uni_v1" / PATCHING).is_dir()
    plain = make_datamodule(wsi=_trident_wsi(job))
    slides = dm.cohort.table["slide_ids"].iloc[0]
    assert torch.equal(
        dm.sources.wsi.load_patient(slides).features, plain.sources.wsi.load_patient(slides).features
    )


def test_wrong_encoder_names_available_ones(tiny_cohort: Path, tmp_path: Path, make_datamodule) -> None:
    job = _trident_job(tiny_cohort, tmp_path / "job")
    with pytest.raises(FileNotFoundError) as err:
        make_datamodule(wsi=_trident_wsi(job, encoder="virchow"))
    msg = str(err.value)
    assert "features_virchow does not exist" in msg and "encoders found" in msg and "uni_v1" in msg
    assert "\n" not in msg


def test_wrong_patching_names_available_ones(tiny_cohort: Path, tmp_path: Path) -> None:
    job = _trident_job(tiny_cohort, tmp_path / "job")
    with pytest.raises(FileNotFoundError, match=r"found: 10x_512px_0px_overlap, 20x_256px_0px_overlap"):
        resolve_trident(job, "uni_v1", mag=40, patch_size=256)
    with pytest.raises(ValueError, match=r"2 patchings matching"):
        resolve_trident(job, "uni_v1")
    assert resolve_trident(job, "uni_v1", patch_size=256) == job / PATCHING / "features_uni_v1"
    with pytest.raises(FileNotFoundError, match=r"job dir .*nope does not exist"):
        resolve_trident(tmp_path / "nope", "uni_v1")


def test_empty_features_folder_is_an_error(tmp_path: Path, make_datamodule) -> None:
    (tmp_path / "job" / PATCHING / "features_uni_v1").mkdir(parents=True)
    with pytest.raises(DataFileError, match=r"features_uni_v1: no .h5 feature files"):
        make_datamodule(wsi=_trident_wsi(tmp_path / "job"))


def test_run_on_trident_layout_predicts_as_on_clam_layout(tmp_path: Path) -> None:
    """data=tcga_luad from the command-line config: TRIDENT-layout and CLAM-layout copies of the same bags give the
    same predictions (read-only data: nothing is written into the cohort or the job dir)."""
    from survlab.data.sources.synthetic import generate_cohort
    from survlab.data.sources.synthetic_spec import SyntheticSpec
    from tests.helpers.runs import run_job

    spec = SyntheticSpec(n_patients=40, feature_dim=8, n_genes=60, n_pathways=8, patches_per_slide=(6, 20))
    cohort = generate_cohort(tmp_path / "data" / "tcga_luad", spec, encoder="resnet50_trunc")
    job = tmp_path / "job" / PATCHING / "features_uni_v1"
    job.mkdir(parents=True)
    for p in (cohort / "features" / "resnet50_trunc" / "h5_files").glob("*.h5"):
        (job / p.name).write_bytes(p.read_bytes())
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    common = [
        "data=tcga_luad",
        "model=abmil",
        "debug=fast_dev_run",
        "data.num_workers=0",
        "data.pin_memory=false",
        "data.genomics=null",
        "data.wsi.feature_dim=8",
        "data.max_patches=32",
        "export_attention=false",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
    ]
    trident = [
        "data.wsi.layout=trident",
        f"data.wsi.trident.job_dir={tmp_path / 'job'}",
        "data.wsi.trident.encoder=uni_v1",
    ]
    run_job(tmp_path / "clam", [*common, "data.wsi.format=h5"])
    run_job(tmp_path / "trident", [*common, *trident])
    assert (tmp_path / "clam" / "predictions.csv").read_bytes() == (
        tmp_path / "trident" / "predictions.csv"
    ).read_bytes()
    assert [p for p in before if p.parts[0] in ("data", "job")] == sorted(
        p.relative_to(tmp_path)
        for p in tmp_path.rglob("*")
        if p.relative_to(tmp_path).parts[0] in ("data", "job")
    )


def test_trident_pt_features_with_format_pt(make_datamodule, tiny_cohort: Path, tmp_path: Path) -> None:
    """TRIDENT run with --saveas pt writes <slide>.pt tensors in the same folder: read with wsi.format=pt."""
    feats = tmp_path / "job" / PATCHING / "features_uni_v1"
    feats.mkdir(parents=True)
    for p in (tiny_cohort / "features" / "synthetic" / "pt_files").glob("*.pt"):
        (feats / p.name).write_bytes(p.read_bytes())
    dm = make_datamodule(wsi={**_trident_wsi(tmp_path / "job"), "format": "pt"})
    clam = make_datamodule(wsi={"encoder": "synthetic", "feature_dim": 8, "format": "pt"})
    slides = clam.cohort.table["slide_ids"].iloc[3]
    assert torch.equal(
        dm.sources.wsi.load_patient(slides).features, clam.sources.wsi.load_patient(slides).features
    )
    with pytest.raises(
        FileNotFoundError, match=r"no feature file for slide .* \(searched .*features_uni_v1\)"
    ):
        make_datamodule(wsi=_trident_wsi(tmp_path / "job"))  # default h5: the .pt files are not read


def test_check_reads_a_trident_cohort_with_the_training_stores(
    make_datamodule, tiny_cohort: Path, tmp_path: Path
) -> None:
    """`survlab check` (data.audit) builds its stores with the training builder, so wsi.layout=trident is checked:
    a broken h5 in TRIDENT's features_<encoder>/ folder is one finding naming that slide, the other slides are
    readable (before, check looked for <root>/features/<encoder>/h5_files and reported only a missing folder)."""
    from survlab.data.audit import audit_cohort

    job = _trident_job(tiny_cohort, tmp_path / "job")
    feats = job / PATCHING / "features_uni_v1"
    broken = sorted(feats.glob("*.h5"))[3]
    broken.write_bytes(b"not an hdf5 file")
    dm = make_datamodule(setup=False, wsi=_trident_wsi(job), modalities=None)
    result = audit_cohort(dm)
    wsi_findings = [f for f in result.findings if broken.stem in f.message]
    assert len(wsi_findings) == 1, [f.message for f in result.findings]
    assert str(feats) in wsi_findings[0].file and "feature folder" not in [f.check for f in result.findings]
    patients = dm.read_cohort_table().table["slide_ids"].tolist()
    readable = sum(any(s != broken.stem for s in slides) for slides in patients)
    assert result.summary["slides"] == sum(map(len, patients))
    assert result.summary["coverage"]["wsi"] == f"{readable}/{len(patients)} patients with readable features"
