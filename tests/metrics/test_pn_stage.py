"""CAMELYON17's rule-based pN stage (survlab/metrics/pn_stage.py): the challenge's rule on hand-made slide stages, its
quadratic kappa equal to scikit-learn's, and the run-level report beside the patient head (issue 21.9)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from survlab.metrics.pn_stage import PN_STAGES, pn_rule_metrics, pn_rule_table, pn_stage
from survlab.report.outputs_classification import pn_rule_report

CASES = [  # five nodes per patient, as in CAMELYON17
    (["negative"] * 5, "pN0"),
    (["itc", "negative", "itc", "negative", "negative"], "pN0(i+)"),  # ITC only: not a metastasis
    (["micro", "itc", "negative", "micro", "negative"], "pN1mi"),  # micro, no macro
    (["macro", "negative", "negative", "negative", "negative"], "pN1"),
    (["macro", "micro", "micro", "itc", "itc"], "pN1"),  # 3 metastatic nodes; ITC nodes are not counted
    (["macro", "micro", "micro", "micro", "negative"], "pN2"),  # 4 metastatic nodes, one macro
    (["macro"] * 5, "pN2"),
    (["micro"] * 5, "pN1mi"),  # many micro-metastases but no macro: still pN1mi
]


@pytest.mark.parametrize(("slides", "expected"), CASES)
def test_the_challenges_rule_on_hand_made_nodes(slides: list[str], expected: str) -> None:
    assert pn_stage(slides) == expected


def test_unknown_slide_stage_is_a_one_line_error() -> None:
    with pytest.raises(
        ValueError, match=r"slide stage\(s\) \['tumor'\] unknown; expected \['negative', 'itc'"
    ):
        pn_stage(["negative", "tumor"])


def test_rule_table_counts_each_patients_slides() -> None:
    slides = pd.DataFrame(
        [(f"P{i}", f"P{i}_node_{j}", s) for i, (nodes, _) in enumerate(CASES) for j, s in enumerate(nodes)],
        columns=["case_id", "slide_id", "pred"],
    ).sample(frac=1.0, random_state=0)  # row order must not matter
    table = pn_rule_table(slides)
    assert table["pn_rule"].tolist() == [e for _, e in CASES]
    assert table.loc[4, ["n_negative", "n_itc", "n_micro", "n_macro"]].tolist() == [0, 2, 2, 1]


def test_kappa_is_scikit_learns_quadratic_kappa() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 5, 60)
    pred = np.clip(truth + rng.integers(-1, 2, 60), 0, 4)
    pred[:7] = rng.integers(0, 5, 7)
    names = np.array(PN_STAGES)
    m = pn_rule_metrics(names[pred].tolist(), names[truth].tolist())
    ref = cohen_kappa_score(truth, pred, weights="quadratic", labels=list(range(5)))
    assert m["kappa"] == pytest.approx(ref, abs=1e-12) and 0.5 < ref < 1.0
    assert m["accuracy"] == pytest.approx(float((pred == truth).mean())) and m["n"] == 60
    with pytest.raises(ValueError, match=r"stage\(s\) \['pN3'\] unknown"):
        pn_rule_metrics(["pN3"], ["pN0"])


def test_run_report_puts_the_rule_beside_the_patient_head(tmp_path: Path) -> None:
    """From a run's slide_predictions.csv (predicted slide stages) and predictions.csv: pn_rule.csv and
    test/pn_rule/* beside test/pn_head/* (the head's argmax), both against the true pN."""
    slides = pd.DataFrame(
        [
            (f"P{i}", "slide_ce", f"P{i}_node_{j}", "negative", s)
            for i, (nodes, _) in enumerate(CASES)
            for j, s in enumerate(nodes)
        ]
        + [("P0", "slide_focal", "P0_node_0", "negative", "macro")],  # another objective: ignored
        columns=["case_id", "objective", "slide_id", "label", "pred"],
    )
    slides.to_csv(tmp_path / "slide_predictions.csv", index=False)
    truth = [e for _, e in CASES]
    truth[2] = "pN1"  # the rule is wrong on one patient
    head = ["pN0"] * len(CASES)
    preds = pd.DataFrame(
        {"case_id": [f"P{i}" for i in range(len(CASES))], "pn_stage": truth, "pn_stage_pred": head}
    )
    out = pn_rule_report({"slide_objective": "slide_ce", "patient_label": "pn_stage"}, preds, tmp_path)
    idx = {s: i for i, s in enumerate(PN_STAGES)}
    rule = [e for _, e in CASES]
    kappa = lambda p: cohen_kappa_score(  # noqa: E731
        [idx[t] for t in truth], [idx[x] for x in p], weights="quadratic", labels=list(range(5))
    )
    assert out["test/pn_rule/kappa"] == pytest.approx(kappa(rule)) and out["test/pn_rule/accuracy"] == 7 / 8
    assert out["test/pn_head/kappa"] == pytest.approx(kappa(head)) and out["test/pn_rule/n"] == 8
    written = pd.read_csv(tmp_path / "pn_rule.csv")
    assert written["pn_rule"].tolist() == rule and written["pn_stage"].tolist() == truth
    json.dumps(out)  # JSON-safe for metrics.json
    with pytest.raises(ValueError, match=r"no rows of slide objective 'slide_xx'"):
        pn_rule_report({"slide_objective": "slide_xx", "patient_label": "pn_stage"}, preds, tmp_path)


def test_hmf_camelyon17_recipe_monitors_kappa_and_reports_the_rule(tmp_path: Path) -> None:
    from tests.helpers.runs import compose_config

    cfg = compose_config(tmp_path, ["experiment=hmf_camelyon17", f"paths.data_dir={tmp_path}"])
    assert cfg.monitor == "val/kappa" and cfg.monitor_mode == "max"
    assert dict(cfg.pn_rule) == {"slide_objective": "slide_ce", "patient_label": "pn_stage"}
    objectives = cfg.model.task.objectives
    assert objectives.label.ordinal and objectives.label_focal.ordinal  # kappa with quadratic weights
    assert objectives.slide_ce.level == "slide"
