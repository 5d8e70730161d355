"""Metrics per modality-availability pattern (patients missing a modality, data.missing=keep): the one group metric
shared with the per-site report, the protocol card's counts, the predictions.csv column and the sweep's
availability.csv / summary.md section. Stub data modules and planted rows and job dirs: no training."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from lifelines.utils import concordance_index
from sksurv.metrics import concordance_index_censored

from survlab.report.groups import (
    availability_card,
    availability_report,
    availability_sentence,
    group_report,
)
from survlab.report.predictions import predictions_table
from survlab.report.subgroups import site_report
from survlab.report.sweep import SUMMARY_FILES, summarize_sweep
from survlab.tasks.objective_survival import SurvivalObjective
from survlab.utils.job_identity import write_record
from survlab.utils.jobs import mark_done

PATTERNS = ("wsi+genomics", "wsi", "genomics")


def _planted(n: int = 60, seed: int = 0) -> tuple[list[str], dict[str, np.ndarray], dict[str, str]]:
    """Case ids, one survival objective's rows (index = row of the case ids) and case_id -> pattern."""
    rng = np.random.default_rng(seed)
    ids = [f"P{i:03d}" for i in range(n)]
    time = rng.uniform(1, 100, n)
    event = rng.integers(0, 2, n)
    event[:12] = 1  # every pattern gets events
    risk = -time + rng.normal(0, 30, n)
    pattern = {c: PATTERNS[i % 3] for i, c in enumerate(ids)}
    order = rng.permutation(n)  # rows in pass order, not cohort order: the index carries the patient
    rows = {"index": order, "risk": risk[order], "time": time[order], "event": event[order]}
    return ids, rows, pattern


def _stub_dm(ids: list[str], **kw: object) -> SimpleNamespace:
    return SimpleNamespace(
        full_cohort=SimpleNamespace(table=pd.DataFrame({"case_id": ids}), case_ids=ids), **kw
    )


def test_group_report_is_site_report_by_site_with_the_same_numbers() -> None:
    """Regression of the generalisation: site_report = group_report by split_groups, each site Harrell's C (sksurv)
    and the too-few-events rule unchanged."""
    ids, rows, _ = _planted()
    sites = {c: "AB" if i < 40 else "CD" for i, c in enumerate(ids)}
    rows = dict(rows)
    rows["event"] = rows["event"].copy()
    rows["event"][np.asarray(rows["index"]) >= 42] = 0  # site CD: 2 events (patients 40, 41)
    rows["event"][np.isin(rows["index"], [40, 41])] = 1
    objectives = {"os": SimpleNamespace(level="patient")}
    dm = _stub_dm(ids, split_groups=sites)
    out = site_report(objectives, {"os": rows}, dm)
    assert out == group_report(objectives, {"os": rows}, ids, sites)
    ab = np.asarray(rows["index"]) < 40
    ref = concordance_index_censored(rows["event"][ab].astype(bool), rows["time"][ab], rows["risk"][ab])[0]
    assert out["AB"]["os/cindex"] == ref and out["AB"]["n"] == 40 and out["AB"]["status"] == "ok"
    assert out["CD"] == {"n": 20, "n_events": 2, "os/cindex": None, "status": "too few events (2 < 3)"}
    assert group_report(objectives, {"os": rows}, ids, {}) == {}


def test_availability_report_equals_lifelines_on_each_pattern() -> None:
    ids, rows, pattern = _planted()
    objectives = {"os": SurvivalObjective()}
    out = availability_report(objectives, {"os": rows}, _stub_dm(ids, availability=pattern))
    assert set(out) == set(PATTERNS)
    case = np.asarray(ids)[rows["index"]]
    for p in PATTERNS:
        keep = np.array([pattern[c] == p for c in case])
        ref = concordance_index(rows["time"][keep], -rows["risk"][keep], rows["event"][keep])
        np.testing.assert_allclose(out[p]["os/cindex"], ref, rtol=1e-12)
        assert out[p]["n"] == 20 and out[p]["n_events"] == int(rows["event"][keep].sum())
        assert out[p]["status"] == "ok"
    # every patient has every modality: no section
    assert availability_report(objectives, {"os": rows}, _stub_dm(ids, availability={})) == {}
    assert availability_report(objectives, {"os": rows}, _stub_dm(ids)) == {}


