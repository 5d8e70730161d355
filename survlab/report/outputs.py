"""Write a finished run's outputs from its one prediction pass (survlab.runner.predict, `PatientRows` per part):
predictions.csv (report/predictions.py: `predictions_table` + `write_predictions`), the classification figures and
the pN rule (report/outputs_classification.py), protocol.json, km.png, attention/ — and the metrics dict
(`write_run_outputs`, the survival / outcome tasks' REPORTER). Nothing here runs the network."""

from __future__ import annotations

import json
import logging
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from omegaconf import DictConfig, OmegaConf

import survlab
from survlab.metrics.survival import harrell_cindex
from survlab.report.attention import write_attention
from survlab.report.attention_h5 import write_attention_h5
from survlab.report.groups import availability_card, availability_report
from survlab.report.km import plot_km_by_risk, training_cutoffs
from survlab.report.outputs_classification import _classification_outputs, pn_rule_report
from survlab.report.predictions import _primary_survival, predictions_table, write_predictions
from survlab.report.rows import PatientRows
from survlab.tasks.objective_horizon import HorizonObjective
from survlab.tasks.objective_survival import SurvivalObjective
from survlab.tasks.outcome import OutcomeTask
from survlab.utils.outputs import git_commit, write_json

log = logging.getLogger("survlab.run")


def _bayes_accuracy(datamodule: Any) -> float | None:
    """The Bayes accuracy of a synthetic classification cohort's patient label (oracle.json), else None."""
    try:
        value = json.loads((Path(datamodule.root) / "oracle.json").read_text()).get("bayes_accuracy")
    except (OSError, ValueError, AttributeError, TypeError):
        return None
    return float(value) if value is not None else None


def metrics_head(cfg: DictConfig, task: Any, trainer: L.Trainer, name: str | None = None) -> dict[str, Any]:
    """The keys every metrics.json starts with: model (`name`, default cfg.model.name), cohort, fold, seed, status,
    the task's test metrics (`test/<metric>`) and the selected checkpoint's validation score (`val/best`)."""
    ckpt_cb = trainer.checkpoint_callback if trainer is not None else None
    best = getattr(ckpt_cb, "best_model_score", None)
    return {
        "model": name or cfg.model.name,
        "cohort": cfg.data.name,
        "fold": int(cfg.fold),
        "seed": int(cfg.seed),
        "status": "ok",
        **{f"test/{k}": float(v) for k, v in getattr(task, "test_metrics", {}).items()},
        "val/best": float(best) if best is not None else None,
    }


