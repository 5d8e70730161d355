"""Write a finished run's outputs from its one prediction pass (survlab.runner.predict, `PatientRows` per part):
predictions.csv (one writer: `predictions_table` + `write_predictions`), protocol.json, km.png, attention/ — and the
metrics dict. Nothing here runs the network."""

from __future__ import annotations

import json
import logging
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

import survlab
from survlab.metrics.classification import confusion_matrix
from survlab.metrics.pn_stage import pn_rule_metrics, pn_rule_table
from survlab.metrics.survival import harrell_cindex
from survlab.models.base import survival_from_hazard_logits
from survlab.report.attention import write_attention
from survlab.report.attention_h5 import write_attention_h5
from survlab.report.figures import plot_confusion, plot_roc_pr
from survlab.report.groups import availability_card, availability_report
from survlab.report.km import plot_km_by_risk, training_cutoffs
from survlab.report.rows import PatientRows
from survlab.tasks.objectives import (
    SLIDE_STRIDE,
    ClassificationObjective,
    HorizonObjective,
    SurvivalObjective,
)
from survlab.tasks.outcome import OutcomeTask
from survlab.utils.files import atomic_path
from survlab.utils.outputs import git_commit, write_json

log = logging.getLogger("survlab.run")


def predictions_frame(results: dict[str, np.ndarray], case_ids: list[str], fold: int | None) -> pd.DataFrame:
    """One row per test patient: case_id, fold, risk, time, event, hazard_k, surv_k (discrete-time models)."""
    frame = pd.DataFrame(
        {
            "case_id": [case_ids[i] for i in results["index"]],
            "fold": fold,
            "risk": results["risk"].astype(float),
            "time": results["time"].astype(float),
            "event": results["event"].astype(int),
        }
    )
    if "hazard_logits" in results:
        import torch

        logits = torch.as_tensor(results["hazard_logits"])
        hazards = torch.sigmoid(logits).numpy()
        surv = survival_from_hazard_logits(logits).numpy()
        for k in range(hazards.shape[1]):
            frame[f"hazard_{k}"] = hazards[:, k]
        for k in range(surv.shape[1]):
            frame[f"surv_{k}"] = surv[:, k]
    return frame


def _bayes_accuracy(datamodule: Any) -> float | None:
    """The Bayes accuracy of a synthetic classification cohort's patient label (oracle.json), else None."""
    try:
        value = json.loads((Path(datamodule.root) / "oracle.json").read_text()).get("bayes_accuracy")
    except (OSError, ValueError, AttributeError, TypeError):
        return None
    return float(value) if value is not None else None


def _primary_survival(objectives: Mapping[str, Any] | OutcomeTask) -> str | None:
    """Name of the objective on the primary survival endpoint (None for a classification-only task); `objectives`:
    the task's objectives (or the task)."""
    if isinstance(objectives, OutcomeTask):
        objectives = objectives.objectives
    for name, objective in objectives.items():
        if isinstance(objective, SurvivalObjective) and objective.endpoint is None:
            return name
    return None


def _class_names(datamodule: Any, label: str, k: int) -> list[str]:
    fitted = getattr(datamodule, "fitted", None)
    targets = fitted.targets if fitted is not None else {}
    names = (targets.get("labels") or {}).get(label) or (targets.get("slide_labels") or {}).get(label)
    return [str(c) for c in names] if names and len(names) == k else [str(i) for i in range(k)]


