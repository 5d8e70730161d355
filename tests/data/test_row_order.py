"""The same content gives the same results: shuffling the rows of clinical.csv (incl. one patient's slide rows) and
of expression.csv changes no split file, no Batch tensor and no test prediction (DESIGN 'Reproducibility')."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from survlab.data.batch import Batch
from tests.helpers.runs import run_job


def shuffled_copy(src: Path, dst: Path, seed: int = 1) -> Path:
    """Copy a cohort, shuffle clinical.csv rows (and swap the first two slide rows of a multi-slide patient) and
    expression.csv rows and gene columns; the content is unchanged."""
    shutil.copytree(src, dst)
    clin = pd.read_csv(dst / "clinical.csv", dtype=str, keep_default_na=False)
    clin = clin.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    multi = clin["case_id"].value_counts().loc[lambda n: n > 1].index.sort_values()[0]
    rows = clin.index[clin["case_id"] == multi][:2]
    clin.loc[rows[::-1], "slide_id"] = clin.loc[rows, "slide_id"].to_numpy()  # the two rows differ only here
    clin.to_csv(dst / "clinical.csv", index=False)
    expr = pd.read_csv(dst / "expression.csv", dtype=str)
    genes = list(np.random.default_rng(seed).permutation(expr.columns[1:]))
    expr.sample(frac=1.0, random_state=seed)[["case_id", *genes]].to_csv(dst / "expression.csv", index=False)
    return dst


def assert_batches_equal(a: Iterable[Batch], b: Iterable[Batch]) -> int:
    """Every field of every batch equal (tensors exactly); returns the number of batches compared."""
    n = 0
    for ba, bb in zip(a, b, strict=True):
        for f in fields(Batch):
            _assert_equal(getattr(ba, f.name), getattr(bb, f.name), f.name)
        n += 1
    return n


def _assert_equal(x: Any, y: Any, name: str) -> None:
    if isinstance(x, torch.Tensor):
        assert isinstance(y, torch.Tensor) and x.shape == y.shape and torch.equal(x, y), name
    elif isinstance(x, dict):
        assert x.keys() == y.keys(), name
        for k in x:
            _assert_equal(x[k], y[k], f"{name}.{k}")
    elif isinstance(x, list) and x and isinstance(x[0], torch.Tensor):
        assert len(x) == len(y), name
        for i, (xi, yi) in enumerate(zip(x, y, strict=True)):
            _assert_equal(xi, yi, f"{name}[{i}]")
    else:
        assert x == y, name


def test_shuffled_rows_give_identical_splits_and_batches(
    tiny_cohort: Path, tmp_path: Path, make_datamodule: Callable[..., Any]
) -> None:
    shuffled = shuffled_copy(tiny_cohort, tmp_path / "shuffled")
    dms = []
    for name, root in (("a", tiny_cohort), ("b", shuffled)):
        splits = {"dir": str(tmp_path / f"splits_{name}"), "folds": 3, "val_fraction": 0.2, "seed": 0}
        dms.append(make_datamodule(root=root, splits=splits, max_patches=8))
    a, b = dms
    for k in range(3):
        name = f"splits_{k}.csv"
        assert (tmp_path / "splits_a" / name).read_bytes() == (tmp_path / "splits_b" / name).read_bytes()
    assert a.split_hash == b.split_hash and a.cohort.case_ids == b.cohort.case_ids == sorted(
        a.cohort.case_ids
    )
    multi = next(s for s in a.cohort.table["slide_ids"] if len(s) > 1)
    assert multi == sorted(multi)  # slides in slide_id order, whatever the CSV order
    for part in ("train", "val", "test"):  # item by item, same case order
        da, db = a.datasets[part], b.datasets[part]
        assert da.case_ids == db.case_ids and len(da) > 0
        torch.manual_seed(0)
        items_a = [da[i] for i in range(len(da))]
        torch.manual_seed(0)
        items_b = [db[i] for i in range(len(db))]
        for ia, ib in zip(items_a, items_b, strict=True):
            for f in fields(ia):
                _assert_equal(getattr(ia, f.name), getattr(ib, f.name), f"{part} {ia.case_id} {f.name}")
    torch.manual_seed(0)
    batches_a = list(a.train_dataloader())
    torch.manual_seed(0)
    batches_b = list(b.train_dataloader())
    assert assert_batches_equal(batches_a, batches_b) >= 2
    assert assert_batches_equal(a.test_dataloader(), b.test_dataloader()) >= 1


@pytest.mark.slow  # end-to-end: a training run / CLI subprocess (make test-e2e)
def test_shuffled_rows_give_identical_abmil_predictions(tiny_cohort: Path, tmp_path: Path) -> None:
    """A short ABMIL run (dropout + patch sampling) on the cohort and on its shuffled copy predicts the same."""
    preds = []
    for name in ("a", "b"):
        data_dir = tmp_path / name
        if name == "a":
            shutil.copytree(tiny_cohort, data_dir / "tcga_luad")
        else:
            shuffled_copy(tiny_cohort, data_dir / "tcga_luad")
        run_job(
            tmp_path / f"run_{name}",
            [
                "model=abmil",
                "data=tcga_luad",
                "debug=tiny",
                f"paths.data_dir={data_dir}",
                f"paths.log_dir={tmp_path / 'logs'}",
                "data.wsi.encoder=synthetic",
                "data.wsi.feature_dim=8",
                "data.max_patches=16",
                "data.num_workers=0",
                "data.pin_memory=false",
                "export_attention=false",
                "fold=1",
            ],
        )
        df = pd.read_csv(tmp_path / f"run_{name}" / "predictions.csv", dtype={"case_id": str})
        preds.append(df.sort_values("case_id").reset_index(drop=True))
    a, b = preds
    assert a["case_id"].tolist() == b["case_id"].tolist() and len(a) >= 5
    numeric = a.select_dtypes("number").columns
    assert list(numeric) == list(b.select_dtypes("number").columns) and "risk" in numeric
    np.testing.assert_allclose(a[numeric].to_numpy(float), b[numeric].to_numpy(float), rtol=0, atol=1e-6)
