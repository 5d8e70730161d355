"""MM-DLS segmentor (survlab.models.mmdls_seg) and its data (survlab.data.segmentation): shapes, MONAI backbone,
patient-level slice splits, PNG slices == NIfTI slices, Dice well above chance after training, and the
predicted-mask -> stack pipeline (survlab.imaging_cut) feeding model=mmdls."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from survlab.data.segmentation import SegmentationDataModule, patient_split
from survlab.models.mmdls_seg import LungLesionSegmentor, resnet18_stem_to_layer2
from survlab.runner.testing import run_job


def test_segmentor_shapes_and_monai_backbone(tmp_path: Path) -> None:
    from monai.networks.nets import resnet18

    torch.manual_seed(0)
    net = LungLesionSegmentor().eval()
    x = torch.rand(2, 1, 64, 48)
    assert net.encoder(x).shape == (2, 128, 8, 6)  # ResNet-18 stem through layer2: H/8 x W/8
    out = net(x)
    assert out["lung"].shape == (2, 1, 64, 48) and out["lesion"].shape == (2, 1, 64, 48)
    full = resnet18(spatial_dims=2, n_input_channels=1, conv1_t_size=7, conv1_t_stride=2, num_classes=1)
    torch.save(full.state_dict(), tmp_path / "backbone.pt")
    loaded = LungLesionSegmentor(pretrained=str(tmp_path / "backbone.pt"))
    assert torch.equal(loaded.encoder[0].weight, full.conv1.weight)
    assert torch.equal(loaded.encoder[5][0].conv1.weight, full.layer2[0].conv1.weight)
    torch.save({"fc.weight": torch.zeros(1, 512)}, tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match=r"backbone weights missing"):
        LungLesionSegmentor(pretrained=str(tmp_path / "wrong.pt"))
    assert resnet18_stem_to_layer2(1)(x).shape[1] == 128


def test_patient_split_is_patient_level_and_independent_of_listing_order() -> None:
    ids = [f"P{i:02d}" for i in range(20)]
    a = patient_split(ids, folds=4, fold=1, val_fraction=0.2, seed=0)
    assert patient_split(ids[::-1], folds=4, fold=1, val_fraction=0.2, seed=0) == a
    parts = [set(a[p]) for p in ("train", "val", "test")]
    assert set().union(*parts) == set(ids) and sum(map(len, parts)) == 20  # disjoint, complete
    tests = [set(patient_split(ids, 4, k, 0.2, 0)["test"]) for k in range(4)]
    assert set().union(*tests) == set(ids) and sum(map(len, tests)) == 20  # every patient tested once


def test_png_slices_equal_nifti_slices(tiny_petct_cohort: Path, tmp_path: Path) -> None:
    from PIL import Image

    from survlab.data.imaging import read_volume, window_to_uint8

    root = tmp_path / "cohort"
    root.mkdir()
    cases = ["PCT0000", "PCT0001"]
    for case in cases:  # write the PNG slice layout from the volumes
        src = tiny_petct_cohort / "volumes" / case
        ct = window_to_uint8(read_volume(src / "ct.nii.gz"), (-1000, 400))
        for kind, arr in (
            ("image", ct),
            ("lung", read_volume(src / "lung_mask.nii.gz") > 0),
            ("lesion", read_volume(src / "lesion_mask.nii.gz") > 0),
        ):
            (root / "slices" / case / kind).mkdir(parents=True)
            for z in range(arr.shape[2]):
                Image.fromarray(
                    (arr[:, :, z] * (255 if kind != "image" else 1)).astype(np.uint8), mode="L"
                ).save(root / "slices" / case / kind / f"s{z}.png")
        shutil.copytree(src, root / "volumes" / case)
    kw = dict(root=str(root), image_size=24, splits={"folds": 2, "val_fraction": 0.5, "seed": 0})
    png, nifti = SegmentationDataModule(source="png", **kw), SegmentationDataModule(source="nifti", **kw)
    for case in cases:
        a, b = png.read_case(case), nifti.read_case(case)
        for x, y in zip(a, b, strict=True):
            assert np.array_equal(x, y)
        assert a[2].any() and len(a[0]) < 16  # lesion slices present; only slices with lung kept
    (root / "slices" / "PCT0001" / "lung" / "s3.png").unlink()
    with pytest.raises(ValueError, match=r"PCT0001/lung: slice s3\.png has no partner"):
        png.read_case("PCT0001")


def _seg_run(tmp_path: Path, epochs: int, n_patients: int) -> tuple[dict, Path]:
    overrides = [
        "experiment=mmdls_seg_synthetic",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        "logger=none",
        "callbacks.rich_progress_bar=null",
        "callbacks.lr_monitor=null",
        "trainer.enable_progress_bar=false",
        f"trainer.max_epochs={epochs}",
        f"data.synthetic.n_patients={n_patients}",
        "data.synthetic.volume_size=48",
        "data.synthetic.n_slices=16",
        "data.synthetic.lesion_window=24",
        "data.image_size=48",
        "data.splits.folds=4",
    ]
    return run_job(tmp_path / "seg", overrides), tmp_path / "seg"


def test_imaging_cut_turns_predicted_masks_into_stacks_mmdls_reads(tmp_path: Path) -> None:
    from survlab.data.imaging import ImagingStore
    from survlab.imaging_cut import cut_cohort

    metrics, run = _seg_run(tmp_path, epochs=1, n_patients=12)
    assert 0.0 <= metrics["test/dice_lung"] <= 1.0 and (run / "dice_per_slice.csv").is_file()
    cohort, out = tmp_path / "data" / "synthetic" / "petct", tmp_path / "cut"
    report = cut_cohort(run, out, lesion_window=24)
    assert set(report["cases"]) == {f"PCT{i:04d}" for i in range(12)}
    assert all(0.0 <= c["dice_lung_vs_cohort_mask"] <= 1.0 for c in report["cases"].values())
    assert (out / "masks" / "PCT0000" / "lesion_mask.nii.gz").is_file() and (out / "clinical.csv").is_file()
    assert json.loads((out / "cut_report.json").read_text())["cohort"] == str(cohort)
    written = sorted(p.name for p in (out / "images").iterdir()) if (out / "images").is_dir() else []
    assert len(written) + len(report["empty_lesion"]) == 12
    # a cohort in the stack layout model=mmdls reads: the cases without a predicted lesion lack images, no other
    store = ImagingStore(out, {"source": "png", "stack_length": 6, "image_size": 16, "radiomics_dim": 128})
    missing = store.missing([f"PCT{i:04d}" for i in range(12)])
    assert sorted(missing) == sorted(report["empty_lesion"])
    if written:
        store.prepare(written)
        store.fit(written, written)
        item = store.item(written[0])
        assert (
            item["ct_lesion"].shape == (6, 16, 16)
            and item["ct_lesion_mask"].any()
            and item["pet"].shape == (5,)
        )
    with pytest.raises(ValueError, match=r"out=.* is not empty"):
        cut_cohort(run, out)


@pytest.mark.slow
def test_segmentor_dice_well_above_chance_and_its_stacks_feed_mmdls(tmp_path: Path) -> None:
    from survlab.imaging_cut import cut_cohort

    metrics, run = _seg_run(tmp_path, epochs=12, n_patients=40)
    assert metrics["test/dice_lung"] > 0.8 and metrics["test/dice_lung"] > 3 * metrics["chance_dice_lung"], (
        metrics
    )
    assert (
        metrics["test/dice_lesion"] > 0.3 and metrics["test/dice_lesion"] > 20 * metrics["chance_dice_lesion"]
    ), metrics
    report = cut_cohort(run, tmp_path / "cut", lesion_window=24)
    assert len(report["empty_lesion"]) <= 8 and report["mean_dice_lesion_vs_cohort_mask"] > 0.3, report
    overrides = [
        "experiment=mmdls_synthetic",
        "debug=fast_dev_run",
        "data.synthetic=null",
        f"data.root={tmp_path / 'cut'}",
        f"paths.log_dir={tmp_path / 'logs2'}",
        "data.imaging.missing=drop",
        "data.imaging.lesion_window=24",
        "model.net.dim=16",
        "model.net.hidden=16",
        "model.net.heads=2",
        "data.splits.folds=3",
    ]
    mm = run_job(tmp_path / "mm", overrides)
    assert mm["n_test"] > 0 and 0.0 <= mm["test/cindex"] <= 1.0
