"""Stage 2 of the PathGen pipeline, `grader/` and `wsi_only/`: a model trained on real genomics (a survlab run in the
stage dir), then its predictions of the calibration and test patients for every genomics source (real, synthetic)
from the one prediction pass: `eval_predictions.csv`, `classes.json` and, for the grader, per-patch maps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from survlab.runner.build import build_net, build_task
from survlab.runner.pipelines.patch_inference import patch_predictions
from survlab.runner.pipelines.pathgen_stage import Train, _datamodule, _device, _loaders, _stage_config
from survlab.runner.predict import predict
from survlab.tasks.objective_classification import ClassificationObjective
from survlab.tasks.objective_survival import SurvivalObjective
from survlab.utils.files import atomic_path
from survlab.utils.outputs import write_json


def _load_task(stage_cfg: DictConfig, checkpoint: str, dm: Any) -> Any:
    """The stage's task (network + objectives, the one build path) with the selected checkpoint's weights, in
    evaluation mode."""
    task = build_task(stage_cfg, build_net(stage_cfg, dm.dims))
    task.fit_references(dm.fitted)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    task.load_state_dict(state)
    return task.eval()


def _predict(task: Any, loader: Any, label: str) -> pd.DataFrame:
    """case_id, <label> (class index, −1 missing), risk, time, event, time_bin, <label>_prob_k, hazard_k (logits),
    one row per patient in loader order, from the one prediction pass (survlab.runner.predict) of `task`: its primary
    survival objective and its patient-level classification objective on `label`."""
    objectives = task.objectives
    survival = next(
        (n for n, o in objectives.items() if isinstance(o, SurvivalObjective) and o.endpoint is None), None
    )
    grade = next(
        (
            n
            for n, o in objectives.items()
            if isinstance(o, ClassificationObjective) and o.level == "patient" and o.label == label
        ),
        None,
    )
    if survival is None or grade is None:
        raise ValueError(
            f"pipeline stage model: its task needs a survival objective on the primary endpoint and a patient-level "
            f"classification objective on pipeline.conformal.label={label!r} (has {list(objectives)}); add them "
            f"to model.task.objectives"
        )
    rows = predict(task, [loader], outcomes=False, targets=True)
    t = rows.targets
    surv, cls = rows.objectives[survival], rows.objectives[grade]
    at_s, at_c = np.searchsorted(surv["index"], t["index"]), np.searchsorted(cls["index"], t["index"])
    frame = pd.DataFrame(
        {
            "case_id": list(t["case_id"]),
            label: t[f"label:{label}"],
            "risk": surv["risk"][at_s],
            "time": t["time"],
            "event": t["event"].astype(int),
            "time_bin": t["time_bin"],
        }
    )
    probs = cls["probs"][at_c]
    for k in range(probs.shape[1]):
        frame[f"{label}_prob_{k}"] = probs[:, k]
    for k, col in enumerate(surv["hazard_logits"][at_s].T):
        frame[f"hazard_{k}"] = col
    return frame


def run_outcome_stage(
    cfg: DictConfig,
    out_dir: Path,
    stage_dir: Path,
    train: Train,
    model: Any,
    max_epochs: int | None,
    sources: dict[str, str | None],
    patch_maps: bool,
) -> dict[str, Any]:
    """Train `model` on real genomics (a survlab run in `stage_dir`), then predict calibration + test patients for
    every genomics source (name → values_from table; None = real) → eval_predictions.csv (+ patch maps)."""
    stage_cfg = _stage_config(cfg, out_dir, stage_dir, model, max_epochs)
    metrics = train(stage_cfg, stage_dir)
    write_json(stage_dir / "metrics.json", metrics)
    label = cfg.pipeline.conformal.label
    device, frames = _device(cfg), []
    for source, values_from in sources.items():
        dm = _datamodule(stage_cfg, values_from=values_from)
        task = _load_task(stage_cfg, metrics["checkpoint"], dm).to(device)
        loaders = _loaders(dm)
        for part in ("calibration", "test"):
            if part not in loaders:
                raise ValueError(
                    f"data={dm.name}: the PathGen pipeline needs a calibration part; set "
                    f"data.splits.calibration_fraction > 0 (e.g. 0.2)"
                )
            frame = _predict(task, loaders[part], label)
            frame.insert(1, "part", part)
            frame.insert(2, "source", source)
            frames.append(frame)
        if patch_maps:
            slides = dict(zip(dm.cohort.table["case_id"], dm.cohort.table["slide_ids"], strict=True))
            classes = list(dm.fitted.targets["labels"][label])
            # patch-level inference (each patch alone, a heat map), not a patient prediction: its own loop
            maps = [
                patch_predictions(task.net, b.to(device), slides, label, classes) for b in loaders["test"]
            ]
            with atomic_path(stage_dir / f"patch_predictions_{source}.csv") as tmp:
                pd.concat(maps, ignore_index=True).to_csv(tmp, index=False)
    classes = list(dm.fitted.targets["labels"][label])
    with atomic_path(stage_dir / "eval_predictions.csv") as tmp:
        pd.concat(frames, ignore_index=True).to_csv(tmp, index=False)
    write_json(stage_dir / "classes.json", {label: classes, "n_bins": int(dm.n_bins)})
    return metrics
