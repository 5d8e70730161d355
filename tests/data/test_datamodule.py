"""CohortDataModule end to end on tiny cohorts: batches, masks, patch caps, train-only fitting, join by case_id."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from survlab.data.batch import collate

MakeDM = Callable[..., Any]


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "cohort"
    shutil.copytree(src, dst)
    return dst


def test_setup_exposes_dims_and_padded_batches(make_datamodule: MakeDM) -> None:
    dm = make_datamodule()
    assert dm.dims.wsi_dim == 8 and dm.dims.n_bins == 4
    assert len(dm.dims.genomic_sizes) == 6 and dm.dims.clinical_dim == len(dm.dims.clinical_names)
    assert dm.dims.n_classes["label"] == 2
    assert dm.fitted.bin_edges[0] == 0 and np.isinf(dm.fitted.bin_edges[-1]) and len(dm.fitted.bin_edges) == 5
    batch = next(iter(dm.train_dataloader()))
    assert len(batch) == 4 and batch.wsi.shape[0] == 4 and batch.wsi.shape[2] == 8
    assert batch.time_bin.min() >= 0 and batch.time_bin.max() < 4
    time, event = dm.fitted.train_survival()
    assert len(time) == len(dm.datasets["train"]) and event.dtype == bool
    desc = dm.describe()
    json.dumps(desc)
    assert desc["split_hash"] == dm.split_hash and sum(desc["n_patients"].values()) == 40
    assert set(dm.oracle_risk) >= set(dm.cohort.case_ids)


def test_padding_masks_match_bag_lengths(make_datamodule: MakeDM) -> None:
    dm = make_datamodule(max_patches=None)
    ds = dm.datasets["test"]
    items = [ds[i] for i in range(4)]
    batch = collate(items)
    lengths = [it.wsi.shape[0] for it in items]
    assert batch.wsi_mask.sum(1).tolist() == lengths
    for i, n in enumerate(lengths):
        assert torch.equal(batch.wsi[i, :n], items[i].wsi)
        assert batch.wsi[i, n:].eq(0).all() and batch.slide_index[i, n:].eq(-1).all()
        assert batch.patch_index[i, n:].eq(-1).all()


def test_max_patches_in_training_and_deterministic_eval(make_datamodule: MakeDM) -> None:
    dm = make_datamodule(max_patches=5, eval_max_patches=7)
    train = dm.datasets["train"]
    assert all(train[i].wsi.shape[0] <= 5 for i in range(len(train)))
    big = max(
        range(len(train)), key=lambda i: len(dm.sources.wsi.load_patient(train.rows["slide_ids"][i]).features)
    )
    draws = {tuple(train[(big, epoch)].patch_index.tolist()) for epoch in range(5)}
    assert len(draws) > 1  # a new random subset every epoch ...
    assert (
        train[(big, 3)].patch_index.tolist() == train[(big, 3)].patch_index.tolist()
    )  # ... a function of the epoch
    for part in ("val", "test"):
        first = [
            (it.case_id, it.patch_index.tolist())
            for it in (dm.datasets[part][i] for i in range(len(dm.datasets[part])))
        ]
        second = [
            (it.case_id, it.patch_index.tolist())
            for it in (dm.datasets[part][i] for i in range(len(dm.datasets[part])))
        ]
        assert first == second and all(len(p) <= 7 for _, p in first)
    full = make_datamodule(eval_max_patches=None).datasets["test"][0]
    assert full.wsi.shape[0] == len(full.patch_index) == int(full.patch_index.max()) + 1


def test_preprocessing_fitted_on_training_patients_only(
    tiny_cohort: Path, tmp_path: Path, make_datamodule: MakeDM
) -> None:
    root = _copy(tiny_cohort, tmp_path)
    before = make_datamodule(root=root)
    test_ids = set(before.split.test)
    clin = pd.read_csv(root / "clinical.csv", dtype={"case_id": str})
    is_test = clin["case_id"].isin(test_ids)
    clin.loc[is_test, "survival_months"] *= 7.0
    clin.loc[is_test, "age"] = 99.0
    clin.loc[is_test, "sex"] = "Z"
    clin.to_csv(root / "clinical.csv", index=False)
    expr = pd.read_csv(root / "expression.csv", dtype={"case_id": str})
    expr.loc[expr["case_id"].isin(test_ids), expr.columns[1:]] *= 1000.0
    expr.to_csv(root / "expression.csv", index=False)

    after = make_datamodule(root=root)
    assert after.split_hash == before.split_hash
    assert np.array_equal(after.fitted.bin_edges, before.fitted.bin_edges)
    assert np.array_equal(after.fitted.gene_scaler.shift, before.fitted.gene_scaler.shift)
    assert np.array_equal(after.fitted.gene_scaler.scale, before.fitted.gene_scaler.scale)
    assert after.fitted.clinical_encoder.to_dict() == before.fitted.clinical_encoder.to_dict()
    assert after.datasets["test"][0].time != before.datasets["test"][0].time  # the edit did reach the data


def test_genomics_joined_by_case_id_not_row_order(
    tiny_cohort: Path, tmp_path: Path, make_datamodule: MakeDM
) -> None:
    root = _copy(tiny_cohort, tmp_path)
    a = make_datamodule(root=root, wsi=None, clinical=None, modalities=("genomics",))
    expr = pd.read_csv(root / "expression.csv", dtype={"case_id": str})
    expr.sample(frac=1.0, random_state=1).to_csv(root / "expression.csv", index=False)
    b = make_datamodule(root=root, wsi=None, clinical=None, modalities=("genomics",))
    for case in a.cohort.case_ids:
        for ga, gb in zip(a.sources.genomics[case], b.sources.genomics[case], strict=False):
            assert np.allclose(ga, gb)
    item = a.datasets["train"][0]
    assert item.wsi is None and item.clinical is None and len(item.genomics) == 6


def test_split_files_reused_by_a_second_datamodule(make_datamodule: MakeDM) -> None:
    a, b = make_datamodule(), make_datamodule(modalities=("genomics",))
    assert a.split_hash == b.split_hash and a.split.test == b.split.test
    assert make_datamodule(fold=1).split_hash != a.split_hash


def test_weighted_sampling_and_drop_last_rule(make_datamodule: MakeDM) -> None:
    dm = make_datamodule(weighted_sampling=True, batch_size=4)
    n = len(dm.datasets["train"])
    loader = dm.train_dataloader()
    sizes = [len(b) for b in loader]
    assert min(sizes) >= 2 and sum(sizes) in (n, n - 1)
    assert loader.drop_last == (n % 4 == 1)


def test_multiscale_batches(tiny_multiscale_cohort: Path, make_datamodule: MakeDM) -> None:
    dm = make_datamodule(
        root=tiny_multiscale_cohort,
        genomics=None,
        clinical=None,
        modalities=("scales",),
        wsi={"encoder": "synthetic", "scales": ["x5", "x10", "x20"]},
        max_patches_per_scale={"x20": 6},
        max_patches=100,
    )
    assert dm.dims.scale_dims == {"x5": 8, "x10": 8, "x20": 8} and dm.dims.wsi_dim is None
    batch = next(iter(dm.train_dataloader()))
    assert list(batch.scales) == ["x5", "x10", "x20"] and batch.wsi is None
    assert batch.scale_masks["x20"].sum(1).max() <= 6
    assert batch.scale_masks["x5"].sum(1).max() < batch.scales["x10"].shape[1] * 4


def test_table_only_public_cohort(tmp_path: Path) -> None:
    from survlab.data.datamodule import CohortDataModule

    dm = CohortDataModule(
        name="gse7390",
        root=str(tmp_path / "gse"),
        public="gse7390",
        slide_col=None,
        genomics={"signatures": "signatures_all.csv"},
        clinical={"columns": ["age", "er", "grade", "size"]},
        modalities=("genomics", "clinical"),
        batch_size=16,
    )
    dm.prepare_data()
    dm.setup()
    assert dm.dims.genomic_sizes == (76,) and dm.dims.wsi_dim is None
    batch = next(iter(dm.train_dataloader()))
    assert batch.genomics[0].shape == (16, 76) and batch.clinical.shape[0] == 16


def test_weighted_sampling_balances_the_label_classes_of_a_cohort_without_survival(tmp_path: Path) -> None:
    """CLAM's --weighted_sample: a classification cohort draws each class of its primary label equally often."""
    from survlab.data.datamodule import CohortDataModule

    dm = CohortDataModule(
        name="imbalanced",
        root=str(tmp_path / "cohort"),
        time_col=None,
        wsi={"encoder": "synthetic", "feature_dim": 4},
        genomics=None,
        clinical=None,
        labels={"label": {"column": "label", "classes": ["negative", "positive"]}},
        splits={"dir": str(tmp_path / "splits"), "folds": 3, "val_fraction": 0.2, "seed": 0},
        batch_size=4,
        weighted_sampling=True,
        seed=0,
        synthetic={
            "kind": "classification",
            "n_patients": 90,
            "feature_dim": 4,
            "slides_per_patient": [1, 1],
            "patches_per_slide": [2, 3],
            "tumor_slide_rate": 0.2,
        },
    )
    dm.prepare_data()
    dm.setup("fit")
    ds = dm.datasets["train"]
    label = np.array([dm.sources.labels["label"][c] for c in ds.case_ids])
    assert 0.1 < label.mean() < 0.35  # the training fold is imbalanced (about 1 positive in 5)
    sampler = dm.train_dataloader().sampler
    drawn = []
    for epoch in range(20):
        sampler.epoch_fn = lambda e=epoch: e
        drawn += [label[i] for i, _ in sampler]
    assert len(drawn) == 20 * len(ds)
    assert abs(np.mean(drawn) - 0.5) < 0.05, np.mean(drawn)  # unweighted draws would give label.mean()


def test_weighted_sampling_without_survival_or_label_is_a_one_line_error(tmp_path: Path) -> None:
    from survlab.data.datamodule import CohortDataModule

    with pytest.raises(
        ValueError,
        match=r"data=nolabels: weighted_sampling=true needs a survival endpoint or a label.*"
        r"set data.weighted_sampling=false",
    ) as err:
        CohortDataModule(
            name="nolabels",
            root=str(tmp_path),
            time_col=None,
            genomics=None,
            clinical=None,
            weighted_sampling=True,
        )
    assert "\n" not in str(err.value)
