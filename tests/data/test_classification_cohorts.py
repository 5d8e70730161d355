"""The real-layout classification cohorts (conf/data/{tcga_nsclc,tcga_brca_subtype,camelyon16,camelyon17}.yaml) and
data=synthetic_classification, composed through Hydra exactly as `survlab.run` does."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

CONF = Path(__file__).resolve().parents[2] / "survlab" / "conf"
REAL = {  # cohort -> (patient label, its column, a slide label or None)
    "tcga_nsclc": ("label", "label", None),
    "tcga_brca_subtype": ("label", "label", None),
    "camelyon16": ("label", "label", None),
    "camelyon17": ("pn_stage", "pN", "stage"),
}


def _data(name: str, tmp_path: Path, *extra: str):  # -> CohortDataModule
    overrides = [
        f"data={name}",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        *extra,
    ]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return instantiate(cfg.data)


@pytest.mark.parametrize("name", sorted(REAL))
def test_missing_clinical_csv_is_a_one_line_error(name: str, tmp_path: Path) -> None:
    dm = _data(name, tmp_path)
    assert not dm.has_survival
    label, column, slide = REAL[name]
    cols = "case_id, slide_id, " + column + (f", {slide}" if slide else "")
    with pytest.raises(
        FileNotFoundError,
        match=rf"data={name}: expected CLAM dataset_csv-style clinical CSV at "
        rf"{tmp_path / 'data' / name / 'clinical.csv'} \(columns {cols}\)",
    ) as err:
        dm.setup("fit")
    assert "\n" not in str(err.value)


def test_camelyon17_missing_feature_file_names_the_slide(tmp_path: Path) -> None:
    root = tmp_path / "data" / "camelyon17"
    (root / "features" / "resnet50_trunc" / "pt_files").mkdir(parents=True)
    rows = ["case_id,slide_id,stage,pN"]
    stages = ["pN0", "pN0(i+)", "pN1mi", "pN1", "pN2"]  # every configured class among the training patients
    node = [
        "negative",
        "itc",
        "micro",
        "macro",
        "macro",
    ]  # the stage of node p % 5 of a patient of class p % 5
    for p in range(20):  # pN0: only negative nodes (the config's slide / patient rule)
        for n in range(5):
            rows.append(
                f"patient_{p:03d},patient_{p:03d}_node_{n},{node[p % 5] if n == p % 5 else 'negative'},"
                f"{stages[p % 5]}"
            )
    (root / "clinical.csv").write_text("\n".join(rows) + "\n")
    for p in range(20):
        for n in range(5):
            if (p, n) != (3, 2):
                torch.save(
                    torch.randn(4, 1024),
                    root / "features" / "resnet50_trunc" / "pt_files" / f"patient_{p:03d}_node_{n}.pt",
                )
    dm = _data("camelyon17", tmp_path, "data.splits.folds=2", "data.num_workers=0", "data.pin_memory=false")
    with pytest.raises(Exception, match=r"patient_003_node_2") as err:
        dm.setup("fit")
    assert "\n" not in str(err.value)
    torch.save(
        torch.randn(4, 1024), root / "features" / "resnet50_trunc" / "pt_files" / "patient_003_node_2.pt"
    )
    dm = _data("camelyon17", tmp_path, "data.splits.folds=2", "data.num_workers=0", "data.pin_memory=false")
    dm.setup("fit")
    assert dm.fitted.targets["labels"] == {"pn_stage": ["pN0", "pN0(i+)", "pN1mi", "pN1", "pN2"]}
    assert dm.fitted.targets["ordinal"] == {"pn_stage": True} and dm.dims.slide_n_classes == {"stage": 4}
    batch = next(iter(dm.train_dataloader()))
    assert batch.slide_labels["stage"].shape == (len(batch), 5) and batch.n_slides.eq(5).all()
    for b, case in enumerate(
        batch.case_ids
    ):  # node j of patient p has stage [0, 1, 2, 3, 3][p % 5] iff j == p % 5
        p = int(case.split("_")[1])
        assert batch.slide_labels["stage"][b].tolist() == [
            [0, 1, 2, 3, 3][p % 5] if j == p % 5 else 0 for j in range(5)
        ]
        assert batch.labels["pn_stage"][b] == p % 5


def test_synthetic_classification_config_composes_and_sets_up(tmp_path: Path) -> None:
    dm = _data(
        "synthetic_classification",
        tmp_path,
        "data.synthetic.n_patients=30",
        "data.synthetic.feature_dim=8",
        "data.wsi.feature_dim=8",
        "data.synthetic.patches_per_slide=[4,8]",
        "data.splits.folds=3",
    )
    dm.setup("fit")
    assert not dm.has_survival and dm.dims.n_classes == {"label": 2, "grade": 3}
    assert (
        dm.fitted.targets["slide_labels"] == {"slide_label": ["normal", "tumor"]}
        and dm.fitted.targets["ordinal"]["grade"]
    )
    batch = next(iter(dm.train_dataloader()))
    assert batch.slide_labels["slide_label"].shape[1] == int(batch.n_slides.max())
