"""MM-DLS segmentor (survlab.models.mmdls_seg) and its data (survlab.data.segmentation): shapes, MONAI backbone,
patient-level slice splits, PNG slices == NIfTI slices, Dice well above chance after training, and the
predicted-mask -> stack pipeline (survlab.runner.imaging_cut) feeding model=mmdls."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from survlab.data.segmentation import SegmentationDataModule, patient_split
from survlab.models.mmdls_seg import LungLesionSegmentor, resnet18_stem_to_layer2
from tests.helpers.runs import run_job


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

    from survlab.data.modalities.imaging_volumes import read_volume, window_to_uint8

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
        "data.outcome_splits.splits.folds=4",
    ]
    return run_job(tmp_path / "seg", overrides), tmp_path / "seg"


@pytest.mark.slow  # end-to-end: a training run / CLI subprocess (make test-e2e)
def test_imaging_cut_turns_predicted_masks_into_stacks_mmdls_reads(tmp_path: Path) -> None:
    from monai.metrics import DiceMetric

    from survlab.data.modalities.imaging import ImagingStore
    from survlab.data.modalities.imaging_volumes import check_stack_provenance, read_volume
    from survlab.runner.imaging_cut import cut_cohort

    metrics, run = _seg_run(tmp_path, epochs=1, n_patients=12)
    per_patient = pd.read_csv(run / "dice_per_patient.csv")
    assert metrics["test/dice_lung"] == pytest.approx(per_patient["dice_lung"].mean())
    cohort, out = tmp_path / "data" / "synthetic" / "petct", tmp_path / "cut"
    report = cut_cohort(run, out, lesion_window=24)
    assert set(report["cases"]) == {f"PCT{i:04d}" for i in range(12)}
    for case in (
        "PCT0000",
        "PCT0005",
    ):  # the reported Dice vs the cohort's masks == MONAI's on the written masks
        for name in ("lung", "lesion"):
            pred, ref = (
                read_volume(d / case / f"{name}_mask.nii.gz") > 0 for d in (out / "masks", cohort / "volumes")
            )
            monai = DiceMetric(include_background=True, ignore_empty=False)(
                torch.from_numpy(pred)[None, None].float(), torch.from_numpy(ref)[None, None].float()
            )
            assert report["cases"][case][f"dice_{name}_vs_cohort_mask"] == pytest.approx(
                float(monai), abs=1e-6
            )
    assert (out / "clinical.csv").read_bytes() == (cohort / "clinical.csv").read_bytes()
    written = sorted(p.name for p in (out / "images").iterdir()) if (out / "images").is_dir() else []
    assert len(written) + len(report["empty_lesion"]) == 12
    # which segmentor made the stacks, and on which fold's training patients: checked by model=mmdls
    seg = json.loads((out / "cut_report.json").read_text())["segmentor"]
    protocol = json.loads((run / "protocol.json").read_text())
    assert seg["fold"] == 0 and seg["split_source"]["kind"] == "outcome_cohort"
    assert seg["test_patients"] == protocol["cohort"]["split"]["test"]
    fold0 = seg["split_source"]["split_hash"]
    assert check_stack_provenance(out, "cut", 0, fold0)["run"] == str(run.resolve())
    with pytest.raises(ValueError, match=r"cut by the segmentor of fold 0 .* this run is fold 1"):
        check_stack_provenance(out, "cut", 1, "another-fold-hash")
    # a cohort in the stack layout model=mmdls reads: the cases without a predicted lesion lack images, no other
    store = ImagingStore(out, {"source": "png", "stack_length": 6, "image_size": 16, "radiomics_dim": 128})
    missing = store.missing([f"PCT{i:04d}" for i in range(12)])
    assert sorted(missing) == sorted(report["empty_lesion"])
    with pytest.raises(ValueError, match=r"out=.* is not empty"):
        cut_cohort(run, out)


def test_stacks_from_a_segmentor_with_its_own_split_are_refused(tmp_path: Path) -> None:
    from survlab.data.modalities.imaging_volumes import check_stack_provenance

    assert check_stack_provenance(tmp_path, "x", 0, "h") is None  # no cut_report.json: stacks from elsewhere
    (tmp_path / "cut_report.json").write_text(
        json.dumps({"segmentor": {"fold": 0, "split_source": {"kind": "segmentation", "folds": 5}}})
    )
    with pytest.raises(
        ValueError, match=r"data=x: the stacks in .* were cut by a segmentor trained on its own"
    ):
        check_stack_provenance(tmp_path, "x", 0, "h")


@pytest.mark.slow
def test_segmentor_dice_well_above_chance_and_its_stacks_feed_mmdls(tmp_path: Path) -> None:
    from survlab.runner.imaging_cut import cut_cohort

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
        "data.splits.folds=4",  # the segmentor's folds (_seg_run): fold 0's stacks serve MM-DLS fold 0 only
    ]
    run_job(tmp_path / "mm", overrides)
    # MM-DLS fold 0 is tested on the segmentor's fold-0 test patients (those with a predicted lesion), and its
    # protocol card names the segmentor run that cut the stacks
    seg_test = set(report["segmentor"]["test_patients"]) - set(report["empty_lesion"])
    assert set(pd.read_csv(tmp_path / "mm" / "predictions.csv")["case_id"]) == seg_test
    card = json.loads((tmp_path / "mm" / "protocol.json").read_text())
    assert json.dumps(card).count(str(run.resolve())) >= 1
    with pytest.raises(ValueError, match=r"this run is fold 1"):
        run_job(tmp_path / "mm1", [*overrides, "fold=1", f"paths.log_dir={tmp_path / 'logs3'}"])


def _compose_data(tmp_path: Path, experiment: str, fold: int) -> object:
    import hydra

    from tests.helpers.runs import compose_config

    small = dict(n_patients=40, volume_size=32, n_slices=12, lesion_window=16)
    cfg = compose_config(
        tmp_path / f"cfg_{experiment}_{fold}",
        [
            f"experiment={experiment}",
            f"paths.data_dir={tmp_path / 'data'}",
            f"paths.log_dir={tmp_path / 'logs'}",
            f"fold={fold}",
            *(f"data.synthetic.{k}={v}" for k, v in small.items()),
        ],
    )
    return hydra.utils.instantiate(cfg.data, _recursive_=False)


def test_the_segmentor_of_fold_k_never_trains_on_mmdls_fold_k_test_patients(tmp_path: Path) -> None:
    """The shipped configs: data=synthetic_petct_seg (the segmentor) takes fold k's parts from synthetic_petct's split
    files (model=mmdls), so no MM-DLS test patient of fold k is in the segmentor's training or validation part, and
    the segmentor's test part is MM-DLS's test part; the segmentation run records which split file it used."""
    mm = _compose_data(tmp_path, "mmdls_synthetic", 0)
    mm.prepare_data()
    mm_split = mm.fold_split()  # writes synthetic_petct's split files once (as a model=mmdls run does)
    split_dir = mm_split.path.parent
    for k in range(5):
        mm_parts = pd.read_csv(split_dir / f"splits_{k}.csv").groupby("split")["case_id"].apply(set)
        seg = _compose_data(tmp_path, "mmdls_seg_synthetic", k)
        seg.prepare_data()
        parts, source = seg.split_patients()
        assert not mm_parts["test"] & (set(parts["train"]) | set(parts["val"])), k
        assert set(parts["test"]) == mm_parts["test"] and set(parts["train"]) == mm_parts["train"], k
        assert source["kind"] == "outcome_cohort" and source["split_file"] == str(
            split_dir / f"splits_{k}.csv"
        )
    seg.setup()  # fold 4: the slices the segmentor trains / is tested on belong to those patients
    held = {p: {seg.all_case_ids[it[0]] for it in seg.datasets[p].slices} for p in ("train", "test")}
    assert held["test"] == mm_parts["test"] and held["train"] == mm_parts["train"]
    assert seg.describe()["split_source"]["split_hash"] == source["split_hash"]


def test_cut_refuses_a_segmentor_trained_on_lung_slices_only(tmp_path: Path) -> None:
    """survlab cut segments every axial slice of a volume; a segmentor that never saw a slice without lung paints
    lung and lesion there (48x48 synthetic cohort, fold 0: 12 of 48 test patients' stacks cut around a false lesion,
    experiments/mmdls_synthetic/README.md), so such a run is refused before any checkpoint is read."""
    from survlab.runner.imaging_cut import load_segmentor

    config = {
        "model": {"name": "mmdls_seg", "net": {"_target_": "survlab.models.mmdls_seg.LungLesionSegmentor"}},
        "data": {"slices": "lung", "image_size": 48},
    }
    protocol = {"config": config, "fold": 0, "selected_checkpoint": str(tmp_path / "absent.ckpt")}
    (tmp_path / "protocol.json").write_text(json.dumps(protocol))
    with pytest.raises(
        ValueError,
        match=r"run=.* on the slices holding lung only \(data.slices=lung\).*"
        r"retrain it with data.slices=all",
    ):
        load_segmentor(tmp_path)
    config["data"]["slices"] = "all"  # accepted: gets as far as the (absent) checkpoint
    (tmp_path / "protocol.json").write_text(json.dumps(protocol))
    with pytest.raises(FileNotFoundError):
        load_segmentor(tmp_path)
