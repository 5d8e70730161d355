"""Shipped GSE7390 cohort: equals scikit-survival's data, and materialises in the table-only layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from survlab.data.sources.public import (
    GSE7390_CLINICAL,
    load_gse7390_table,
    materialize_gse7390,
    probe_columns,
)


def test_shipped_csv_equals_sksurv_breast_cancer() -> None:
    datasets = pytest.importorskip("sksurv.datasets")
    x, y = datasets.load_breast_cancer()
    table = load_gse7390_table()
    assert table.shape == (198, 3 + 4 + 76)
    np.testing.assert_allclose(table.survival_months * 30.4375, y["t.tdm"], rtol=1e-14)  # t.tdm is in days
    np.testing.assert_array_equal(table.censorship, 1 - y["e.tdm"].astype(int))
    numeric = x.select_dtypes("number").columns
    assert list(table.columns[3:]) == list(x.columns[x.columns.isin(GSE7390_CLINICAL)]) + list(
        x.columns[~x.columns.isin(GSE7390_CLINICAL)]
    )
    np.testing.assert_array_equal(table[numeric].to_numpy(), x[numeric].to_numpy())  # exact float64
    for col in ("er", "grade"):
        assert table[col].tolist() == x[col].astype(str).tolist()


def test_shipped_csv_summary() -> None:
    table = load_gse7390_table()
    assert table.case_id.is_unique and table.case_id[0] == "GSE7390_000"
    assert int((table.censorship == 0).sum()) == 51  # event rate 51/198 = 0.258
    assert table.survival_months.min() == pytest.approx(125 / 30.4375)
    assert table.survival_months.max() == pytest.approx(9108 / 30.4375)
    assert len(probe_columns(table)) == 76 and not table.isna().any().any()


def test_materialize_writes_table_layout_once(tmp_path: Path) -> None:
    root = materialize_gse7390(tmp_path / "gse7390")
    clinical = pd.read_csv(root / "clinical.csv")
    expression = pd.read_csv(root / "expression.csv")
    signatures = pd.read_csv(root / "signatures_all.csv")
    assert list(clinical.columns) == [
        "case_id",
        "survival_months",
        "censorship",
        "age",
        "er",
        "grade",
        "size",
    ]
    assert expression.shape == (198, 77) and expression.columns[0] == "case_id"
    assert expression.case_id.tolist() == clinical.case_id.tolist()
    assert list(signatures.columns) == ["all_probes"]
    assert signatures.all_probes.tolist() == list(expression.columns[1:])
    meta = json.loads((root / "cohort.json").read_text())
    assert meta["n_patients"] == 198 and meta["event_rate"] == pytest.approx(51 / 198)

    stamp = (root / "clinical.csv").stat().st_mtime_ns
    assert materialize_gse7390(root) == root
    assert (root / "clinical.csv").stat().st_mtime_ns == stamp