def test_protocol_card_counts_patients_per_pattern_in_each_part() -> None:
    ids = [f"P{i}" for i in range(10)]
    pattern = {c: ("wsi+genomics" if i < 6 else "wsi") for i, c in enumerate(ids)}
    split = SimpleNamespace(
        part=lambda p: {
            "train": ids[:5],
            "val": ids[5:7],
            "test": ids[7:],
            "calibration": [],
        }[p]
    )
    card = availability_card(SimpleNamespace(availability=pattern, split=split, missing="keep"))
    assert card == {
        "missing": "keep",
        "patterns": ["wsi+genomics", "wsi"],
        "counts": {"train": {"wsi+genomics": 5}, "val": {"wsi+genomics": 1, "wsi": 1}, "test": {"wsi": 3}},
    }
    assert "val: 1 wsi+genomics, 1 wsi" in availability_sentence(card) and "data.missing=keep" in (
        availability_sentence(card)
    )
    # no mode on the data module: today's default; no patterns: no card
    assert availability_card(SimpleNamespace(availability=pattern, split=split))["missing"] == "error"
    assert availability_card(SimpleNamespace(availability={}, split=split)) is None


def test_predictions_csv_has_the_availability_column_only_with_patterns() -> None:
    ids = ["a", "b", "c"]
    table = pd.DataFrame({"case_id": ids, "time": [5.0, 9.0, 2.0], "event": [1, 0, 1]})
    cohort = SimpleNamespace(case_ids=ids, rows=lambda c: table.set_index("case_id").loc[c].reset_index())
    rows = {
        "survival": {
            "index": np.array([0, 1, 2]),
            "risk": np.array([0.3, -1.0, 2.0]),
            "time": table["time"].to_numpy(),
            "event": table["event"].to_numpy(),
        }
    }
    objectives = {"survival": SurvivalObjective()}
    plain = predictions_table(objectives, rows, SimpleNamespace(full_cohort=cohort), fold=0)
    assert plain.columns.tolist() == ["case_id", "fold", "risk", "time", "event"]
    dm = SimpleNamespace(full_cohort=cohort, availability={"a": "wsi+genomics", "b": "wsi", "c": "wsi"})
    marked = predictions_table(objectives, rows, dm, fold=0)
    assert marked.columns.tolist() == ["case_id", "fold", "availability", "risk", "time", "event"]
    assert marked["availability"].tolist() == ["wsi+genomics", "wsi", "wsi"]
    pd.testing.assert_frame_equal(marked.drop(columns="availability"), plain)
    only = predictions_table(objectives, rows, dm, outcomes=False)
    assert only.columns.tolist()[:3] == ["case_id", "availability", "risk"]
    assert only.set_index("case_id").loc["b", "availability"] == "wsi"


def _job(root: Path, model: str, fold: int, availability: dict | None) -> None:
    d = root / model / "coh" / f"fold{fold}"
    write_record(d, {}, [f"model={model}", f"fold={fold}"])
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "config.yaml").write_text(
        f"model:\n  name: {model}\ndata:\n  name: coh\nfold: {fold}\nseed: 0\n"
    )
    rng = np.random.default_rng(fold)
    time, event = rng.uniform(1, 100, 30), rng.integers(0, 2, 30)
    f = pd.DataFrame(
        {
            "case_id": [f"P{fold}-{i:02d}" for i in range(30)],
            "fold": fold,
            "risk": -time,
            "time": time,
            "event": event,
        }
    )
    f.to_csv(d / "predictions.csv", index=False)
    metrics = {"model": model, "cohort": "coh", "fold": fold, "seed": 0, "status": "ok", "test/cindex": 0.7}
    if availability is not None:
        metrics["availability"] = availability
    (d / "metrics.json").write_text(json.dumps(metrics))
    mark_done(d)


