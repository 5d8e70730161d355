"""The task protocol (survlab.tasks.base.Task): every task class declares its metrics, primary metric, directions
and reporter; the config checks and the runner ask the class instead of probing attributes; every model config's
task has a `_target_`, the flat spelling still builds a SurvivalTask (with a warning) and keeps its job identity."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf, open_dict

from survlab.config.check import check_config
from survlab.config.check_task import resolve_auto, task_metric_names
from survlab.config.check_values import ConfigError
from survlab.data.dims import ModalityDims
from survlab.models.clinical_mlp import ClinicalMLP
from survlab.models.pathgen import PathGenDenoiser
from survlab.runner.build import build_task, task_reporter
from survlab.tasks.base import Task
from survlab.tasks.diffusion import DiffusionTask
from survlab.tasks.outcome import OutcomeTask
from survlab.tasks.segmentation import SegmentationTask
from survlab.tasks.survival import SurvivalTask
from survlab.utils import job_identity
from tests.helpers.runs import compose_config

CONF = Path(__file__).resolve().parents[2] / "survlab" / "conf" / "model"


def _cfg(tmp: Path, *overrides: str):
    return compose_config(tmp / "out", [f"paths.data_dir={tmp / 'data'}", *overrides])


@pytest.mark.parametrize(
    ("cls", "module"),
    [
        (OutcomeTask, "survlab.report.outputs"),
        (SurvivalTask, "survlab.report.outputs"),
        (SegmentationTask, "survlab.report.segmentation"),
    ],
)
def test_each_task_class_names_its_reporter_in_the_report_layer(cls: type[Task], module: str) -> None:
    writer = hydra.utils.get_method(cls.REPORTER)
    assert writer.__module__ == module
    assert callable(writer)


def test_a_pipeline_stage_task_has_no_reporter_and_says_so() -> None:
    task = DiffusionTask(PathGenDenoiser(ModalityDims(wsi_dim=8, genomic_sizes=(3, 4))))
    with pytest.raises(
        ValueError, match=r"DiffusionTask has no outputs of its own .*experiment=pathgen_pipeline"
    ):
        task_reporter(task)


def test_segmentation_false_positive_metrics_are_minimised(tmp_path: Path) -> None:
    # before the protocol, the config checks read every non-objective task's directions from SurvivalObjective:
    # monitoring the false-lesion count selected the checkpoint with the MOST false lesions
    cfg = _cfg(tmp_path, "experiment=mmdls_seg_synthetic", "monitor=val/lesion_fp_voxels")
    resolve_auto(cfg)
    assert cfg.monitor_mode == "min"
    assert cfg.optimized_metric == "test/lesion_fp_voxels"
    assert task_metric_names(cfg) == ["loss", *SegmentationTask.METRICS]
    auto = _cfg(tmp_path, "experiment=mmdls_seg_synthetic")
    resolve_auto(auto)
    assert (auto.monitor, auto.monitor_mode) == ("val/dice", "max")


def test_config_answers_come_from_the_task_class(tmp_path: Path) -> None:
    surv = _cfg(tmp_path, "model=abmil")
    assert task_metric_names(surv)[:5] == ["loss", "cindex", "cindex_uno", "auc_td", "ibs"]
    resolve_auto(surv)
    assert (surv.monitor, surv.monitor_mode) == ("val/cindex", "max")
    cls = _cfg(tmp_path, "model=abmil_cls", "data=synthetic_classification")
    resolve_auto(cls)
    assert cls.monitor == "val/balanced_accuracy"
    names = OutcomeTask.config_metric_names(cls.model.task)
    assert names == task_metric_names(cls) and names[0] == "loss" and "label/balanced_accuracy" in names
    assert OutcomeTask.config_metric_mode(cls.model.task, "label/loss") == "min"


def test_a_task_target_that_is_not_a_task_is_one_line(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "model=abmil")
    with open_dict(cfg):
        cfg.model.task = OmegaConf.create({"_target_": "torch.nn.Linear"})
    with pytest.raises(ConfigError, match=r"model.task._target_=torch.nn.Linear is not a survlab task"):
        check_config(cfg)


def _task_target(stem: str) -> str | None:
    """model.task._target_ of conf/model/<stem>.yaml, following its `defaults` (the file's own keys win)."""
    node = OmegaConf.load(CONF / f"{stem}.yaml")
    own = OmegaConf.select(node, "task._target_")
    if own is not None:
        return str(own)
    for parent in node.get("defaults") or []:
        if isinstance(parent, str) and parent != "_self_" and (target := _task_target(parent)):
            return target
    return None


def test_every_model_config_task_has_a_target() -> None:
    targets = {p.stem: _task_target(p.stem) for p in sorted(CONF.glob("[!_]*.yaml"))}
    assert [stem for stem, target in targets.items() if target is None] == []
    assert all(issubclass(hydra.utils.get_class(t), Task) for t in targets.values())
    assert targets["abmil"] == targets["clinical_mlp"] == "survlab.tasks.survival.SurvivalTask"


def test_the_flat_survival_task_builds_the_same_task_with_a_warning_and_keeps_its_identity(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = _cfg(tmp_path, "model=clinical_mlp", "model.task.loss=cox", "model.task.lr=0.01")
    assert cfg.model.task._target_ == "survlab.tasks.survival.SurvivalTask"
    flat = cfg.copy()
    with open_dict(flat):
        del flat.model.task._target_
    # the job identity of a config written before `_target_` (finished sweeps are not re-run)
    assert job_identity.identity_of(flat) == job_identity.identity_of(cfg)
    assert job_identity._digest(job_identity.identity_of(flat)) == job_identity._digest(
        job_identity.identity_of(cfg)
    )
    other = cfg.copy()
    with open_dict(other):
        other.model.task._target_ = "survlab.tasks.outcome.OutcomeTask"
    assert job_identity.identity_of(other) != job_identity.identity_of(cfg)

    dims = ModalityDims(clinical_dim=3, n_bins=4)
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING, logger="survlab.runner.build"):
        old = build_task(flat, ClinicalMLP(dims, output="risk"))
    assert any("model.task has no _target_" in r.getMessage() for r in caplog.records)
    caplog.clear()
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING, logger="survlab.runner.build"):
        new = build_task(cfg, ClinicalMLP(dims, output="risk"))
    assert not caplog.records
    assert type(old) is type(new) is SurvivalTask
    assert dict(old.hparams) == dict(new.hparams)
    assert new.primary.kind == "cox" and new.hparams.lr == 0.01
    for (k, a), (_, b) in zip(old.state_dict().items(), new.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
