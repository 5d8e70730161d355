"""data.missing=keep (issue #23 item 2, the data side): patients lacking genomics / slides are kept with their
presence marked and zero placeholders, the genomics scaling is fitted on the training patients that have a profile,
`dm.availability` equals the generator's truth, and the options / identity / synthetic hash stay compatible."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY_SPEC, datamodule_kwargs
from sklearn.preprocessing import StandardScaler

from survlab.data.batch import collate
from survlab.data.datamodule import CohortDataModule, availability_pattern
from survlab.data.fitted import FoldPreprocessing
from survlab.data.sources.synthetic import generate_cohort
from survlab.data.sources.synthetic_patients import _patients, missing_modalities
from survlab.data.sources.synthetic_spec import SyntheticSpec

MISSING_SPEC: dict[str, Any] = {**TINY_SPEC, "missing_genomics": 0.2, "missing_wsi": 0.1}


@pytest.fixture(scope="module")
def missing_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny cohort with some patients lacking their expression row and some lacking every slide."""
    return generate_cohort(tmp_path_factory.mktemp("missing") / "cohort", SyntheticSpec(**MISSING_SPEC))


@pytest.fixture(scope="module")
def keep_dm(missing_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> CohortDataModule:
    """The missing cohort set up with data.missing=keep (WSI + genomics + clinical)."""
    return _dm(missing_cohort, tmp_path_factory.mktemp("keep"), missing="keep")


@pytest.fixture(scope="module")
def drop_dm(missing_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> CohortDataModule:
    """The missing cohort set up with data.missing=drop."""
    return _dm(missing_cohort, tmp_path_factory.mktemp("drop"), missing="drop")


def _dm(root: Path, tmp: Path, **overrides: Any) -> CohortDataModule:
    dm = CohortDataModule(**datamodule_kwargs(root, tmp / "splits", **overrides))
    dm.setup("fit")
    return dm


def _truth(root: Path) -> dict[str, list[str]]:
    missing = json.loads((root / "oracle.json").read_text())["missing"]
    return {m: missing[m]["patients"] for m in ("genomics", "wsi")}


def test_keep_has_every_patient_drop_fewer_and_patterns_match_the_generator(
    missing_cohort: Path, keep_dm: CohortDataModule, drop_dm: CohortDataModule
) -> None:
    truth = _truth(missing_cohort)
    n_gen, n_wsi = len(truth["genomics"]), len(truth["wsi"])
    assert (n_gen, n_wsi) == (8, 4) and not set(truth["genomics"]) & set(
        truth["wsi"]
    )  # 20% / 10% of 40, never both
    keep = keep_dm
    assert len(keep.cohort.case_ids) == 40 and keep.missing == "keep"
    assert sum(len(d) for d in keep.datasets.values()) == 40
    expected = {
        c: "genomics" if c in truth["wsi"] else "wsi" if c in truth["genomics"] else "wsi+genomics"
        for c in keep.cohort.case_ids
    }
    assert keep.availability == expected
    desc = keep.describe()
    assert desc["availability"] == dict(sorted(Counter(expected.values()).items()))
    assert desc["dropped"]["genomics"]["n_patients_kept_without"] == n_gen
    assert desc["dropped"]["wsi"]["n_patients_kept_without"] == n_wsi
    assert desc["dropped"]["wsi"]["n_patients_dropped"] == 0 and desc["missing"] == "keep"

    drop = drop_dm
    assert len(drop.cohort.case_ids) == 40 - n_gen - n_wsi
    assert set(drop.cohort.case_ids) == {c for c, p in expected.items() if p == "wsi+genomics"}
    assert drop.availability == {}  # after dropping everyone has both
    assert drop.describe()["dropped"]["genomics"]["n_patients_dropped"] == n_gen


def test_availability_of_a_wsi_only_model_counts_the_genomics_it_does_not_read(
    missing_cohort: Path, tmp_path: Path
) -> None:
    truth = _truth(missing_cohort)
    dm = _dm(missing_cohort, tmp_path, missing="keep", modalities=("wsi",))
    assert dm.sources.genomics is None and dm.sources.marked == ("wsi",)
    lacks_gen = {c for c, p in dm.availability.items() if "genomics" not in p}
    lacks_wsi = {c for c, p in dm.availability.items() if "wsi" not in p}
    assert lacks_gen == set(truth["genomics"]) and lacks_wsi == set(truth["wsi"])


def test_placeholders_and_presence_of_absent_patients(
    missing_cohort: Path, keep_dm: CohortDataModule
) -> None:
    truth = _truth(missing_cohort)
    dm = keep_dm
    items = [ds[i] for ds in dm.datasets.values() for i in range(len(ds))]
    sizes = list(dm.dims.genomic_sizes)
    for it in items:
        assert it.present == {
            "wsi": it.case_id not in truth["wsi"],
            "genomics": it.case_id not in truth["genomics"],
        }
        if it.case_id in truth["genomics"]:
            assert [g.shape[0] for g in it.genomics] == sizes and all(g.eq(0).all() for g in it.genomics)
        else:
            assert any(g.abs().sum() > 0 for g in it.genomics)
        if it.case_id in truth["wsi"]:
            assert it.wsi.shape == (1, 8) and it.wsi.eq(0).all() and it.n_slides == 0
            assert it.slide_index.tolist() == [0] and it.patch_index.tolist() == [-1]
            assert (
                it.coords is not None and it.coords.eq(0).all()
            )  # the h5 bags have coords: so does the placeholder
        else:
            assert it.wsi.shape[0] > 1 and it.patch_index.min() >= 0
    batch = collate(items)
    assert batch.has("wsi").tolist() == [c not in truth["wsi"] for c in batch.case_ids]
    assert batch.has("genomics").tolist() == [c not in truth["genomics"] for c in batch.case_ids]
    # the placeholder patch is one real (unpadded) row of the WSI mask
    lacking = [i for i, c in enumerate(batch.case_ids) if c in truth["wsi"]]
    assert batch.wsi_mask[lacking].sum(1).tolist() == [1] * len(lacking)
    assert availability_pattern({"wsi": True, "genomics": False, "pet": True}) == "wsi+pet"
    assert availability_pattern({"wsi": False, "genomics": False}) == "none"


def test_error_and_drop_modes_mark_nothing(tiny_cohort: Path, tmp_path: Path) -> None:
    dm = _dm(tiny_cohort, tmp_path)
    assert dm.missing == "error" and dm.availability == {} and "missing" not in dm.describe()
    assert dm.datasets["train"][0].present == {}


def test_genomics_scaler_is_fitted_on_the_training_patients_with_a_profile(
    missing_cohort: Path, keep_dm: CohortDataModule
) -> None:
    truth = set(_truth(missing_cohort)["genomics"])
    dm = keep_dm
    train = dm.split.train
    have = [c for c in train if c not in truth]
    assert 0 < len(have) < len(train)
    expr = pd.read_csv(missing_cohort / "expression.csv", dtype={"case_id": str}).set_index("case_id")
    genes = list(dict.fromkeys(g for grp in dm.fitted.gene_groups.genes for g in grp))
    ref = StandardScaler().fit(expr.loc[have, genes].to_numpy(np.float64))
    np.testing.assert_allclose(dm.fitted.gene_scaler.shift, ref.mean_, rtol=1e-5)
    np.testing.assert_allclose(dm.fitted.gene_scaler.scale, ref.scale_, rtol=1e-5)
    # the WSI stand-in's training patients are counted too (what external evaluation checks an absent WSI against)
    no_wsi = len(set(_truth(missing_cohort)["wsi"]) & set(train))
    assert no_wsi and dm.fitted.absent_in_training == {"genomics": len(train) - len(have), "wsi": no_wsi}
    # a present patient's tensors are its own profile, scaled
    case = next(c for c in dm.split.test if c not in truth)
    item = next(
        it for it in (dm.datasets["test"][i] for i in range(len(dm.datasets["test"]))) if it.case_id == case
    )
    first = dm.fitted.gene_groups.genes[0]
    idx = [genes.index(g) for g in first]
    expected = (expr.loc[case, genes].to_numpy(np.float64)[idx] - ref.mean_[idx]) / ref.scale_[idx]
    np.testing.assert_allclose(item.genomics[0].numpy(), expected, rtol=1e-4, atol=1e-5)


def test_preprocessing_json_round_trip_and_old_files_load(
    keep_dm: CohortDataModule, drop_dm: CohortDataModule
) -> None:
    dm = keep_dm
    state = json.loads(json.dumps(dm.fitted.to_json()))
    again = FoldPreprocessing.from_json(state)
    assert again.absent_in_training == dm.fitted.absent_in_training and again.to_json() == state
    old = json.loads((Path(__file__).parent / "preprocessing_v1.json").read_text())
    assert "absent_in_training" not in old
    loaded = FoldPreprocessing.from_json(old)
    assert loaded.absent_in_training == {}
    # the key is written only when some training patient lacked a modality: full cohorts write what they did
    assert "absent_in_training" not in drop_dm.fitted.to_json()


def test_capability_error_names_the_modality_count_case_and_alternatives(
    missing_cohort: Path, tmp_path: Path
) -> None:
    truth = _truth(missing_cohort)
    dm = CohortDataModule(
        **datamodule_kwargs(missing_cohort, tmp_path / "splits", missing="keep", accepts_absent=["wsi"])
    )
    dm.network, dm.absent_alternatives = "model=snn", lambda m: ["late_fusion", "mcat"]
    first = next(c for c in dm.read_cohort_table().case_ids if c in truth["genomics"])
    with pytest.raises(ValueError) as err:
        dm.setup("fit")
    assert str(err.value) == (
        f"model=snn cannot take patients without genomics ({len(truth['genomics'])} of data=tiny lack it, e.g. "
        f"{first}); use data.missing=drop, or a network that accepts an absent genomics: late_fusion, mcat"
    )


def test_a_network_taking_both_absent_sets_up(missing_cohort: Path, tmp_path: Path) -> None:
    dm = _dm(
        missing_cohort,
        tmp_path,
        missing="keep",
        accepts_absent=["wsi", "genomics"],
        modalities=("wsi", "genomics"),
    )
    assert len(dm.cohort.case_ids) == 40 and dm.sources.marked == ("wsi", "genomics")


def test_missing_option_values_and_the_allow_missing_conflict(tiny_cohort: Path, tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"^data=tiny: data.missing='skip' is not one of \['error', 'drop', 'keep'\]$"
    ):
        CohortDataModule(**datamodule_kwargs(tiny_cohort, tmp_path, missing="skip"))
    with pytest.raises(
        ValueError, match=r"^data=tiny: allow_missing=true \(drop\) contradicts data.missing=keep"
    ):
        CohortDataModule(**datamodule_kwargs(tiny_cohort, tmp_path, allow_missing=True, missing="keep"))
    assert CohortDataModule(**datamodule_kwargs(tiny_cohort, tmp_path, allow_missing=True)).missing == "drop"
    assert CohortDataModule(**datamodule_kwargs(tiny_cohort, tmp_path, missing="drop")).allow_missing


def test_multiscale_keep_without_slides_is_a_one_line_error(tmp_path: Path) -> None:
    spec = SyntheticSpec(**{**MISSING_SPEC, "n_patients": 24, "multiscale": True, "missing_genomics": 0.0})
    root = generate_cohort(tmp_path / "ms", spec)
    dm = CohortDataModule(
        **datamodule_kwargs(
            root,
            tmp_path / "splits",
            wsi={"encoder": "synthetic", "feature_dim": 8, "scales": ["x5", "x10", "x20"]},
            modalities=("scales",),
            missing="keep",
        )
    )
    with pytest.raises(
        ValueError, match=r"data.missing=keep with multi-scale bags cannot keep the \d+ patient"
    ):
        dm.setup("fit")


def test_mnar_lacks_more_often_among_short_survivors_mcar_does_not() -> None:
    rates = {}
    for mechanism in ("short_survival", "random"):
        spec = SyntheticSpec(n_patients=2000, missing_genomics=0.3, missing_mechanism=mechanism, seed=3)
        patients = _patients(spec)
        lacks = missing_modalities(spec, patients.true_risk.to_numpy())["genomics"]
        short = patients.survival_months.to_numpy() < np.median(patients.survival_months)
        risky = patients.true_risk.to_numpy() > np.median(patients.true_risk)
        rates[mechanism] = (
            lacks[short].mean(),
            lacks[~short].mean(),
            lacks.mean(),
            lacks[risky].mean() - lacks[~risky].mean(),
        )
    short_rate, long_rate, overall, by_risk = rates["short_survival"]
    # p_i ~ rank of the true risk: mean 0.3, the riskier half lacks it ~0.45 vs ~0.15; survival times are noisy
    assert abs(overall - 0.3) < 0.03 and short_rate > long_rate + 0.07 and by_risk > 0.25
    short_rate, long_rate, overall, by_risk = rates["random"]
    assert abs(overall - 0.3) < 0.03 and abs(short_rate - long_rate) < 0.05 and abs(by_risk) < 0.05


def test_default_spec_and_files_do_not_move(tmp_path: Path) -> None:
    # the hashes of main before the missing options (cache folder names, golden outputs)
    assert (
        SyntheticSpec().short_hash() == "1f90229a8b"
        and SyntheticSpec(n_patients=40).short_hash() == "9c8946621f"
    )
    assert not {"missing_genomics", "missing_wsi", "missing_mechanism"} & set(SyntheticSpec().to_json())
    risk = np.linspace(-2, 2, 50)
    assert not any(v.any() for v in missing_modalities(SyntheticSpec(), risk).values())
    with pytest.raises(ValueError, match="missing_mechanism must be one of"):
        SyntheticSpec(missing_genomics=0.1, missing_mechanism="often")
    with pytest.raises(ValueError, match="a patient never lacks both"):
        SyntheticSpec(missing_genomics=0.5, missing_wsi=0.5)


def test_identity_unchanged_at_the_default_missing() -> None:
    from survlab.utils.job_identity import identity_of

    base = {"model": {"name": "abmil"}, "data": {"name": "synthetic", "allow_missing": False}}
    with_default = {**base, "data": {**base["data"], "missing": "error"}}
    keep = {**base, "data": {**base["data"], "missing": "keep"}}
    assert identity_of(with_default) == identity_of(base)
    assert identity_of(keep) != identity_of(base) and identity_of(keep)["data"]["missing"] == "keep"
    # a data config nested in the job's (a segmentation cohort's outcome_splits) too
    seg = {**base, "data": {"name": "seg", "outcome_splits": {**base["data"], "missing": "error"}}}
    assert identity_of(seg) == identity_of({**base, "data": {"name": "seg", "outcome_splits": base["data"]}})


def test_placeholder_batch_is_finite_under_mean_pooling(keep_dm: CohortDataModule) -> None:
    dm = keep_dm
    batch = next(iter(dm.test_dataloader()))
    pooled = (batch.wsi * batch.wsi_mask[..., None]).sum(1) / batch.wsi_mask.sum(1, keepdim=True)
    assert torch.isfinite(pooled).all()


@pytest.fixture(scope="module")
def pet_cohort(
    tiny_petct_cohort: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, list[str]]:
    """(root, scratch folder with the stack cache, patients without a PET row) of the tiny PET/CT cohort with the
    PET rows of 5 patients removed."""
    tmp = tmp_path_factory.mktemp("pet")
    root = tmp / "petct"
    shutil.copytree(tiny_petct_cohort, root)
    pet = pd.read_csv(root / "pet.csv", dtype={"case_id": str})
    gone = sorted(pet["case_id"])[:5]
    pet[~pet["case_id"].isin(gone)].to_csv(root / "pet.csv", index=False)
    return root, tmp, gone


def test_pet_rows_missing_are_kept_with_zero_vectors_and_scaling_fitted_without_them(
    pet_cohort: tuple[Path, Path, list[str]],
) -> None:
    from conftest import petct_kwargs

    root, tmp, gone = pet_cohort
    dm = CohortDataModule(**petct_kwargs(root, tmp, missing="keep", accepts_absent=["pet"]))
    dm.setup("fit")
    lacking = {
        c for c in gone if c in set(dm.cohort.case_ids)
    }  # the patient without images is dropped (imaging)
    assert lacking and set(dm.absent["pet"]) == lacking
    assert {
        c for c, p in dm.availability.items() if p == "none"
    } == lacking  # pet is the only presence key here
    items = [ds[i] for ds in dm.datasets.values() for i in range(len(ds))]
    assert len(items) == len(dm.cohort.case_ids)
    for it in items:
        assert it.present == {"pet": it.case_id not in lacking}
        if it.case_id in lacking:
            assert it.extra["pet"].eq(0).all() and it.extra["pet"].shape == (dm.imaging.dims["pet"],)
    # z-scored on the training patients WITH a row: their encoded values have mean 0 per column
    train_have = [it for it in items if it.case_id in set(dm.split.train) and it.case_id not in lacking]
    encoded = torch.stack([it.extra["pet"] for it in train_have]).double()
    np.testing.assert_allclose(encoded.mean(0).numpy(), 0.0, atol=1e-5)
    assert dm.fitted.absent_in_training.get("pet") == len(lacking & set(dm.split.train))


def test_pet_absent_for_a_network_that_cannot_take_it_is_a_one_line_error(
    pet_cohort: tuple[Path, Path, list[str]],
) -> None:
    from conftest import petct_kwargs

    root, tmp, gone = pet_cohort
    dm = CohortDataModule(**petct_kwargs(root, tmp, missing="keep", accepts_absent=[]))
    with pytest.raises(
        ValueError, match=r"^the network cannot take patients without pet \(\d+ of data=tiny_petct lack"
    ):
        dm.setup("fit")


def test_survlab_check_counts_the_availability_patterns(missing_cohort: Path, tmp_path: Path) -> None:
    from survlab.data.audit import audit_cohort

    truth = _truth(missing_cohort)
    dm = CohortDataModule(**datamodule_kwargs(missing_cohort, tmp_path / "splits", missing="keep"))
    result = audit_cohort(dm)
    n_gen, n_wsi = len(truth["genomics"]), len(truth["wsi"])
    assert result.summary["availability"] == {
        "genomics": n_wsi,
        "wsi": n_gen,
        "wsi+genomics": 40 - n_gen - n_wsi,
    }
    line = next(x for x in result.info if x.startswith("availability over wsi+genomics (40 patients"))
    assert f"wsi {n_gen}" in line and f"genomics {n_wsi}" in line
    assert all(n.check != "patients without an expression row" for n in result.findings)  # keep: a note


@pytest.mark.parametrize(
    ("missing", "genomics_fix", "slides_fix"),
    [
        ("keep", "kept, marked absent (data.missing=keep)", "kept, marked absent (data.missing=keep)"),
        ("drop", "dropped (data.missing=drop)", "dropped (data.missing=drop)"),
        (
            "error",
            "add their profiles, or set data.missing=drop (leave them out) or keep (test them without genomics)",
            "add their slides, or set data.missing=drop (leave them out) or keep (test them without slides)",
        ),
    ],
    ids=["keep", "drop", "error"],
)
def test_survlab_check_says_what_data_missing_does_with_patients_lacking_a_modality(
    missing_cohort: Path, tmp_path: Path, missing: str, genomics_fix: str, slides_fix: str
) -> None:
    """The genomics and the WSI check word data.missing alike (keep / drop: a note; error: a finding naming the fix)."""
    from survlab.data.audit import audit_cohort

    truth = _truth(missing_cohort)
    dm = CohortDataModule(**datamodule_kwargs(missing_cohort, tmp_path / "splits", missing=missing))
    result = audit_cohort(dm)
    where = result.findings if missing == "error" else result.notes
    by_check = {f.check: f for f in where}
    expression, slides = by_check["patients without an expression row"], by_check["patients without slides"]
    assert expression.message.endswith(f"; {genomics_fix}")
    assert slides.message.endswith(f"; {slides_fix}")
    assert set(expression.cases) == set(truth["genomics"]) and set(slides.cases) == set(truth["wsi"])


def test_an_unreadable_table_the_network_does_not_read_is_left_out_of_the_availability(
    missing_cohort: Path, tmp_path: Path
) -> None:
    truth = _truth(missing_cohort)
    genomics = {"expression": "absent.csv", "signatures": "signatures_mcat6.csv"}
    dm = _dm(missing_cohort, tmp_path, modalities=("wsi",), genomics=genomics, missing="keep")
    assert dm.availability == {c: "wsi" if c not in truth["wsi"] else "none" for c in dm.cohort.case_ids}


def test_device_resident_bags_refuse_patients_without_slides(missing_cohort: Path, tmp_path: Path) -> None:
    wsi = {"encoder": "synthetic", "feature_dim": 8, "cache": "device"}
    dm = CohortDataModule(**datamodule_kwargs(missing_cohort, tmp_path / "splits", wsi=wsi, missing="keep"))
    with pytest.raises(
        ValueError, match=r"data.missing=keep with wsi.cache=device cannot keep the \d+ patient"
    ):
        dm.setup("fit")


def test_a_patient_whose_listed_slides_have_no_feature_file_is_kept_without_wsi(
    tiny_cohort: Path, tmp_path: Path
) -> None:
    root = tmp_path / "cohort"
    shutil.copytree(tiny_cohort, root)
    clinical = pd.read_csv(root / "clinical.csv", dtype=str)
    case = clinical["case_id"].iloc[0]
    slides = sorted(clinical.loc[clinical["case_id"] == case, "slide_id"])
    for s in slides:
        for f in (root / "features").rglob(f"{s}.*"):
            f.unlink()
    dm = _dm(root, tmp_path, missing="keep", modalities=("wsi",))
    assert case in dm.cohort.case_ids and dm.absent == {"wsi": [case]}
    assert dm.availability[case] == "genomics" and dm.drop_report["wsi"]["patients_kept_without"] == [case]
    assert sorted(dm.drop_report["wsi"]["slides"]) == slides  # the slides without features, counted
    with pytest.raises(FileNotFoundError, match=f"case {case}: no feature file for slide"):
        _dm(root, tmp_path, modalities=("wsi",))  # missing=error: as before
