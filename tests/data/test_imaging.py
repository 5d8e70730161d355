"""PET/CT imaging data (survlab.data.modalities.imaging): stacks from PNG equal the stacks survlab cuts from NIfTI volumes,
short stacks pad with a mask, tables join by case_id (not row order) with training-fitted scaling, the prepared
stack cache, and one-line errors for bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import petct_kwargs

from survlab.data.batch import collate
from survlab.data.cohort.checks import DataFileError
from survlab.data.datamodule import CohortDataModule
from survlab.data.modalities.imaging import ImagingStore
from survlab.data.modalities.imaging_slices import fix_length, list_slices, natural_key
from survlab.data.modalities.imaging_tables import read_feature_table


def _dm(root: Path, tmp: Path, **overrides: object) -> CohortDataModule:
    dm = CohortDataModule(**petct_kwargs(root, tmp, **overrides))
    dm.setup("fit")
    return dm


def _copy(cohort: Path, tmp: Path) -> Path:
    dst = tmp / "copy"
    shutil.copytree(cohort, dst)
    return dst


def test_natural_sort_orders_slice_numbers_as_numbers(tmp_path: Path) -> None:
    for name in ("slice_10.png", "slice_2.png", "slice_1.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_slices(tmp_path)] == ["slice_1.png", "slice_2.png", "slice_10.png"]
    assert sorted(["a10", "a9", "b1"], key=natural_key) == ["a9", "a10", "b1"]


def test_fix_length_pads_short_stacks_with_a_mask_and_samples_long_ones() -> None:
    stack = np.arange(3 * 2 * 2, dtype=np.float32).reshape(3, 2, 2) + 1
    padded, mask = fix_length(stack, 5)
    assert padded.shape == (5, 2, 2) and mask.tolist() == [True, True, True, False, False]
    assert np.array_equal(padded[:3], stack) and not padded[3:].any()
    long = np.arange(9, dtype=np.float32)[:, None, None] * np.ones((9, 2, 2), np.float32)
    uniform, m = fix_length(long, 3)
    assert m.all() and uniform[:, 0, 0].tolist() == [0.0, 4.0, 8.0]  # evenly spaced, ends included
    assert fix_length(long, 3, "first")[0][:, 0, 0].tolist() == [0.0, 1.0, 2.0]  # the reference's first S


def test_stacks_cut_from_nifti_equal_the_png_stacks(tiny_petct_cohort: Path, tmp_path: Path) -> None:
    stores = {
        src: ImagingStore(
            tiny_petct_cohort,
            {"source": src, "stack_length": 6, "image_size": 16, "lesion_window": 24, "radiomics_dim": 16},
        )
        for src in ("png", "nifti")
    }
    cases = [f"PCT{i:04d}" for i in range(23)]
    for store in stores.values():
        store.prepare(cases)
    n_real = []
    for case in cases:
        png, nifti = stores["png"].stacks(case), stores["nifti"].stacks(case)
        for key in ("lesion", "space", "lesion_mask", "space_mask"):
            assert np.array_equal(png[key], nifti[key]), (case, key)
        n_real.append(int(png["lesion_mask"].sum()))
        assert png["lesion"].dtype == np.float16 and 0.0 <= png["lesion"].min() and png["lesion"].max() <= 1.0
    assert min(n_real) < 6 == max(n_real)  # both short (padded) and long (sampled) lesion stacks occur
    assert stores["png"].stacks(cases[0])["lesion"].std() > 0.05  # real image content, not zeros


def test_short_stacks_pad_in_a_batch_and_patients_without_images_are_dropped(
    tiny_petct_cohort: Path, tmp_path: Path
) -> None:
    dm = _dm(tiny_petct_cohort, tmp_path)
    assert dm.drop_report["ct"] == {"n_patients_dropped": 1, "patients": ["PCT0023"]}
    assert dm.dims.imaging == {"stack_length": 6, "image_size": 16, "radiomics": 16, "pet": 5}
    items = [dm.datasets["train"][i] for i in range(len(dm.datasets["train"]))]
    batch = collate(items)
    assert batch.extra["ct_lesion"].shape == (len(items), 6, 16, 16)
    masks = batch.extra["ct_lesion_mask"]
    assert masks.dtype == torch.bool and (~masks).any() and masks[:, 0].all()
    assert not batch.extra["ct_lesion"][~masks].any()  # padded slices are zeros
    with pytest.raises(
        DataFileError, match=r"1 patient\(s\) lack imaging data .*PCT0023.*imaging.missing=drop"
    ):
        _dm(tiny_petct_cohort, tmp_path / "err", imaging={"missing": "error"})


def test_tables_join_by_case_id_under_shuffled_rows(tiny_petct_cohort: Path, tmp_path: Path) -> None:
    ref = _dm(tiny_petct_cohort, tmp_path / "a")
    root = _copy(tiny_petct_cohort, tmp_path)
    for name in ("radiomics.csv", "pet.csv", "clinical.csv"):
        df = pd.read_csv(root / name, dtype={"case_id": str})
        df.sample(frac=1.0, random_state=3).to_csv(root / name, index=False)
    shuffled = _dm(root, tmp_path / "b")
    assert shuffled.split.train == ref.split.train
    for case in ref.cohort.case_ids:
        a, b = ref.imaging.item(case), shuffled.imaging.item(case)
        for key in ("pet", "radiomics", "ct_lesion", "ct_space"):
            assert torch.equal(a[key], b[key]), (case, key)
    # PET is z-scored with the TRAINING patients' mean / std (population sd), independently of the test patients
    pet = pd.read_csv(tiny_petct_cohort / "pet.csv", dtype={"case_id": str}).set_index("case_id")
    train = pet.loc[ref.split.train, "suv_max"]
    case = ref.split.test[0]
    expected = (pet.loc[case, "suv_max"] - train.mean()) / train.std(ddof=0)
    assert ref.imaging.item(case)["pet"][0].item() == pytest.approx(expected, rel=1e-4)


def test_prepared_stacks_are_cached_and_rebuilt_when_a_source_changes(
    tiny_petct_cohort: Path, tmp_path: Path
) -> None:
    root = _copy(tiny_petct_cohort, tmp_path)
    cfg = {
        "source": "png",
        "stack_length": 6,
        "image_size": 16,
        "radiomics_dim": 16,
        "cache_dir": str(tmp_path / "c"),
    }
    cases = ["PCT0000", "PCT0001", "PCT0002"]
    assert ImagingStore(root, cfg).prepare(cases) == {"built": 3, "cached": 0}
    assert ImagingStore(root, cfg).prepare(cases) == {"built": 0, "cached": 3}
    assert ImagingStore(root, {**cfg, "image_size": 8}).prepare(cases) == {
        "built": 3,
        "cached": 0,
    }  # settings
    first = list_slices(root / "images" / "PCT0001" / "lesion")[0]
    first.write_bytes((root / "images" / "PCT0002" / "lesion" / "slice_0.png").read_bytes())  # new content
    assert ImagingStore(root, cfg).prepare(cases) == {"built": 1, "cached": 2}


def test_bad_imaging_inputs_fail_in_one_line_naming_the_file(tiny_petct_cohort: Path, tmp_path: Path) -> None:
    root = _copy(tiny_petct_cohort, tmp_path)
    bad = root / "images" / "PCT0004" / "space" / "slice_1.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataFileError, match=r"PCT0004/space/slice_1\.png: cannot read as a PNG image"):
        _dm(root, tmp_path / "a")
    bad.unlink()
    pet = pd.read_csv(root / "pet.csv", dtype={"case_id": str})
    pd.concat([pet, pet.iloc[:1]]).to_csv(root / "pet.csv", index=False)
    with pytest.raises(
        DataFileError, match=r"pet\.csv: case_id\(s\) \['PCT\d+'\] appear on more than one row"
    ):
        _dm(root, tmp_path / "b")
    pet.assign(suv_max=pet["suv_max"].astype(str).where(pet.index != 2, "12,5")).to_csv(
        root / "pet.csv", index=False
    )
    with pytest.raises(DataFileError, match=r"column 'suv_max' of case PCT\d+ holds '12,5', not a number"):
        read_feature_table(root / "pet.csv", what="pet")
    with pytest.raises(DataFileError, match=r"radiomics\.csv: 16 feature columns, expected 128"):
        read_feature_table(root / "radiomics.csv", expected=128, what="radiomics")
    with pytest.raises(ValueError, match=r"imaging\.source='dicom'; allowed: \['png', 'nifti'\]"):
        CohortDataModule(**petct_kwargs(root, tmp_path, imaging={"source": "dicom"}))


def test_an_empty_lesion_mask_is_an_error_naming_the_case(tiny_petct_cohort: Path, tmp_path: Path) -> None:
    import nibabel as nib

    root = _copy(tiny_petct_cohort, tmp_path)
    path = root / "volumes" / "PCT0005" / "lesion_mask.nii.gz"
    img = nib.load(str(path))
    nib.save(nib.Nifti1Image(np.zeros(img.shape, np.uint8), img.affine), str(path))
    with pytest.raises(DataFileError, match=r"case PCT0005: the lesion mask is empty"):
        _dm(root, tmp_path / "a", imaging={"source": "nifti"})


def test_synthetic_petct_plants_an_image_only_and_a_clinical_only_risk_part(tiny_petct_cohort: Path) -> None:
    """truth.csv's image part shows in the CT lung density, the clinical part in the age column, and oracle.json's
    per-part oracles equal scikit-survival's C-index of each part."""
    import json

    import pandas as pd
    from sksurv.metrics import concordance_index_censored

    from survlab.data.modalities.imaging_volumes import read_volume

    truth = pd.read_csv(tiny_petct_cohort / "truth.csv").set_index("case_id")
    clinical = pd.read_csv(tiny_petct_cohort / "clinical.csv").set_index("case_id").loc[truth.index]
    assert np.corrcoef(clinical["age"], truth["clinical_part"])[0, 1] > 0.9
    density = []
    for case in truth.index[:12]:
        vol = tiny_petct_cohort / "volumes" / case
        ct, lung, lesion = (
            read_volume(vol / f) for f in ("ct.nii.gz", "lung_mask.nii.gz", "lesion_mask.nii.gz")
        )
        density.append(ct[(lung > 0) & (lesion == 0)].mean())
    assert np.corrcoef(density, truth["image_part"].iloc[:12])[0, 1] > 0.9  # denser lung, higher risk
    oracle = json.loads((tiny_petct_cohort / "oracle.json").read_text())
    event, time = clinical["os_event"].astype(bool).to_numpy(), clinical["os_months"].to_numpy()
    for key, risk in (
        ("oracle_cindex_os_image_part", truth["image_part"]),
        ("oracle_cindex_os_clinical_part", truth["clinical_part"]),
        ("oracle_cindex_os_without_image", truth["true_risk"] - truth["image_part"]),
        ("oracle_cindex_os", truth["true_risk"]),
    ):
        assert oracle[key] == pytest.approx(concordance_index_censored(event, time, risk.to_numpy())[0]), key


