"""Per-site test metrics and the site-leak gap of a random-vs-site-preserved sweep (fake job dirs, no training)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from helpers.pooled import within_fold_cindex
from sksurv.metrics import concordance_index_censored

from survlab.report.subgroups import site_report
from survlab.report.sweep import summarize_sweep
from survlab.utils.job_identity import write_record
from survlab.utils.jobs import mark_done


def _c(f: pd.DataFrame) -> float:
    return concordance_index_censored(f["event"].astype(bool), f["time"], f["risk"])[0]


def test_site_report_scores_each_site_and_reports_too_few_events_as_such() -> None:
    rng = np.random.default_rng(0)
    n = 30
    case_ids = [f"TCGA-{'AB' if i < 20 else 'CD'}-{i:04d}" for i in range(n)]
    time, risk = rng.uniform(1, 100, n), rng.normal(size=n)
    event = np.r_[rng.integers(0, 2, 20), [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]]  # site CD: 2 events
    rows = {"index": np.arange(n), "risk": risk, "time": time, "event": event}
    task = SimpleNamespace(objectives={"os": SimpleNamespace(level="patient")}, test_rows={"os": rows})
    dm = SimpleNamespace(
        split_groups={c: c.split("-")[1] for c in case_ids},
        full_cohort=SimpleNamespace(table=pd.DataFrame({"case_id": case_ids})),
    )
    out = site_report(task.objectives, task.test_rows, dm)
    ab = pd.DataFrame({"risk": risk[:20], "time": time[:20], "event": event[:20]})
    assert out["AB"]["os/cindex"] == _c(ab) and out["AB"]["status"] == "ok" and out["AB"]["n"] == 20
    assert out["CD"] == {"n": 10, "n_events": 2, "os/cindex": None, "status": "too few events (2 < 3)"}
    assert (
        site_report(task.objectives, task.test_rows, SimpleNamespace(split_groups={})) == {}
    )  # random folds: no per-site section


def _job(root: Path, fold: int, group: str, risk_noise: float, sites: dict | None) -> Path:
    d = root / "abmil" / "coh" / f"fold{fold}" / f"data.splits.group={group}"
    write_record(d, {}, ["model=abmil", f"fold={fold}", f"+data.splits.group={group}"])
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "config.yaml").write_text(
        f"model:\n  name: abmil\ndata:\n  name: coh\nfold: {fold}\nseed: 0\n"
    )
    rng = np.random.default_rng(fold)  # the same patients and outcomes under both fold kinds
    time, event = rng.uniform(1, 100, 40), rng.integers(0, 2, 40)
    risk = -time + np.random.default_rng(100 + fold + len(group)).normal(0, risk_noise, 40)
    f = pd.DataFrame(
        {
            "case_id": [f"P{fold}-{i:02d}" for i in range(40)],
            "fold": fold,
            "risk": risk,
            "time": time,
            "event": event,
        }
    )
    f.to_csv(d / "predictions.csv", index=False)
    metrics = {
        "model": "abmil",
        "cohort": "coh",
        "fold": fold,
        "seed": 0,
        "status": "ok",
        "test/cindex": _c(f),
    }
    if sites is not None:
        metrics["sites"] = sites
    (d / "metrics.json").write_text(json.dumps(metrics))
    mark_done(d)
    return d


def test_sweep_over_group_null_and_site_gives_both_rows_and_their_gap(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    few = {"n": 10, "n_events": 1, "os/cindex": None, "status": "too few events (1 < 3)"}
    dirs = {"null": [], "site": []}
    for k in range(3):
        dirs["null"].append(_job(root, k, "null", 20.0, None))  # random folds: sharper (leaky) predictions
        dirs["site"].append(
            _job(
                root,
                k,
                "site",
                60.0,
                {f"S{k}": {"n": 30, "n_events": 12, "os/cindex": 0.6, "status": "ok"}, f"T{k}": few},
            )
        )
    s = summarize_sweep(root, n_boot=50, boot_seed=1, plot=False)
    pooled = {
        g: within_fold_cindex(pd.concat(pd.read_csv(d / "predictions.csv") for d in ds))
        for g, ds in dirs.items()
    }
    mean = {g: float(np.mean([_c(pd.read_csv(d / "predictions.csv")) for d in ds])) for g, ds in dirs.items()}
    gap = s.site_gap.iloc[0]
    assert (gap["cohort"], gap["model"], gap["group"]) == ("coh", "abmil", "site")
    np.testing.assert_allclose(gap["pooled_cindex_random"], pooled["null"])
    np.testing.assert_allclose(gap["pooled_cindex_grouped"], pooled["site"])
    np.testing.assert_allclose(gap["gap_pooled_cindex"], pooled["null"] - pooled["site"])
    np.testing.assert_allclose(gap["gap_test/cindex"], mean["null"] - mean["site"])
    assert (
        gap["gap_pooled_cindex"] > 0.05
        and gap["gap_pooled_ci_low"] < gap["gap_pooled_cindex"] < gap["gap_pooled_ci_high"]
    )
    assert gap["gap_pooled_n"] == 120  # paired on the same 120 patients
    sites = pd.read_csv(root / "sites.csv")
    assert len(sites) == 6 and set(sites["site"]) == {"S0", "S1", "S2", "T0", "T1", "T2"}
    t = sites[sites["site"] == "T1"].iloc[0]
    assert np.isnan(t["os/cindex"]) and t["status"] == "too few events (1 < 3)" and t["fold"] == 1
    md = (root / "summary.md").read_text()
    assert "## Site-leak gap: random vs site-preserved folds" in md and "too few events (1 < 3)" in md
    assert f"{pooled['null'] - pooled['site']:.4f}" in md


def test_site_report_of_a_label_gives_the_sites_auroc_or_says_why_not() -> None:
    from sklearn.metrics import roc_auc_score

    from survlab.tasks.objective_classification import ClassificationObjective

    rng = np.random.default_rng(1)
    labels = np.r_[rng.integers(0, 2, 16), np.zeros(8, int)]  # site Y: one class only
    p1 = np.clip(0.5 + 0.3 * (labels - 0.5) + rng.normal(0, 0.2, 24), 0.01, 0.99)
    rows = {"index": np.arange(24), "probs": np.c_[1 - p1, p1], "label": labels}
    obj = ClassificationObjective.__new__(ClassificationObjective)  # score() only reads `ordinal`
    obj.ordinal, obj.level = False, "patient"
    task = SimpleNamespace(objectives={"subtype": obj}, test_rows={"subtype": rows})
    ids = [f"P{i}" for i in range(24)]
    dm = SimpleNamespace(
        split_groups={c: "X" if i < 16 else "Y" for i, c in enumerate(ids)},
        full_cohort=SimpleNamespace(table=pd.DataFrame({"case_id": ids})),
    )
    out = site_report(task.objectives, task.test_rows, dm)
    np.testing.assert_allclose(out["X"]["subtype/auroc"], roc_auc_score(labels[:16], p1[:16]))
    assert out["Y"]["subtype/auroc"] is None and out["Y"]["status"].startswith(
        "too few patients per class ([8]"
    )
