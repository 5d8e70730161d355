"""A run's classification outputs: per-objective confusion matrix, ROC / PR figures and their tables, and the
rule-based pN stage report (`pn_rule_report`, experiment=hmf_camelyon17).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from survlab.metrics.classification import confusion_matrix
from survlab.metrics.pn_stage import pn_rule_metrics, pn_rule_table
from survlab.report.figures import plot_confusion, plot_roc_pr
from survlab.report.predictions import _class_names
from survlab.tasks.objective_base import SLIDE_STRIDE
from survlab.tasks.objective_classification import ClassificationObjective
from survlab.utils.files import atomic_path

log = logging.getLogger("survlab.run")


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
