"""Cohort table (slide rows -> patient rows, endpoints) and TimeBins (train-only quantile edges)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from survlab.data.cohort.endpoint import Endpoint
from survlab.data.cohort.table import Cohort
from survlab.data.cohort.time_bins import TimeBins


def _csv(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "clinical.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_slide_rows_collapse_to_patients(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        [
            dict(case_id="A", slide_id="A-1", survival_months=10.0, censorship=0, label="x"),
            dict(case_id="A", slide_id="A-2", survival_months=10.0, censorship=0, label="x"),
            dict(case_id="B", slide_id="B-1", survival_months=5.0, censorship=1, label="y"),
        ],
    )
    cohort = Cohort.from_csv(path, keep_cols=["label"])
    assert cohort.case_ids == ["A", "B"]
    assert cohort.table["slide_ids"].tolist() == [["A-1", "A-2"], ["B-1"]]
    assert cohort.table["event"].tolist() == [True, False]
    assert cohort.slide_to_case == {"A-1": "A", "A-2": "A", "B-1": "B"}
    assert cohort.table["label"].tolist() == ["x", "y"]


def test_table_only_cohort_and_event_col_and_endpoint(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        [
            dict(case_id="A", t=3.0, dead=1, dfs_months=2.0, dfs_censorship=1),
            dict(case_id="B", t=4.0, dead=0, dfs_months=1.0, dfs_censorship=0),
        ],
    )
    os_ = Cohort.from_csv(path, endpoint=Endpoint.resolve("os", time_col="t", event_col="dead"))
    assert os_.table["event"].tolist() == [True, False]
    assert os_.table["slide_ids"].tolist() == [[], []]
    dfs = Cohort.from_csv(path, endpoint=Endpoint.resolve("dfs"))
    assert dfs.table["time"].tolist() == [2.0, 1.0]
    assert dfs.table["event"].tolist() == [False, True]


def test_real_synthetic_cohort_loads(tiny_cohort: Path) -> None:
    cohort = Cohort.from_csv(tiny_cohort / "clinical.csv", keep_cols=["label", "age"])
    assert len(cohort) == 40 and cohort.table["case_id"].is_unique
    assert all(len(s) >= 1 for s in cohort.table["slide_ids"])


def test_time_bins_quantiles_of_event_times_with_open_outer_edges(tmp_path: Path) -> None:
    times = np.array([1.0, 2.0, 3.0, 4.0, 100.0, 200.0])
    events = np.array([1, 1, 1, 1, 0, 0], bool)
    bins = TimeBins.fit(times, events, n_bins=2)
    assert bins.edges.tolist() == [0.0, 2.5, np.inf]  # censored 100/200 do not move the quantiles
    assert bins.transform(np.array([0.1, 2.5, 3.0, 1e6])).tolist() == [0, 1, 1, 1]
    path = tmp_path / "bins.json"
    bins.save(path)
    assert json.loads(path.read_text())["edges"][-1] == "inf"  # plain JSON, no pickle
    assert np.array_equal(TimeBins.load(path).edges, bins.edges)


def test_label_and_category_whitespace_variants_are_one_value(tmp_path: Path) -> None:
    """'LUAD' and 'LUAD ' were two classes (and 'M' / ' M' two one-hot columns)."""
    from survlab.data.cohort.clinical import ClinicalEncoder
    from survlab.data.cohort.targets import parse_labels

    path = _csv(
        tmp_path,
        [
            dict(case_id="A", survival_months=10.0, censorship=0, label="LUAD", sex="M"),
            dict(case_id="B", survival_months=5.0, censorship=1, label="LUAD ", sex=" M"),
            dict(case_id="C", survival_months=7.0, censorship=0, label="LUSC", sex="F"),
            dict(case_id="D", survival_months=8.0, censorship=0, label=" ", sex="F"),
        ],
    )
    cohort = Cohort.from_csv(path, keep_cols=["label", "sex"])
    assert cohort.table["label"].tolist()[:3] == ["LUAD", "LUAD", "LUSC"] and pd.isna(
        cohort.table["label"][3]
    )
    classes = parse_labels(None, ["label"])["label"].fit(cohort.table["label"])  # class order of the label
    assert {c: i for i, c in enumerate(classes)} == {"LUAD": 0, "LUSC": 1}
    enc = ClinicalEncoder(["sex"], categorical=["sex"]).fit(cohort.table)
    assert enc.feature_names == ["sex=F", "sex=M"]
    assert enc.transform(cohort.table).tolist() == [[0, 1], [0, 1], [1, 0], [1, 0]]


def test_an_endpoint_longer_than_os_is_refused_in_either_role(tmp_path: Path) -> None:
    """DFS (or any endpoint) ends at the latest at OS (death / last contact): a longer one is refused, as primary or
    secondary endpoint, in one line naming the cases; equal times and a missing DFS cell pass."""
    import pytest

    from survlab.data.cohort.checks import Finding

    rows = [
        dict(case_id="A", t=10.0, dead=1, dfs_months=4.0, dfs_censorship=0),
        dict(case_id="B", t=8.0, dead=0, dfs_months=8.0, dfs_censorship=1),  # equal: fine
        dict(case_id="C", t=6.0, dead=1, dfs_months=None, dfs_censorship=None),  # missing DFS: fine
        dict(case_id="D", t=12.0, dead=1, dfs_months=3.0, dfs_censorship=0),
    ]
    os_ = Endpoint.resolve("os", time_col="t", event_col="dead")
    ok = Cohort.from_csv(_csv(tmp_path, rows), endpoint=os_, secondary=[Endpoint.resolve("dfs")])
    assert ok.table["time:dfs"].tolist()[:2] == [4.0, 8.0]
    rows[3]["dfs_months"] = 20.0  # D: DFS 20 months, dead at 12
    path = _csv(tmp_path, rows)
    pattern = r"dfs time 'dfs_months' is longer than the os time 't' for 1 patient\(s\) \(D; e\.g\. D: 20\.0 > 12\.0\)"
    with pytest.raises(ValueError, match=pattern) as err:
        Cohort.from_csv(path, endpoint=os_, secondary=[Endpoint.resolve("dfs")])
    assert "\n" not in str(err.value)
    (tmp_path / "primary").mkdir()
    full = _csv(
        tmp_path / "primary", [{**r, "dfs_months": r["dfs_months"] or 5.0, "dfs_censorship": 1} for r in rows]
    )
    with pytest.raises(
        ValueError, match=pattern
    ):  # DFS the primary endpoint (then it has no empty cell), OS secondary
        Cohort.from_csv(full, endpoint=Endpoint.resolve("dfs"), secondary=[os_])
    found: list[Finding] = []
    Cohort.from_csv(path, endpoint=os_, secondary=[Endpoint.resolve("dfs")], findings=found)
    assert [(f.check, f.cases) for f in found] == [("dfs longer than os", ("D",))]