def test_sweep_writes_availability_csv_and_the_per_pattern_section(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    planted = {  # model -> pattern -> C-index per fold
        "late_fusion": {"wsi+genomics": [0.71, 0.75, 0.68], "wsi": [0.62, 0.60, 0.66]},
        "abmil": {"wsi+genomics": [0.64, 0.66, 0.61], "wsi": [0.63, 0.59, 0.65]},
    }
    for model, by_pattern in planted.items():
        for k in range(3):
            av = {
                p: {"n": 10 + k, "n_events": 4, "os/cindex": v[k], "status": "ok"}
                for p, v in by_pattern.items()
            }
            if model == "abmil" and k == 2:  # one fold too few events in a pattern: left out of the mean
                av["wsi"] = {"n": 12, "n_events": 1, "os/cindex": None, "status": "too few events (1 < 3)"}
            _job(root, model, k, av)
    s = summarize_sweep(root, n_boot=0, plot=False)
    assert "availability.csv" in SUMMARY_FILES and "availability.csv" in s.files
    rows = pd.read_csv(root / "availability.csv")
    assert len(rows) == 12 and set(rows["pattern"]) == {"wsi+genomics", "wsi"}
    r = rows[(rows["model"] == "abmil") & (rows["fold"] == 2) & (rows["pattern"] == "wsi")].iloc[0]
    assert np.isnan(r["os/cindex"]) and r["status"] == "too few events (1 < 3)"
    summ = s.availability_summary.set_index(["variant", "pattern"])
    lf = planted["late_fusion"]["wsi+genomics"]
    np.testing.assert_allclose(summ.loc[("late_fusion", "wsi+genomics"), "os/cindex_mean"], np.mean(lf))
    np.testing.assert_allclose(summ.loc[("late_fusion", "wsi+genomics"), "os/cindex_std"], np.std(lf, ddof=1))
    ab = planted["abmil"]["wsi"][:2]
    np.testing.assert_allclose(summ.loc[("abmil", "wsi"), "os/cindex_mean"], np.mean(ab))
    assert summ.loc[("abmil", "wsi"), "os/cindex_n"] == 2 and summ.loc[("abmil", "wsi"), "n"] == 10 + 11 + 12
    md = (root / "summary.md").read_text()
    assert "## Metrics per availability pattern" in md
    assert (
        f"| coh | wsi+genomics | `late_fusion` | 3 | 33 | 12 | {np.mean(lf):.3f} ± {np.std(lf, ddof=1):.3f} (3) |"
        in md
    )
    # a sweep without patterns: no file, no section
    plain = tmp_path / "plain"
    _job(plain, "abmil", 0, None)
    s2 = summarize_sweep(plain, n_boot=0, plot=False)
    assert "availability.csv" not in s2.files and not (plain / "availability.csv").exists()
    assert "availability pattern" not in (plain / "summary.md").read_text()


def test_a_group_without_a_comparable_pair_says_so_in_its_status() -> None:
    """A site with 3 events (enough by count) that all happen at its last follow-up time has no comparable pair
    (sksurv gives NaN, lifelines raises): its C-index is None and its status says why, never "ok" beside an empty
    value."""
    ids = [f"P{i}" for i in range(10)]
    time = np.array([10.0, 10.0, 10.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    event = np.array([1, 1, 1, 0, 0, 0, 1, 0, 1, 1])
    rows = {"index": np.arange(10), "risk": np.arange(10.0), "time": time, "event": event}
    sites = {c: "A" if i < 6 else "B" for i, c in enumerate(ids)}
    a = np.arange(10) < 6
    with pytest.raises(ZeroDivisionError, match="No admissable pairs"):  # the references agree: undefined
        concordance_index(time[a], -rows["risk"][a], event[a])
    with np.errstate(invalid="ignore"):
        assert np.isnan(concordance_index_censored(event[a].astype(bool), time[a], rows["risk"][a])[0])
    out = group_report({"os": SurvivalObjective()}, {"os": rows}, ids, sites)
    assert out["A"]["n_events"] == 3 and out["A"]["os/cindex"] is None
    assert out["A"]["status"] == "no comparable pair (3 events, none before another patient's time)"
    b = ~a
    ref = concordance_index_censored(event[b].astype(bool), time[b], rows["risk"][b])[0]
    assert out["B"]["os/cindex"] == ref and out["B"]["status"] == "ok"
