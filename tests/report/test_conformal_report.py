"""Conformal sets of any run (survlab.report.conformal / survlab.runner.conformal): the writer's numbers equal a direct
recomputation, the survival-bin censoring rule, "not computable" instead of a crash, and the one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from survlab.config.check import check_config
from survlab.config.check_values import ConfigError
from survlab.report.conformal import ConformalTarget, probs_and_labels, write_conformal
from survlab.runner.conformal import check_conformal, conformal_targets, external_conformal, parse_cli
from survlab.runner.evaluate import parse_args
from survlab.tasks.objective_classification import ClassificationObjective
from survlab.tasks.objective_survival import SurvivalObjective
from survlab.utils.job_identity import identity_of


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _class_rows(rng: np.random.Generator, index: np.ndarray, k: int = 3) -> dict[str, np.ndarray]:
    return {
        "index": index,
        "probs": _softmax(rng.normal(size=(len(index), k)) * 2),
        "label": rng.integers(0, k, size=len(index)),
    }


EDGES = np.array([0.0, 10.0, 20.0, 30.0, np.inf])


def _surv_rows(rng: np.random.Generator, index: np.ndarray) -> dict[str, np.ndarray]:
    n = len(index)
    time = rng.uniform(0, 45, size=n)
    time[:3] = [10.0, 30.0, np.nan]  # exactly on an edge -> the upper bin; a patient without this endpoint
    return {
        "index": index,
        "risk": rng.normal(size=n),
        "time": time,
        "event": rng.random(n) < 0.5,
        "hazard_logits": rng.normal(size=(n, 4)),
    }


def _qhat(scores: np.ndarray, alpha: float) -> float:
    """The ceil((n+1)(1-alpha))-th smallest score, written out (independent of survlab's helper)."""
    n = len(scores)
    return float(np.sort(scores)[math.ceil((n + 1) * (1 - alpha) - 1e-9) - 1])


def test_writer_numbers_equal_a_direct_recomputation(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    case_ids = [f"P{i:03d}" for i in range(200)]
    cal_idx, test_idx = np.arange(0, 80), np.arange(100, 200)
    cal = {"grade": _class_rows(rng, cal_idx), "os": _surv_rows(rng, cal_idx)}
    test = {"grade": _class_rows(rng, test_idx), "os": _surv_rows(rng, test_idx)}
    groups = pd.DataFrame({"sex": np.where(np.arange(200) % 2, "F", "M")}, index=range(200))
    targets = [
        ConformalTarget("grade", "class", ("G1", "G2", "G3")),
        ConformalTarget("os", "survival_bin", ("bin0", "bin1", "bin2", "bin3"), EDGES),
    ]
    metrics = write_conformal(
        tmp_path, targets, cal, test, case_ids, [0.1, 0.2], mondrian=True, groups=groups
    )
    out = tmp_path / "conformal"
    result = json.loads((out / "conformal.json").read_text())["results"]
    sets_csv = pd.read_csv(out / "conformal_sets.csv")
    table = pd.read_csv(out / "conformal.csv")

    # classification, marginal: q̂ from the calibration scores, sets {k: p_k >= 1 - q̂}
    p, y = cal["grade"]["probs"], cal["grade"]["label"]
    q = _qhat(1 - p[np.arange(80), y], 0.1)
    r = result["grade/alpha=0.1/marginal"]
    assert r["qhat"] == pytest.approx(q, abs=1e-15)
    tp, ty = test["grade"]["probs"], test["grade"]["label"]
    sets = tp >= 1 - q - 1e-8
    covered = sets[np.arange(100), ty]
    assert r["coverage"] == pytest.approx(covered.mean())
    assert r["mean_set_size"] == pytest.approx(sets.sum(1).mean())
    assert metrics["conformal/grade/alpha=0.1/marginal/coverage"] == pytest.approx(covered.mean())
    rows = sets_csv[
        (sets_csv.objective == "grade") & (sets_csv.alpha == 0.1) & (sets_csv.method == "marginal")
    ]
    assert rows.case_id.tolist() == [case_ids[i] for i in test_idx]
    names = np.array(["G1", "G2", "G3"])
    assert rows.set.fillna("").tolist() == ["|".join(names[s]) for s in sets]
    assert rows.covered.astype(bool).tolist() == covered.tolist()
    # per true class and per subgroup
    for k, name in enumerate(names):
        assert r["per_class"][name]["coverage"] == pytest.approx(covered[ty == k].mean())
    female = (test_idx % 2).astype(bool)
    sub = table[(table.objective == "grade") & (table.alpha == 0.1) & (table.method == "marginal")]
    sub = sub.set_index(["subgroup", "value"])
    assert sub.loc[("sex", "F"), "coverage"] == pytest.approx(covered[female].mean())
    assert sub.loc[("sex", "M"), "mean_set_size"] == pytest.approx(sets[~female].sum(1).mean())

    # Mondrian: one q̂ per true class from that class's calibration scores
    m = result["grade/alpha=0.2/mondrian"]
    for k, name in enumerate(names):
        assert m["qhat"][name] == pytest.approx(_qhat(1 - p[y == k, k], 0.2), abs=1e-15)

    # survival bins: the time's bin from the edges (t on an edge -> the upper bin), known for events and for
    # censoring in the last bin only, NaN time dropped
    s = cal["os"]
    ok = np.isfinite(s["time"])
    time_bin = np.searchsorted(EDGES[1:-1], s["time"][ok], side="right")
    known = s["event"][ok] | (time_bin == 3)
    h = 1 / (1 + np.exp(-s["hazard_logits"][ok]))
    surv = np.cumprod(np.concatenate([np.ones((ok.sum(), 1)), 1 - h[:, :-1]], 1), 1)
    bin_p = np.concatenate([surv[:, :3] * h[:, :3], surv[:, 3:]], 1)
    scores = 1 - bin_p[known, time_bin[known]]
    r = result["os/alpha=0.2/marginal"]
    assert r["n_calibration"] == 79 and r["n_calibration_excluded"] == int((~known).sum()) > 0
    assert r["qhat"] == pytest.approx(_qhat(scores, 0.2), abs=1e-12)
    cal_csv = pd.read_csv(out / "conformal_calibration.csv")
    assert np.allclose(np.sort(cal_csv[cal_csv.objective == "os"].score), np.sort(scores))
    os_sets = sets_csv[
        (sets_csv.objective == "os") & (sets_csv.alpha == 0.2) & (sets_csv.method == "marginal")
    ]
    assert len(os_sets) == 99  # the test patient without the endpoint has no row
    assert os_sets.covered.isna().sum() == r["n_test_excluded"]
    assert (os_sets.label == "unknown").sum() == r["n_test_excluded"]


def test_survival_bin_rule_on_edges_and_censoring() -> None:
    target = ConformalTarget("os", "survival_bin", ("bin0", "bin1", "bin2", "bin3"), EDGES)
    rows = {
        "index": np.arange(6),
        "time": np.array([5.0, 10.0, 25.0, 35.0, 12.0, np.nan]),
        "event": np.array([1, 1, 0, 0, 0, 1], dtype=bool),
        "hazard_logits": np.zeros((6, 4)),
    }
    index, probs, labels = probs_and_labels(target, rows)
    # 5 -> bin0 (event); 10 -> bin1 (event, on the edge); 25 censored in bin2 -> unknown; 35 censored in the last
    # bin -> known bin3; 12 censored in bin1 -> unknown; NaN time -> no row
    assert index.tolist() == [0, 1, 2, 3, 4]
    assert labels.tolist() == [0, 1, -1, 3, -1]
    assert np.allclose(probs[0], [0.5, 0.25, 0.125, 0.125])  # hazard 1/2 per bin, the last bin takes the tail


def test_too_few_calibration_patients_is_not_computable_not_a_crash(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    cal, test = _class_rows(rng, np.arange(5)), _class_rows(rng, np.arange(5, 25))
    metrics = write_conformal(
        tmp_path,
        [ConformalTarget("grade", "class", ("a", "b", "c"))],
        {"grade": cal},
        {"grade": test},
        [f"P{i}" for i in range(25)],
        [0.1, 0.5],
    )
    result = json.loads((tmp_path / "conformal" / "conformal.json").read_text())["results"]
    bad, good = result["grade/alpha=0.1/marginal"], result["grade/alpha=0.5/marginal"]
    assert bad["note"].startswith("not computable") and "needs >= 9" in bad["note"]
    assert bad["coverage"] is None and bad["qhat"] is None
    assert math.isnan(metrics["conformal/grade/alpha=0.1/marginal/coverage"])
    assert good["qhat"] == pytest.approx(_qhat(1 - cal["probs"][np.arange(5), cal["label"]], 0.5))
    sets = pd.read_csv(tmp_path / "conformal" / "conformal_sets.csv")
    assert sets.alpha.unique().tolist() == [0.5]  # no sets written for the setting that is not computable


def _task(*objectives: tuple[str, object]) -> SimpleNamespace:
    return SimpleNamespace(objectives=dict(objectives))


def test_check_before_training_needs_a_calibration_part_and_an_objective() -> None:
    cfg = OmegaConf.create({"conformal": {"alphas": [0.1], "mondrian": False}, "model": {"name": "coxmlp"}})
    grade = ClassificationObjective(label="grade")
    fitted = SimpleNamespace(classes={"grade": ("G1", "G2")})
    no_cal = SimpleNamespace(datasets={"train": 0, "val": 0, "test": 0}, fitted=fitted)
    with pytest.raises(
        ValueError, match=r"^conformal.alphas=\[0.1\] needs a calibration part: set data.splits.cal"
    ):
        check_conformal(cfg, _task(("grade", grade)), no_cal)
    with_cal = SimpleNamespace(datasets={"train": 0, "calibration": 0}, fitted=fitted)
    check_conformal(cfg, _task(("grade", grade)), with_cal)  # fine
    cox = SurvivalObjective(loss="cox")
    with pytest.raises(
        ValueError, match=r"no objective of model=coxmlp gets conformal sets \(os \(SurvivalObj"
    ):
        check_conformal(cfg, _task(("os", cox)), with_cal)
    off = OmegaConf.create({"conformal": {"alphas": [], "mondrian": False}})
    check_conformal(off, _task(("os", cox)), no_cal)  # off: nothing asked, nothing checked
    # nll survival objectives get bin sets, Cox ones none
    nll = SurvivalObjective(loss="nll")
    nll.bin_edges = EDGES
    targets, skipped = conformal_targets(_task(("grade", grade), ("os", nll), ("cox", cox)), fitted)
    assert [(t.objective, t.kind, len(t.names)) for t in targets] == [
        ("grade", "class", 2),
        ("os", "survival_bin", 4),
    ]
    assert skipped == ["cox (SurvivalObjective, cox)"]


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"alphas": [1.5], "mondrian": False}, r"conformal.alphas=\[1.5\] must be numbers in \(0, 1\)"),
        ({"alphas": [0.1], "mondrian": "yes"}, r"conformal.mondrian='yes' must be true or false"),
        ({"alphas": [0.1], "mondrain": True}, r"must be \{alphas: \[0.1, 0.2\], mondrian: false\}"),
    ],
)
def test_config_check_refuses_bad_conformal_options(node: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_config(OmegaConf.create({"conformal": node}))


def test_identity_unchanged_while_conformal_is_off() -> None:
    base = {"seed": 0, "data": {"name": "x"}, "model": {"name": "m"}}
    off = {**base, "conformal": {"alphas": [], "mondrian": False}}
    on = {**base, "conformal": {"alphas": [0.1], "mondrian": False}}
    assert identity_of(OmegaConf.create(off)) == identity_of(OmegaConf.create(base))
    assert identity_of(OmegaConf.create(on)) != identity_of(OmegaConf.create(base))


def test_eval_command_line_conformal_options() -> None:
    options, overrides = parse_args(
        ["run=/r", "conformal.alphas=[0.1,0.2]", "conformal.mondrian=true", "data.x=1"]
    )
    assert options["conformal.alphas"] == "[0.1,0.2]" and overrides == ["x=1"]
    node = parse_cli(["conformal.alphas=[0.1,0.2]"])  # over conf/config.yaml's defaults
    assert list(node.alphas) == [0.1, 0.2] and node.mondrian is False
    assert list(parse_cli([]).alphas) == []  # not asked on the command line: off
    with pytest.raises(ValueError, match=r"^conformal.mondrain: unknown option; allowed: alphas, mondrian"):
        parse_cli(["conformal.mondrain=true"])


def test_external_evaluation_needs_a_run_with_a_calibration_part(tmp_path: Path) -> None:
    node = parse_cli(["conformal.alphas=[0.2]"])
    internal = SimpleNamespace(datasets={"train": 0, "val": 0, "test": 0})
    with pytest.raises(
        ValueError, match=r"^conformal.alphas=\[0.2\]: run=/r has no calibration part \(it was trained"
    ):
        external_conformal(OmegaConf.create({}), node, None, None, tmp_path, Path("/r"), internal)
    assert not (tmp_path / "conformal").exists()
