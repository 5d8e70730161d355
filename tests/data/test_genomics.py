"""Genomic groups: exact symbol matching, join by case_id, train-only scaler (standard / minmax), no pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from survlab.data.modalities.genomics import GeneScaler, genomic_tensors, match_groups, read_expression


def test_exact_symbol_matching_never_prefix(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO"):
        groups = match_groups(["TP53", "TP53BP1", "EGFR"], {"g1": ["TP53", "KRAS"], "g2": ["EGFR", "EGFR"]})
    assert groups.genes == (("TP53",), ("EGFR",)) and groups.sizes == (1, 1)
    assert groups.report() == {"g1": {"kept": 1, "total": 2}, "g2": {"kept": 1, "total": 1}}
    assert "g1: kept 1/2" in caplog.text


def test_no_signatures_means_one_group_of_all_columns() -> None:
    groups = match_groups(["a", "b", "c"], None)
    assert groups.names == ("all",) and groups.sizes == (3,)


def test_many_groups_log_a_summary(caplog: pytest.LogCaptureFixture) -> None:
    sig = {f"p{i}": ["a"] for i in range(12)}
    with caplog.at_level("INFO"):
        match_groups(["a"], sig)
    assert "12 groups, kept 12/12 genes" in caplog.text and "p3" not in caplog.text


@pytest.mark.parametrize("method", ["standard", "minmax"])
def test_scaler_round_trip_without_pickle(method: str, tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(5, 2, size=(20, 3))
    x[:, 2] = 1.0  # constant gene -> scale 1, no division by zero
    scaler = GeneScaler(method, log1p=False).fit(x)
    z = scaler.transform(x)
    if method == "standard":
        assert np.allclose(z[:, :2].mean(0), 0, atol=1e-6) and np.allclose(z[:, :2].std(0), 1, atol=1e-5)
    else:
        assert np.allclose(z[:, :2].min(0), -1) and np.allclose(z[:, :2].max(0), 1)
    for name in ("s.npz", "s.json"):
        scaler.save(tmp_path / name)
        again = GeneScaler.load(tmp_path / name)
        assert np.allclose(again.transform(x), z) and again.method == method


def test_rows_joined_by_case_id(tmp_path: Path) -> None:
    df = pd.DataFrame({"case_id": ["a", "b", "c"], "G1": [1.0, 2.0, 3.0], "G2": [10.0, 20.0, 30.0]})
    df.to_csv(tmp_path / "e1.csv", index=False)
    df.iloc[[2, 0, 1]].to_csv(tmp_path / "e2.csv", index=False)
    groups = match_groups(["G1", "G2"], {"g": ["G2", "G1"]})
    out = []
    for name in ("e1.csv", "e2.csv"):
        expr = read_expression(tmp_path / name)
        scaler = GeneScaler("none").fit(expr.loc[["a", "b"], ["G2", "G1"]].to_numpy())
        out.append(genomic_tensors(expr, groups, scaler, ["b", "c"]))
    assert out[0]["c"][0].tolist() == out[1]["c"][0].tolist() == [30.0, 3.0]
