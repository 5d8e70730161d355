"""Pipelines build through the one build path and read the one prediction pass: PathGen's stage predictions
(eval_predictions.csv rows) are the network's outputs patient by patient, and no pipeline module instantiates a data
module / network / task / trainer by hand."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import survlab
from survlab.models.abmil import ABMIL
from survlab.models.base import risk_score
from survlab.runner.pipelines.pathgen_outcome import _predict
from survlab.tasks.objective_classification import ClassificationObjective
from survlab.tasks.objective_survival import SurvivalObjective
from survlab.tasks.outcome import OutcomeTask

PIPELINES = Path(survlab.__file__).parent / "runner" / "pipelines"


def test_pipelines_build_through_runner_build_only() -> None:
    """hydra.utils.instantiate / get_class in a pipeline would be a second build path (survlab.runner.build)."""
    offenders = []
    for path in sorted(PIPELINES.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("instantiate", "get_class"):
                offenders.append(f"{path.name}:{node.lineno} {node.attr}")
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                offenders += [f"{path.name}:{node.lineno} import {n}" for n in names if n.startswith("hydra")]
    assert offenders == []


def test_stage_predictions_equal_the_network_patient_by_patient(make_datamodule: Callable[..., Any]) -> None:
    dm = make_datamodule(genomics=None, clinical=None, modalities=("wsi",), eval_max_patches=None)
    torch.manual_seed(0)
    net = ABMIL(dm.dims, hidden_dim=8, targets=["label"])
    task = OutcomeTask(
        net,
        objectives={"survival": SurvivalObjective(), "grade": ClassificationObjective(label="label")},
        scheduler="none",
    )
    task.fit_references(dm.fitted)
    frame = _predict(task, dm.test_dataloader(), "label")
    net.eval()
    with torch.no_grad():
        batches = [(b, net(b)) for b in dm.test_dataloader()]
    case_ids = [c for b, _ in batches for c in b.case_ids]
    assert frame["case_id"].tolist() == case_ids  # loader order, each patient once
    cat = lambda f: torch.cat([f(b, p) for b, p in batches]).numpy()  # noqa: E731
    np.testing.assert_allclose(frame["risk"], cat(lambda b, p: risk_score(p)), rtol=1e-6)
    probs = cat(lambda b, p: torch.softmax(p.class_logits["label"].float(), -1))
    np.testing.assert_allclose(frame.filter(regex="^label_prob_").to_numpy(), probs, rtol=1e-6)
    hazards = cat(lambda b, p: p.hazard_logits.float())
    np.testing.assert_allclose(frame.filter(regex="^hazard_").to_numpy(), hazards, rtol=1e-6)
    np.testing.assert_array_equal(frame["label"], cat(lambda b, p: b.labels["label"]))
    np.testing.assert_array_equal(frame["time"], cat(lambda b, p: b.time))
    np.testing.assert_array_equal(frame["time_bin"], cat(lambda b, p: b.time_bin))
    assert frame.columns[:6].tolist() == ["case_id", "label", "risk", "time", "event", "time_bin"]