def predictions_table(
    objectives: Mapping[str, Any],
    rows: Mapping[str, dict[str, np.ndarray]],
    datamodule: Any,
    fold: int | None = None,
    outcomes: bool = True,
    classes: Mapping[str, list[str]] | None = None,
) -> pd.DataFrame:
    """predictions.csv of one pass's `rows` (`PatientRows.objectives`), one row per patient.

    With outcomes (a run's test fold, an external cohort with outcomes): case_id, fold, [risk, time, event, hazard_k,
    surv_k of the primary survival endpoint], per patient-level classification objective `<label>` (true class),
    `<label>_pred`, `<label>_prob_<class>`, and per horizon objective `<objective>_p_<h>` = P(event by h).
    Without (`outcomes=False`, a cohort scored for predictions only; rows of `_outputs_only`, sorted by case_id):
    case_id, per objective in order risk + hazard_k / surv_k (primary endpoint) or `<objective>_risk`,
    `<objective>_p_<h>`, `<label>_pred` / `<label>_prob_<class>`. `classes`: label -> class names (default: the
    data module's fitted ones)."""
    case_ids = datamodule.full_cohort.case_ids
    if not outcomes:
        return _with_availability(_predictions_only(objectives, rows, case_ids, classes or {}), datamodule)
    survival = _primary_survival(objectives)
    if survival is not None:
        preds = predictions_frame(rows[survival], case_ids, fold)
        # outcomes from the cohort table by case_id (the batch carries the same float64 values)
        truth = datamodule.full_cohort.rows(preds["case_id"].tolist())
        preds["time"], preds["event"] = (
            truth["time"].to_numpy(float),
            truth["event"].to_numpy(bool).astype(int),
        )
    else:
        index = set()
        for name, r in rows.items():
            if len(r.get("index", ())):
                slide = getattr(objectives[name], "level", "patient") == "slide"
                index |= {int(i) for i in (r["index"] // SLIDE_STRIDE if slide else r["index"])}
        index = sorted(index)
        preds = pd.DataFrame({"case_id": [case_ids[i] for i in index], "fold": fold})
    for name, objective in objectives.items():
        if isinstance(objective, HorizonObjective) and len(rows[name]):
            frame = pd.DataFrame({"case_id": [case_ids[i] for i in rows[name]["index"]]})
            for j, h in enumerate(objective.horizons):  # P(event by h)
                frame[f"{name}_p_{h:g}"] = rows[name]["probs"][:, j]
            preds = preds.merge(frame, on="case_id", how="left")
        if (
            not isinstance(objective, ClassificationObjective)
            or objective.level != "patient"
            or not len(rows[name])
        ):
            continue
        if (
            objective.label in preds.columns
        ):  # another objective on the same head (e.g. HMF's CE + focal): same columns
            continue
        r = rows[name]
        names = list((classes or {}).get(str(objective.label)) or []) or _class_names(
            datamodule, objective.label, r["probs"].shape[1]
        )
        frame = pd.DataFrame(
            {
                "case_id": [case_ids[i] for i in r["index"]],
                objective.label: [names[i] for i in r["label"]],
                f"{objective.label}_pred": [names[i] for i in r["probs"].argmax(1)],
            }
        )
        for j, c in enumerate(names):
            frame[f"{objective.label}_prob_{c}"] = r["probs"][:, j]
        preds = preds.merge(frame, on="case_id", how="left")
    return _with_availability(preds, datamodule)


def _with_availability(preds: pd.DataFrame, datamodule: Any) -> pd.DataFrame:
    """`preds` with an `availability` column (each patient's modality pattern, `datamodule.availability`; "?" for a
    patient it does not name) after `fold` (or `case_id`) when the data module has patterns; else unchanged."""
    availability = getattr(datamodule, "availability", None) or {}
    if not availability:
        return preds
    at = preds.columns.get_loc("fold" if "fold" in preds.columns else "case_id") + 1
    preds.insert(at, "availability", [availability.get(str(c), "?") for c in preds["case_id"]])
    return preds


def _predictions_only(
    objectives: Mapping[str, Any],
    rows: Mapping[str, dict[str, np.ndarray]],
    case_ids: list[str],
    classes: Mapping[str, list[str]],
) -> pd.DataFrame:
    """predictions.csv of a cohort without outcomes (see `predictions_table`): every scored patient once."""
    import torch

    pieces = [np.asarray(r["index"], int) for r in rows.values() if len(r.get("index", ()))]
    index = np.unique(np.concatenate(pieces)) if pieces else np.zeros(0, int)
    frame = pd.DataFrame({"case_id": [case_ids[i] for i in index]})

    def aligned(r: dict[str, np.ndarray], values: np.ndarray) -> np.ndarray:
        """`values` of `r`'s rows on the frame's rows (NaN / None where an objective has no row)."""
        if np.array_equal(np.asarray(r["index"], int), index):
            return values
        out = np.full(
            len(index),
            None if values.dtype == object else np.nan,
            dtype=values.dtype if values.dtype == object else float,
        )
        out[np.searchsorted(index, np.asarray(r["index"], int))] = values
        return out

    for name, o in objectives.items():
        r = rows.get(name) or {}
        if not len(r.get("index", ())):
            continue
        if isinstance(o, SurvivalObjective):
            frame["risk" if o.endpoint is None else f"{name}_risk"] = aligned(r, r["risk"])
            if o.endpoint is None and "hazard_logits" in r:
                logits = torch.as_tensor(r["hazard_logits"])
                hazards, surv = torch.sigmoid(logits).numpy(), survival_from_hazard_logits(logits).numpy()
                for k in range(hazards.shape[1]):
                    frame[f"hazard_{k}"] = aligned(r, hazards[:, k])
                for k in range(surv.shape[1]):
                    frame[f"surv_{k}"] = aligned(r, surv[:, k])
        elif isinstance(o, HorizonObjective):
            for j, horizon in enumerate(o.horizons):
                frame[f"{name}_p_{horizon:g}"] = aligned(r, r["probs"][:, j])
        elif isinstance(o, ClassificationObjective) and o.level == "patient":
            if f"{o.label}_pred" in frame.columns:  # another objective on the same head: same columns
                continue
            names = list(classes.get(str(o.label)) or [str(i) for i in range(r["probs"].shape[1])])
            frame[f"{o.label}_pred"] = aligned(
                r, np.asarray([names[i] for i in r["probs"].argmax(1)], dtype=object)
            )
            for j, c in enumerate(names):
                frame[f"{o.label}_prob_{c}"] = aligned(r, r["probs"][:, j])
    return frame.sort_values("case_id", kind="stable").reset_index(drop=True)


def write_predictions(table: pd.DataFrame, out_dir: Path) -> Path:
    """THE writer of predictions.csv (a run's test fold, a re-scored fold, an external cohort, predictions only)."""
    path = out_dir / "predictions.csv"
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return path


def _classification_outputs(
    objectives: Mapping[str, Any],
    rows: Mapping[str, dict[str, np.ndarray]],
    datamodule: Any,
    cfg: DictConfig,
    out_dir: Path,
    case_ids: list[str],
) -> None:
    """confusion_<objective>.png / .pdf and roc_pr_<objective>.png / .pdf per classification objective;
    slide_predictions.csv for slide-level ones."""
    slide_frames = []
    for name, objective in objectives.items():
        r = rows.get(name, {})
        if not isinstance(objective, ClassificationObjective) or not len(r.get("index", ())):
            continue
        classes = _class_names(datamodule, objective.label, r["probs"].shape[1])
        plot_confusion(
            confusion_matrix(r["probs"], r["label"]),
            classes,
            out_dir / f"confusion_{name}.png",
            title=f"{cfg.model.name} · {cfg.data.name} · fold {cfg.fold} · {name} (test)",
        )
        plot_roc_pr(
            r["probs"],
            r["label"],
            classes,
            out_dir / f"roc_pr_{name}.png",
            title=f"{cfg.model.name} · {cfg.data.name} · fold {cfg.fold} · {name} (test)",
        )
        if objective.level == "slide":
            patient, position = r["index"] // SLIDE_STRIDE, r["index"] % SLIDE_STRIDE
            slides = dict(
                zip(datamodule.cohort.table["case_id"], datamodule.cohort.table["slide_ids"], strict=True)
            )
            frame = pd.DataFrame(
                {
                    "case_id": [case_ids[i] for i in patient],
                    "objective": name,
                    "slide_id": [slides[case_ids[i]][j] for i, j in zip(patient, position, strict=True)],
                    "label": [classes[i] for i in r["label"]],
                    "pred": [classes[i] for i in r["probs"].argmax(1)],
                }
            )
            for j, c in enumerate(classes):
                frame[f"prob_{c}"] = r["probs"][:, j]
            slide_frames.append(frame)
    if slide_frames:
        with atomic_path(out_dir / "slide_predictions.csv") as tmp:
            pd.concat(slide_frames, ignore_index=True).to_csv(tmp, index=False)


def pn_rule_report(rule: Any, preds: pd.DataFrame, out_dir: Path) -> dict[str, Any]:
    """CAMELYON17's rule-based pN baseline beside the patient head (`pn_rule: {slide_objective, patient_label}`):
    pN from the test slides' PREDICTED stages (slide_predictions.csv of `slide_objective`) by the challenge's rule,
    scored against the true pN like the patient head's argmax -> pn_rule.csv and {"test/pn_rule/<metric>",
    "test/pn_head/<metric>"} (quadratic kappa: the challenge's metric)."""
    objective, label = str(rule["slide_objective"]), str(rule["patient_label"])
    path = out_dir / "slide_predictions.csv"
    if not path.is_file() or label not in preds.columns:
        raise ValueError(
            f"pn_rule: needs slide predictions of objective {objective!r} ({path}) and the patient label "
            f"{label!r} in predictions.csv (columns {list(preds.columns)}); check pn_rule.slide_objective / "
            f"pn_rule.patient_label"
        )
    slides = pd.read_csv(path, dtype={"case_id": str})
    slides = slides[slides["objective"] == objective]
    if slides.empty:
        raise ValueError(
            f"pn_rule: {path} has no rows of slide objective {objective!r}; set pn_rule.slide_objective"
        )
    table = pn_rule_table(slides, "pred").merge(
        preds[["case_id", label, f"{label}_pred"]].astype({"case_id": str}), on="case_id", how="inner"
    )
    table = table[table[label].notna()]
    with atomic_path(out_dir / "pn_rule.csv") as tmp:
        table.to_csv(tmp, index=False)
    out: dict[str, Any] = {}
    for who, column in (("pn_rule", "pn_rule"), ("pn_head", f"{label}_pred")):
        for k, v in pn_rule_metrics(table[column].tolist(), table[label].tolist()).items():
            out[f"test/{who}/{k}"] = v
    log.info(
        "pN stage (test, %d patients): rule on predicted slide stages kappa %.3f; patient head kappa %.3f",
        len(table),
        out["test/pn_rule/kappa"],
        out["test/pn_head/kappa"],
    )
    return out


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
