"""External validation data (survlab.data.external): another cohort's patients, all in the test set, preprocessed
with what the INTERNAL fold's training patients fitted (never refitted on the external patients)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import petct_kwargs

from survlab.data.datamodule import CohortDataModule
from survlab.data.external import setup_external
from survlab.data.sources.synthetic_petct import PetCtSpec, generate_petct_cohort


@pytest.fixture(scope="module")
def external_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = PetCtSpec(
        n_patients=12,
        volume_size=48,
        n_slices=16,
        lesion_window=24,
        radiomics_dim=16,
        hu_shift=60.0,
        pet_scale=1.5,
        case_prefix="EXT",
        seed=3,
    )
    return generate_petct_cohort(tmp_path_factory.mktemp("ext") / "cohort", spec)


def test_external_patients_are_all_test_and_use_the_training_folds_preprocessing(
    tiny_petct_cohort: Path, external_cohort: Path, tmp_path: Path
) -> None:
    train = CohortDataModule(**petct_kwargs(tiny_petct_cohort, tmp_path / "a"))
    train.setup("fit")
    ext = CohortDataModule(**petct_kwargs(external_cohort, tmp_path / "b", name="ext"))
    setup_external(ext, train.fitted)
    assert ext.split.test == sorted(f"EXT{i:04d}" for i in range(12)) and list(ext.datasets) == ["test"]
    assert ext.fitted.clinical_encoder is train.fitted.clinical_encoder
    assert ext.fitted.endpoint_bins == train.fitted.endpoint_bins
    # PET z-scored with the INTERNAL training patients' statistics: the external scanner's +50% stays visible
    pet_train = pd.read_csv(tiny_petct_cohort / "pet.csv", dtype={"case_id": str}).set_index("case_id")
    pet_ext = pd.read_csv(external_cohort / "pet.csv", dtype={"case_id": str}).set_index("case_id")
    ref = pet_train.loc[train.split.train, "suv_max"]
    for case in ("EXT0000", "EXT0007"):
        expected = (pet_ext.loc[case, "suv_max"] - ref.mean()) / ref.std(ddof=0)
        assert ext.imaging.item(case)["pet"][0].item() == pytest.approx(expected, rel=1e-4)
    batch = next(iter(ext.test_dataloader()))
    assert batch.clinical.shape[1] == train.dims.clinical_dim and batch.labels["tnm"].max() <= 2
    assert ext.describe()["n_patients"] == {"test": 12}


def test_an_external_cohort_with_other_endpoints_is_rejected(
    tiny_petct_cohort: Path, external_cohort: Path, tmp_path: Path
) -> None:
    train = CohortDataModule(**petct_kwargs(tiny_petct_cohort, tmp_path / "a"))
    train.setup("fit")
    ext = CohortDataModule(
        **petct_kwargs(
            external_cohort,
            tmp_path / "b",
            name="ext",
            endpoints={"os": {"time": "os_months", "event": "os_event"}},
        )
    )
    with pytest.raises(
        ValueError,
        match=r"external data=ext vs training data=tiny_petct: endpoints \['os'\] != "
        r"\['os', 'dfs'\]",
    ):
        setup_external(ext, train.fitted)


def test_an_external_cohort_needs_only_what_the_model_scores(
    tiny_petct_cohort: Path, external_cohort: Path, tmp_path: Path
) -> None:
    """`external_data=` / `survlab eval` pass the endpoints and labels the model's objectives score (`scored_on`): a
    cohort with only OS is accepted for a model scored on OS, and its patients get OS bins from the training fold."""
    train = CohortDataModule(**petct_kwargs(tiny_petct_cohort, tmp_path / "a"))
    train.setup("fit")
    ext = CohortDataModule(
        **petct_kwargs(
            external_cohort,
            tmp_path / "b",
            name="ext",
            endpoints={"os": {"time": "os_months", "event": "os_event"}},
        )
    )
    setup_external(ext, train.fitted, scored_on=(["os"], []))
    assert list(ext.fitted.endpoint_bins) == ["os"]
    assert ext.fitted.endpoint_bins["os"] is train.fitted.endpoint_bins["os"]
    assert len(ext.datasets["test"]) == 12


def test_an_external_label_without_any_value_is_refused_and_counts_are_kept(
    tiny_petct_cohort: Path, external_cohort: Path, tmp_path: Path
) -> None:
    """An external cohort is scored on its labels / endpoints: their missing cells are counted (protocol card), and a
    scored label with no value at all is refused instead of scoring it on nothing."""
    import shutil

    train = CohortDataModule(**petct_kwargs(tiny_petct_cohort, tmp_path / "a"))
    train.setup("fit")
    ext = CohortDataModule(**petct_kwargs(external_cohort, tmp_path / "b", name="ext"))
    setup_external(ext, train.fitted)
    clin = pd.read_csv(external_cohort / "clinical.csv", dtype={"case_id": str})
    assert ext.describe()["target_counts"]["labels"]["tnm"] == {
        "test": {"n": 12, "n_missing": int(clin["tnm_stage"].isna().sum())}
    }
    copy = tmp_path / "blank"
    shutil.copytree(external_cohort, copy)
    clin["tnm_stage"] = None
    clin.to_csv(copy / "clinical.csv", index=False)
    ext = CohortDataModule(**petct_kwargs(copy, tmp_path / "c", name="ext"))
    with pytest.raises(ValueError) as err:
        setup_external(ext, train.fitted)
    assert "\n" not in str(err.value)
    assert str(err.value).endswith(
        "clinical.csv: label 'tnm' (column 'tnm_stage') has no value for any of the 12 patients of external "
        "data=ext (empty column); fill in 'tnm_stage', or remove 'tnm' from data.labels (or data.label_cols)"
    ), str(err.value)
