"""KM risk-group cutoffs come from the fold's TRAINING patients, predicted by the selected weights (their rows of
the run's one prediction pass, survlab.runner.predict)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch

from survlab.models.abmil import ABMIL
from survlab.models.base import risk_score
from survlab.report.km import training_cutoffs, training_risks
from survlab.runner.predict import _training_loaders, run_test_pass
from survlab.tasks.survival import SurvivalTask


def _trainer() -> L.Trainer:
    return L.Trainer(
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )


def test_training_risks_cover_the_training_patients_only_and_equal_the_network(
    make_datamodule: Callable[..., Any],
) -> None:
    dm = make_datamodule()
    torch.manual_seed(0)
    task = SurvivalTask(ABMIL(dm.dims), scheduler="none")
    task.fit_references(dm.fitted)
    parts = run_test_pass(task, _trainer(), datamodule=dm)
    index, risk = training_risks(task.objectives, [parts["train"], parts["val"]])["survival"]
    ids = [dm.full_cohort.case_ids[i] for i in index]
    train_ids = set(dm.split.part("train")) | set(dm.split.part("val"))
    assert set(ids) == train_ids and len(ids) == len(train_ids)
    assert not set(ids) & set(dm.split.part("test"))
    # the same numbers as the network, patient by patient, in evaluation mode (dropout off)
    task.eval()
    expected = {}
    with torch.no_grad():
        for loader in (dm.train_eval_dataloader(), dm.val_dataloader()):
            for batch in loader:
                for i, r in zip(batch.index.tolist(), risk_score(task(batch)).tolist(), strict=True):
                    expected[i] = r
    np.testing.assert_allclose(risk, [expected[i] for i in index], rtol=1e-5, atol=1e-6)
    training = [parts["train"], parts["val"]]
    cut = training_cutoffs(task.objectives, training, "median")["survival"]
    assert cut == pytest.approx([np.median(risk)], rel=1e-6)
    tert = training_cutoffs(task.objectives, training, "tertiles")["survival"]
    np.testing.assert_allclose(tert, np.quantile(risk, [1 / 3, 2 / 3]), rtol=1e-6)


def test_no_training_part_gives_no_cutoffs(make_datamodule: Callable[..., Any]) -> None:
    dm = make_datamodule()
    task = SurvivalTask(ABMIL(dm.dims), scheduler="none")
    dm.datasets = {"test": dm.datasets["test"]}  # what an external cohort's data module holds
    assert _training_loaders(dm) == {}
    assert training_cutoffs(task.objectives, [None, None]) == {}
