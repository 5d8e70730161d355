"""The PathGen pipeline's conformal stage computes its sets with the shared conformal code: on planted predictions
its grade and survival-bin sets equal MAPIE's LAC sets (survival bins: probabilities and the censoring rule written
out here), and its conformal.json entries equal the run writer's (survlab.report.conformal.write_conformal) on the
same rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from survlab.report.conformal import ConformalTarget, write_conformal
from survlab.runner.pipelines.pathgen_conformal import run_conformal
from tests.helpers.conformal import Probs

GRADES = ["G1", "G2", "G3"]
N_BINS = 4


def _planted(tmp: Path) -> pd.DataFrame:
    """A grader stage dir (eval_predictions.csv + classes.json): 60 calibration and 50 test patients of source
    "real", some without a grade (−1), ~40% censored (some in the last bin)."""
    rng = np.random.default_rng(3)
    rows = []
    for part, n in (("calibration", 60), ("test", 50)):
        logits = rng.normal(size=(n, 3)) * 1.5
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        grade = (p.cumsum(1) > rng.random((n, 1))).argmax(1)
        grade[:3] = -1
        time_bin = rng.integers(0, N_BINS, n)
        rows.append(
            pd.DataFrame(
                {
                    "case_id": [f"{part[:3]}{i:02d}" for i in range(n)],
                    "part": part,
                    "source": "real",
                    "grade": grade,
                    "risk": rng.normal(size=n),
                    "time": 10.0 * time_bin + 5.0,
                    "event": (rng.random(n) < 0.6).astype(int),
                    "time_bin": time_bin,
                    **{f"grade_prob_{k}": p[:, k] for k in range(3)},
                    **{f"hazard_{k}": rng.normal(size=n) - 0.5 for k in range(N_BINS)},
                }
            )
        )
    stage = tmp / "grader"
    stage.mkdir(parents=True)
    frame = pd.concat(rows, ignore_index=True)
    frame.to_csv(stage / "eval_predictions.csv", index=False)
    (stage / "classes.json").write_text(json.dumps({"grade": GRADES, "n_bins": N_BINS}))
    return frame


def _bin_probs_and_labels(part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """P(bin k) = prod_{j<k}(1 − h_j) h_k, the last bin the tail; the bin known for events and for censoring in the
    last bin, −1 otherwise (written out, independent of survlab)."""
    h = 1.0 / (1.0 + np.exp(-part.filter(regex="^hazard_").to_numpy()))
    probs = np.empty_like(h)
    alive = np.ones(len(h))
    for k in range(N_BINS):
        probs[:, k] = alive * (h[:, k] if k < N_BINS - 1 else 1.0)
        alive = alive * (1 - h[:, k])
    tb, ev = part["time_bin"].to_numpy(), part["event"].to_numpy().astype(bool)
    return probs, np.where(ev | (tb == N_BINS - 1), tb, -1)


def test_stage_sets_equal_mapie_and_the_run_writer(tmp_path: Path) -> None:
    from mapie.classification import SplitConformalClassifier

    frame = _planted(tmp_path)
    cfg = OmegaConf.create(
        {
            "data": {"name": "planted"},
            "fold": 0,
            "pipeline": {
                "conformal": {"label": "grade", "alphas": [0.1, 0.2], "subgroups": ["grade", "risk_bin"]}
            },
        }
    )
    (tmp_path / "conformal").mkdir()
    summary = run_conformal(cfg, tmp_path, tmp_path / "conformal", {"mcat_gr_real": ("grader", "real")})
    written = pd.read_csv(tmp_path / "conformal" / "conformal_sets.csv", keep_default_na=False)
    cal, test = frame[frame.part == "calibration"], frame[frame.part == "test"]

    inputs = {
        "grade": (
            cal.filter(regex="^grade_prob_").to_numpy(),
            cal.grade.to_numpy(),
            test.filter(regex="^grade_prob_").to_numpy(),
            test.grade.to_numpy(),
            GRADES,
        ),
        "survival_bin": (
            *_bin_probs_and_labels(cal),
            *_bin_probs_and_labels(test),
            [f"bin{k}" for k in range(N_BINS)],
        ),
    }
    for target, (cal_p, cal_y, test_p, test_y, names) in inputs.items():
        known = cal_y >= 0
        mapie = SplitConformalClassifier(
            Probs().fit(cal_p, cal_y), confidence_level=[0.9, 0.8], conformity_score="lac", prefit=True
        )
        mapie.conformalize(cal_p[known], cal_y[known])
        _, mapie_sets = mapie.predict_set(test_p)
        for j, alpha in enumerate([0.1, 0.2]):
            expected = mapie_sets[:, :, j]
            rows = written[(written.target == target) & (written.alpha == alpha)]
            assert rows.case_id.tolist() == test.case_id.tolist()
            assert rows.set.tolist() == ["|".join(np.array(names)[s]) for s in expected], (target, alpha)
            entry = summary[f"mcat_gr_real/{target}/alpha={alpha:g}"]
            sure = test_y >= 0
            assert entry["coverage"] == pytest.approx(expected[sure, test_y[sure]].mean(), abs=1e-12)
            assert entry["mean_set_size"] == pytest.approx(expected[sure].sum(1).mean(), abs=1e-12)
            assert entry["n_test_excluded"] == int((~sure).sum()) and entry["n_calibration_excluded"] == int(
                (~known).sum()
            )
            assert 1.0 < expected.sum(1).mean() < len(names)  # informative sets, so the equality can fail

    # the run writer on the same rows gives the same entries (q̂, counts, coverage, per class)
    def rows(part: pd.DataFrame, offset: int) -> dict[str, dict[str, np.ndarray]]:
        index = np.arange(len(part)) + offset
        return {
            "grade": {
                "index": index,
                "probs": part.filter(regex="^grade_prob_").to_numpy(),
                "label": part.grade.to_numpy(),
            },
            "os": {
                "index": index,
                "hazard_logits": part.filter(regex="^hazard_").to_numpy(),
                "time": part.time.to_numpy(),
                "event": part.event.to_numpy(),
            },
        }

    edges = np.array([0.0, 10.0, 20.0, 30.0, np.inf])  # time = 10 * bin + 5: the same bins
    write_conformal(
        tmp_path / "run",
        [
            ConformalTarget("grade", "class", tuple(GRADES)),
            ConformalTarget("os", "survival_bin", tuple(f"bin{k}" for k in range(N_BINS)), edges),
        ],
        rows(cal, 0),
        rows(test, len(cal)),
        [*cal.case_id, *test.case_id],
        [0.1, 0.2],
    )
    run = json.loads((tmp_path / "run" / "conformal" / "conformal.json").read_text())["results"]
    stage = json.loads((tmp_path / "conformal" / "conformal.json").read_text())["settings"]
    for target, objective in (("grade", "grade"), ("survival_bin", "os")):
        for alpha in (0.1, 0.2):
            a, b = (
                stage[f"mcat_gr_real/{target}/alpha={alpha:g}"],
                run[f"{objective}/alpha={alpha:g}/marginal"],
            )
            for field in ("qhat", "n_calibration", "n_calibration_excluded", "n_test", "n_test_excluded"):
                assert a[field] == b[field], (target, alpha, field)
            for field in ("coverage", "mean_set_size", "empty_rate", "per_class"):
                assert a[field] == b[field], (target, alpha, field)