def test_a_petct_cohort_from_an_older_generator_is_regenerated(tmp_path: Path) -> None:
    """The cache key holds the generator version: a folder written by the previous generator (same spec) is rebuilt."""
    import json

    from survlab.data.sources.synthetic_petct import PetCtSpec, generate_petct_cohort

    spec = PetCtSpec(n_patients=6, volume_size=32, n_slices=12, lesion_window=16, radiomics_dim=6)
    root = generate_petct_cohort(tmp_path / "c", spec)
    old_key = {"spec": spec.to_json(), "kind": "petct"}  # what generator 1 recorded
    for name in (".survlab-cohort.json", "oracle.json"):
        data = json.loads((root / name).read_text())
        data["cache_key"] = old_key
        data.pop("oracle_cindex_os_image_part", None)
        (root / name).write_text(json.dumps(data))
    generate_petct_cohort(root, spec)
    assert "oracle_cindex_os_image_part" in json.loads((root / "oracle.json").read_text())


# ------------------------------------------------------------------ issue 25: image values that would differ silently
def _plant_bad_images(src: Path, tmp: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the cohort with one planted fault per case: a 16-bit PNG slice, a missing slice number, a soft
    lesion mask, a lung mask with a shifted affine; and a lung mask stored flipped with a true affine (fine)."""
    import nibabel as nib
    from PIL import Image

    root = _copy(src, tmp)
    cases = sorted(p.name for p in (root / "images").iterdir())
    a, b, c, d, e = cases[:5]
    first = list_slices(root / "images" / a / "lesion")[0]
    u8 = np.asarray(Image.open(first))
    Image.fromarray(u8.astype(np.uint16) * 257).save(first)  # 16-bit: the same picture on 0..65535
    assert Image.open(first).mode.startswith("I")
    space = list_slices(root / "images" / b / "space")
    assert len(space) >= 3
    space[len(space) // 2].unlink()  # slice_<k> with k missing in the middle
    vol = lambda case, f: root / "volumes" / case / f  # noqa: E731
    lesion = nib.load(vol(c, "lesion_mask.nii.gz"))
    soft = np.asarray(lesion.dataobj, dtype=np.float32) * 0.7  # a probability map
    nib.save(nib.Nifti1Image(soft, lesion.affine), vol(c, "lesion_mask.nii.gz"))
    lung = nib.load(vol(d, "lung_mask.nii.gz"))
    shifted = lung.affine.copy()
    shifted[0, 3] += 5.0  # 5 mm off: the same array on other voxels of the body
    nib.save(nib.Nifti1Image(np.asarray(lung.dataobj), shifted), vol(d, "lung_mask.nii.gz"))
    lung = nib.load(vol(e, "lung_mask.nii.gz"))
    n = lung.shape[0]
    flip = np.array([[-1, 0, 0, n - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float)
    data = np.asarray(lung.dataobj)[::-1].copy()
    nib.save(
        nib.Nifti1Image(data, lung.affine @ flip), vol(e, "lung_mask.nii.gz")
    )  # stored L-R flipped, true affine
    return root, {"16bit": a, "gap": b, "soft": c, "affine": d, "flipped": e}


def test_bad_image_values_are_refused_naming_the_file_and_check_lists_them(
    tiny_petct_cohort: Path, tmp_path: Path
) -> None:
    from survlab.data.audit import audit_cohort

    root, case = _plant_bad_images(tiny_petct_cohort, tmp_path)
    opts = {"stack_length": 6, "image_size": 16, "lesion_window": 24, "radiomics_dim": 16}
    png, nifti = (ImagingStore(root, {**opts, "source": s}) for s in ("png", "nifti"))
    expected = {
        (
            png,
            "16bit",
        ): r"lesion/slice_\d+\.png: 16-bit PNG \(mode I;16\); survlab reads 8-bit windowed slices",
        (png, "gap"): r"space: slice number\(s\) \[\d+\] missing between",
        (
            nifti,
            "soft",
        ): r"lesion_mask\.nii\.gz: soft mask, \d+ voxel\(s\) hold values that are not 0 / 1 / a label "
        r"\(e\.g\. 0\.7\)",
        (
            nifti,
            "affine",
        ): r"lung_mask\.nii\.gz: mask affine differs from the CT's \(ct\.nii\.gz\) after reorientation "
        r"to RAS \(origin \[",
    }
    for (store, what), pattern in expected.items():
        with pytest.raises(DataFileError, match=pattern) as err:
            store.build(case[what])
        assert case[what] in str(err.value) and "\n" not in str(err.value)
    # a mask stored in another orientation with its true affine is reoriented: the same stacks as the original
    original = ImagingStore(tiny_petct_cohort, {**opts, "source": "nifti"}).build(case["flipped"])
    flipped = nifti.build(case["flipped"])
    assert all(np.array_equal(original[k], flipped[k]) for k in original)
    # survlab check lists every planted fault, each under its kind (PNG and NIfTI configs)
    kinds = {}
    for source in ("png", "nifti"):
        dm = CohortDataModule(
            **petct_kwargs(root, tmp_path / source, imaging={"source": source}, modalities=None)
        )
        kinds.update({f.check: f.cases for f in audit_cohort(dm).findings})
    assert kinds == {
        "PNG slices not 8-bit": (case["16bit"],),
        "missing or repeated slice numbers": (case["gap"],),
        "soft (non-binary) masks": (case["soft"],),
        "masks with another affine than their CT": (case["affine"],),
    }
    # and training stops before the first epoch, naming the file
    with pytest.raises(DataFileError, match=r"16-bit PNG|slice number"):
        _dm(root, tmp_path / "train")


def test_slice_numbers_must_be_consecutive_and_unique(tmp_path: Path) -> None:
    from survlab.data.modalities.imaging_slices import check_slice_numbers

    names = lambda *n: [tmp_path / x for x in n]  # noqa: E731
    check_slice_numbers(names("s_1.png", "s_2.png", "s_3.png"), tmp_path)
    check_slice_numbers(names("a.png", "b.png"), tmp_path)  # not numbered: not judged
    check_slice_numbers(names("s_0007.png", "s_0008.png"), tmp_path)  # any first number
    with pytest.raises(DataFileError, match=r"slice number\(s\) \[3, 4\] missing"):
        check_slice_numbers(names("s_1.png", "s_2.png", "s_5.png"), tmp_path)
    with pytest.raises(DataFileError, match=r"slice number\(s\) \[2\] occur in several file names"):
        check_slice_numbers(names("s_1.png", "s_2.png", "s_02.png"), tmp_path)