def write_run_outputs(
    cfg: DictConfig,
    out_dir: Path,
    task: OutcomeTask,
    datamodule: Any,
    trainer: L.Trainer,
    ckpt: str | None,
    wall_s: float,
    km_cutoffs: dict[str, np.ndarray] | None = None,
    protocol_card: dict[str, Any] | None = None,
    predictions: Mapping[str, PatientRows] | None = None,
) -> dict[str, Any]:
    """Write every per-run file from the run's one prediction pass and return the metrics that go to metrics.json.

    `predictions`: part -> rows of survlab.runner.predict.run_test_pass ("test": the scored patients, with the attention
    asked for; "train" / "val": the fold's training patients, when the data module has them); default: the test rows
    of `trainer.test` (`task.test_rows`) alone. KM risk groups are cut at `km_cutoffs` (objective -> cutoffs;
    default: fitted on the training patients' rows, survlab.report.km). `protocol_card`: further protocol.json keys
    (an evaluation's trained-on / evaluated-on card, a classical estimator's fit), written with the rest:
    protocol.json is written once."""
    case_ids = datamodule.full_cohort.case_ids  # Batch.index = row of the patient in the full cohort table
    predictions = predictions or {"test": PatientRows(dict(task.test_rows))}
    objectives, test = task.objectives, predictions["test"]
    survival = _primary_survival(objectives)
    preds = predictions_table(objectives, test.objectives, datamodule, cfg.fold)
    write_predictions(preds, out_dir)
    _classification_outputs(objectives, test.objectives, datamodule, cfg, out_dir, case_ids)

    oracle, km = None, {}
    km_method = cfg.get("km_groups", "median")
    if survival is not None and km_cutoffs is None:
        km_cutoffs = training_cutoffs(
            objectives, [predictions.get("train"), predictions.get("val")], km_method
        )
        if not km_cutoffs:
            log.warning(
                "no training patients to cut the KM risk groups at: cut at the test patients' %s", km_method
            )
    if survival is not None:
        oracle_risk = datamodule.oracle_risk  # reads truth.csv: once
        if oracle_risk:
            true_risk = np.array([oracle_risk[c] for c in preds["case_id"]])
            oracle = harrell_cindex(
                true_risk, preds["time"].to_numpy(), preds["event"].to_numpy().astype(bool)
            )
        km = plot_km_by_risk(
            preds["risk"].to_numpy(),
            preds["time"].to_numpy(),
            preds["event"].to_numpy().astype(bool),
            out_dir / "km.png",
            method=km_method,
            cutoffs=(km_cutoffs or {}).get(survival),
            time_unit=str(getattr(datamodule, "time_unit", "months")),
            title=f"{cfg.model.name} · {cfg.data.name} · fold {cfg.fold} (test)",
        )
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                logger.log_image(key="test/km", images=[str(out_dir / "km.png")])

    if cfg.get(
        "export_attention", True
    ):  # the top-k tables of the pass (survlab.runner.predict.attention_spec)
        write_attention(test.attention, out_dir / "attention")
    if cfg.get(
        "export_attention_h5", False
    ):  # per test slide: coords + attention h5 for CLAM / TRIDENT heatmaps
        store = getattr(getattr(datamodule, "sources", None), "wsi", None)
        write_attention_h5(test.slide_attention, out_dir / "attention" / "h5", store)

    metrics: dict[str, Any] = {
        **metrics_head(cfg, task, trainer),
        **{f"test/{k}_note": note for k, note in getattr(task, "test_notes", {}).items()},
        "oracle_cindex": oracle,
        "bayes_accuracy": _bayes_accuracy(datamodule),
        "n_test": int(len(preds)),
        "target_counts": getattr(datamodule, "target_counts", None),  # n / n_missing per target and part
        "km_logrank_p": km.get("logrank_p"),
        "km_logrank_note": km.get("logrank_note"),
        "km_hr_high_vs_low": km.get("hr_high_vs_low"),
        "km_hr_ci": [km["hr_ci_low"], km["hr_ci_high"]] if "hr_ci_low" in km else None,
        "km_hr_p": km.get("hr_p"),
        "km_cutoffs": km.get("cutoffs"),
        # every survival objective's training cutoffs (secondary endpoints too): another cohort is cut at them
        "km_cutoffs_by_objective": {
            name: [float(c) for c in np.reshape(cuts, -1)] for name, cuts in (km_cutoffs or {}).items()
        }
        or None,
        "epochs_trained": int(trainer.current_epoch),
        "checkpoint": ckpt,
        "wall_s": round(wall_s, 2),
    }
    if getattr(datamodule, "subgroups", None) or cfg.get(
        "eval_times"
    ):  # per-group metrics, fixed-time td-AUC, HR
        from survlab.report.subgroups import subgroup_report

        groups = subgroup_report(
            objectives,
            test.objectives,
            datamodule,
            out_dir,
            cfg.get("eval_times"),
            km_method,
            cutoffs=km_cutoffs,
        )
        metrics.update({f"test/{k}": v for k, v in groups.items()})
    if getattr(datamodule, "split_groups", None):  # site-preserved folds: metrics per site of the test fold
        from survlab.report.subgroups import site_report

        metrics["sites"] = site_report(objectives, test.objectives, datamodule)
    availability = availability_card(datamodule)
    if availability is not None:  # patients missing a modality: metrics per availability pattern (test part)
        metrics["availability"] = availability_report(objectives, test.objectives, datamodule)
    if cfg.get("pn_rule"):
        metrics.update(pn_rule_report(cfg.pn_rule, preds, out_dir))
    split = getattr(datamodule, "split", None)
    protocol = {
        **(protocol_card or {}),
        "cohort": datamodule.describe(),
        "model": {
            "name": cfg.model.name,
            "class": cfg.model.net._target_,
            "modalities": list(
                getattr(task.net, "inputs", None) or type(task.net).modalities
            ),  # table nets: what they read
            "n_parameters": int(sum(p.numel() for p in task.net.parameters())),
        },
        "fold": int(cfg.fold),
        "selection": cfg.selection,
        "monitor": cfg.monitor,
        "validation": {  # what the monitored metric is computed on: the inner validation patients of this fold
            "monitor": cfg.monitor,
            "n_patients": len(split.val) if split is not None else None,
        },
        "selected_checkpoint": ckpt,
        "seed": int(cfg.seed),
        "objectives": {
            name: {
                "class": type(o).__name__,
                "weight": o.weight,
                **(
                    {"endpoint": o.endpoint or "primary", "loss": o.kind, "bin_edges": o.bin_edges}
                    if isinstance(o, SurvivalObjective)
                    else {"endpoint": o.endpoint or "primary", "horizons": list(o.horizons)}
                    if isinstance(o, HorizonObjective)
                    else {"label": o.label, "level": o.level, "loss": o.kind}
                ),
            }
            for name, o in task.objectives.items()
        },
        "targets": datamodule.fitted.targets if getattr(datamodule, "fitted", None) is not None else None,
        **({"availability": availability} if availability is not None else {}),
        "survlab_version": survlab.__version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": __import__("torch").__version__,
        "lightning": L.__version__,
        "trainer": {
            "precision": str(trainer.precision),
            "world_size": trainer.world_size,
            "strategy": type(trainer.strategy).__name__,
            "accelerator": type(trainer.accelerator).__name__,
        },
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    write_json(out_dir / "protocol.json", protocol)
    oracle_txt = f"{oracle:.3f}" if oracle is not None else "n/a"
    if survival is not None:
        log.info(
            "fold %s test C-index %.3f (oracle %s, Uno %.3f, IBS %s) — outputs in %s",
            cfg.fold,
            metrics.get(f"test/{survival}/cindex", float("nan")),
            oracle_txt,
            metrics.get(f"test/{survival}/cindex_uno", float("nan")),
            f"{metrics.get(f'test/{survival}/ibs'):.3f}"
            if metrics.get(f"test/{survival}/ibs") is not None
            else "n/a",
            out_dir,
        )
    heads = []
    for name, o in task.objectives.items():
        what = "C-index" if isinstance(o, SurvivalObjective) else o.primary_metric.replace("_", " ")
        prefix = "" if o is task.primary and isinstance(o, SurvivalObjective) else f"{name} "
        heads.append(f"{prefix}{what} {metrics.get(f'test/{name}/{o.primary_metric}', float('nan')):.3f}")
    oracle_part = f" | oracle C-index {oracle_txt}" if survival is not None else ""
    print(
        f"\nsurvlab: {cfg.model.name} on {cfg.data.name} fold {cfg.fold}: test "
        f"{'; '.join(heads)}{oracle_part}\noutputs: {out_dir}\n"
    )
    return metrics
