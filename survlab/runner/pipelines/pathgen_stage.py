"""The stage machinery of the PathGen pipeline: a stage dir holds `stage.json` (its identity) and `DONE`, and is skipped
when both match (`_run_stage`); each stage runs the job's config with its own model and dirs (`_stage_config`), its
set-up data module (`_datamodule`, through survlab.runner.build), evaluation loaders of every part and the device.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from survlab.runner.build import build_datamodule
from survlab.utils import job_identity, jobs
from survlab.utils.outputs import write_json

log = logging.getLogger("survlab.pipeline")

STAGE_FILE = "stage.json"
Train = Callable[[DictConfig, Path], dict[str, Any]]


def _digest(payload: Any) -> str:
    return job_identity._digest(json.loads(json.dumps(payload, sort_keys=True, default=str)))


def _stage_done(stage_dir: Path, identity: str) -> bool:
    try:
        record = json.loads((stage_dir / STAGE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return record.get("identity") == identity and (stage_dir / jobs.DONE).is_file()


def _run_stage(
    name: str, stage_dir: Path, identity: str, rerun: bool, work: Callable[[], dict[str, Any]]
) -> None:
    """Run `work` in `stage_dir` unless it is DONE with the same identity (and not asked to re-run)."""
    if not rerun and _stage_done(stage_dir, identity):
        log.info("pipeline stage %s: outputs of the same configuration exist in %s, skipped", name, stage_dir)
        return
    stage_dir.mkdir(parents=True, exist_ok=True)
    (stage_dir / jobs.DONE).unlink(missing_ok=True)
    write_json(stage_dir / STAGE_FILE, {"stage": name, "identity": identity})
    log.info("pipeline stage %s → %s", name, stage_dir)
    work()
    jobs.mark_done(stage_dir)


def _stage_config(
    cfg: DictConfig, out_dir: Path, stage_dir: Path, model: Any = None, max_epochs: int | None = None
) -> DictConfig:
    """The job's config, resolved, for one stage: its `model`, its own checkpoint/log dirs, no pipeline."""
    tree = OmegaConf.to_container(cfg, resolve=True)
    tree["pipeline"] = None
    if model is not None:
        tree["model"] = copy.deepcopy(model)
    if max_epochs is not None:
        tree["trainer"]["max_epochs"] = int(max_epochs)

    def move(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: move(v) for k, v in node.items()}
        if isinstance(node, str) and node.startswith(str(out_dir)):
            return str(stage_dir) + node[len(str(out_dir)) :]
        return node

    for key in ("callbacks", "logger"):
        tree[key] = move(tree.get(key))
    stage = OmegaConf.create(tree)
    with open_dict(stage):
        stage.monitor, stage.monitor_mode, stage.optimized_metric = (
            cfg.monitor,
            cfg.monitor_mode,
            cfg.optimized_metric,
        )
    return stage


def _datamodule(stage: DictConfig, **genomics: Any) -> Any:
    """The set-up data module of a stage's config (`data` + the `model` whose network says which modalities it
    reads), built by the one build path (survlab.runner.build), with genomics options replaced by `genomics`."""
    node = OmegaConf.create(OmegaConf.to_container(stage, resolve=True))
    if genomics and node.data.get("genomics") is not None:
        with open_dict(node):
            for k, v in genomics.items():
                node.data.genomics[k] = v
    dm = build_datamodule(node)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def _loaders(dm: Any) -> dict[str, Any]:
    """Evaluation-mode loaders of every part of the fold (no shuffling, full bags)."""
    out = {"train": dm.train_eval_dataloader(), "val": dm.val_dataloader(), "test": dm.test_dataloader()}
    if "calibration" in dm.datasets:
        out["calibration"] = dm.calibration_dataloader()
    return out


def _device(cfg: DictConfig) -> torch.device:
    return torch.device(
        "cuda"
        if str(cfg.trainer.get("accelerator", "cpu")) in ("gpu", "cuda", "auto") and torch.cuda.is_available()
        else "cpu"
    )
