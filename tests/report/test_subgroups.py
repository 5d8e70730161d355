"""Per-subgroup evaluation (survlab.report.subgroups): a treatment group's metrics equal the overall metrics computed by
independent libraries (lifelines, scikit-learn, scikit-survival) on that group's patients; the hazard ratio of the
high- vs low-risk tertile follows a planted effect."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from survlab.report.subgroups import hazard_ratio, subgroup_report
from survlab.tasks.objective_classification import ClassificationObjective
from survlab.tasks.objective_survival import SurvivalObjective


def _fake_run(n: int = 120, seed: int = 0) -> tuple[SimpleNamespace, SimpleNamespace, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    risk = rng.standard_normal(n)
    time = np.round(rng.exponential(30 * np.exp(-risk)) + 0.5, 1)
    event = rng.random(n) < 0.7
    label = (risk + rng.standard_normal(n) > 0).astype(int)
    probs = 1 / (1 + np.exp(-(risk + 0.5 * rng.standard_normal(n))))
    treatment = np.where(rng.random(n) < 0.5, "immunotherapy", "chemotherapy")
    index = rng.permutation(n)  # the rows of the test patients in the cohort table, in any order
    table = pd.DataFrame({"case_id": [f"P{i:03d}" for i in range(n)], "treatment": None})
    table.loc[index, "treatment"] = treatment
    os_obj = SurvivalObjective(loss="cox")
    os_obj.set_reference(np.array([0.0, np.inf]), time, event)  # IPCW from "training" outcomes
    subtype = ClassificationObjective(label="subtype")
    task = SimpleNamespace(
        objectives={"os": os_obj, "subtype": subtype},
        test_rows={
            "os": {"index": index, "risk": risk, "time": time, "event": event},
            "subtype": {"index": index, "probs": np.stack([1 - probs, probs], 1), "label": label},
        },
    )
    dm = SimpleNamespace(full_cohort=SimpleNamespace(table=table), subgroups=["treatment"])
    return (
        task,
        dm,
        {"risk": risk, "time": time, "event": event, "label": label, "probs": probs, "treatment": treatment},
    )


def test_per_treatment_metrics_equal_the_overall_metrics_on_that_subset(tmp_path: Path) -> None:
    from lifelines.utils import concordance_index
    from sklearn.metrics import roc_auc_score
    from sksurv.metrics import cumulative_dynamic_auc
    from sksurv.util import Surv

    task, dm, d = _fake_run()
    out = subgroup_report(task.objectives, task.test_rows, dm, tmp_path, eval_times=[12, 24, 36])
    train = Surv.from_arrays(d["event"], d["time"])
    for group in ("immunotherapy", "chemotherapy"):
        keep = d["treatment"] == group
        key = f"treatment={group}"
        assert out[f"{key}/os/cindex"] == pytest.approx(
            concordance_index(d["time"][keep], -d["risk"][keep], d["event"][keep]), abs=1e-9
        )
        assert out[f"{key}/os/n"] == keep.sum()
        assert out[f"{key}/subtype/auroc"] == pytest.approx(
            roc_auc_score(d["label"][keep], d["probs"][keep]), abs=1e-6
        )
        auc, _ = cumulative_dynamic_auc(
            train, Surv.from_arrays(d["event"][keep], d["time"][keep]), d["risk"][keep], [12, 24, 36]
        )
        for t, a in zip((12, 24, 36), auc, strict=True):
            assert out[f"{key}/os/auc_{t}"] == pytest.approx(a, abs=1e-9)
    assert out["all/os/auc_24"] == pytest.approx(
        cumulative_dynamic_auc(train, train, d["risk"], [24])[0][0], abs=1e-9
    )
    assert (tmp_path / "km_os_treatment_immunotherapy.png").is_file() and (
        tmp_path / "km_os_all.png"
    ).is_file()
    csv = pd.read_csv(tmp_path / "subgroups.csv")
    row = csv[
        (csv.group == "treatment=chemotherapy") & (csv.objective == "subtype") & (csv.metric == "auroc")
    ]
    assert row["value"].item() == pytest.approx(out["treatment=chemotherapy/subtype/auroc"])


def test_hazard_ratio_of_the_high_vs_low_tertile_follows_a_planted_effect() -> None:
    rng = np.random.default_rng(1)
    risk = rng.standard_normal(600)
    time = rng.exponential(20 * np.exp(-1.0 * risk))
    hr = hazard_ratio(risk, time, np.ones(600, dtype=bool))
    assert hr["hr_high_vs_low"] > 3 and hr["hr_ci_low"] > 2 and hr["hr_p"] < 1e-6
    flat = hazard_ratio(torch.zeros(600).numpy() + rng.standard_normal(600), time, np.ones(600, dtype=bool))
    assert flat["hr_ci_low"] < 1 < flat["hr_ci_high"]  # a risk unrelated to the outcome: HR 1 within the CI


def test_hazard_ratio_uses_the_training_cutoffs() -> None:
    from lifelines import CoxPHFitter

    rng = np.random.default_rng(2)
    risk = rng.standard_normal(300) + 0.8  # test risks shifted above the training median (0.0)
    time = rng.exponential(20 * np.exp(-risk))
    event = rng.random(300) < 0.8
    hr = hazard_ratio(risk, time, event, "median", cutoffs=[0.0])
    high = (risk > 0.0).astype(float)
    ref = CoxPHFitter().fit(pd.DataFrame({"high": high, "T": time, "E": event.astype(int)}), "T", "E")
    assert hr["hr_high_vs_low"] == pytest.approx(float(np.exp(ref.params_["high"])), rel=1e-6)
    assert hr["hr_p"] == pytest.approx(float(ref.summary.loc["high", "p"]), rel=1e-6)
    own = hazard_ratio(risk, time, event, "median")  # cut at these patients' own median: another split
    assert own["hr_high_vs_low"] != pytest.approx(hr["hr_high_vs_low"], rel=1e-3)


def test_auc_at_a_time_past_the_training_follow_up_is_nan_and_recorded() -> None:
    """Training outcomes followed up to 30 only (last one an event): auc_36 would weight test events at 30–36 by a
    censoring estimate that ends at 30, so it is NaN and metrics say why; auc_12 / auc_24 equal scikit-survival."""
    from sksurv.metrics import cumulative_dynamic_auc
    from sksurv.util import Surv

    task, dm, d = _fake_run()
    train_time, train_event = np.minimum(d["time"], 30.0), d["event"] | (d["time"] >= 30.0)
    task.objectives["os"].set_reference(np.array([0.0, np.inf]), train_time, train_event)
    dm.subgroups = []
    out = subgroup_report(task.objectives, task.test_rows, dm, None, eval_times=[12, 24, 36])
    assert np.isnan(out["all/os/auc_36"])
    assert (out["all/os/ipcw_followup"], out["all/os/n_auc_times_past_followup"]) == (30.0, 1.0)
    late = d["time"] > 30.0
    test = Surv.from_arrays(d["event"] & ~late, np.minimum(d["time"], 30.0))
    auc, _ = cumulative_dynamic_auc(Surv.from_arrays(train_event, train_time), test, d["risk"], [12, 24])
    assert [out["all/os/auc_12"], out["all/os/auc_24"]] == pytest.approx(list(auc), abs=1e-9)
