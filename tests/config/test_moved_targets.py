"""Modules moved when the folders became the layers: a user's config naming a class by its old module path still
runs (rewritten, with one warning), and a job's identity is the same whichever spelling its config uses (finished
sweeps recorded before the move are not re-run)."""

from __future__ import annotations

import importlib
import logging

import pytest
from omegaconf import OmegaConf

from survlab.config.check import moved_targets
from survlab.utils import job_identity


def test_old_target_spelling_is_rewritten_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    cfg = OmegaConf.create(
        {
            "model": {"estimator": {"_target_": "survlab.runner.coxnet.PenalisedCox", "l1_ratio": 0.5}},
            "callbacks": {"last": {"_target_": "survlab.runner.setup.LastCheckpoint", "dirpath": "x"}},
            "data": {"_target_": "survlab.data.datamodule.CohortDataModule"},
        }
    )
    with caplog.at_level(logging.WARNING, logger="survlab.config"):
        moved_targets(cfg)
    assert cfg.model.estimator._target_ == "survlab.runner.estimators.coxnet.PenalisedCox"
    assert cfg.callbacks.last._target_ == "survlab.runner.build.LastCheckpoint"
    assert cfg.data._target_ == "survlab.data.datamodule.CohortDataModule"  # not moved: untouched
    lines = [r.getMessage() for r in caplog.records]
    assert (
        len(lines) == 2
        and "model.estimator._target_: survlab.runner.coxnet.PenalisedCox has moved to" in lines[0]
    )


def test_every_moved_module_exists_at_its_new_path_and_not_at_its_old() -> None:
    for new, old in job_identity.MOVED_MODULES.items():
        importlib.import_module(new)
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(old)


def test_identity_is_the_same_for_the_old_and_the_new_spelling() -> None:
    new = {"model": {"estimator": {"_target_": "survlab.runner.estimators.coxnet.PenalisedCox", "alpha": 1}}}
    old = {"model": {"estimator": {"_target_": "survlab.runner.coxnet.PenalisedCox", "alpha": 1}}}
    other = {"model": {"estimator": {"_target_": "survlab.models.linear_cox.LinearCox", "alpha": 1}}}
    digest = lambda tree: job_identity._digest(job_identity.identity_of(tree))  # noqa: E731
    assert digest(new) == digest(old)
    assert digest(new) != digest(other)
