"""Another cohort for scoring a trained run (`survlab eval ... data=<name>`, a run's `external_data=<name>`): its
data config resolved in the run's context, its un-set-up data module (with or without outcomes), the checks that it
fits the trained model (targets it must provide, input dims), predictions without outcomes, the run's KM cutoffs,
and the protocol card written beside the scores.

    node = external_data_config(cfg, "tcga_luad"); endpoints, labels = scored_targets(task, fitted)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from survlab.config.cohorts import external_data_config

log = logging.getLogger("survlab.runner.evaluate")  # one log channel for everything `survlab eval` does


def scored_targets(task: Any, fitted: Any) -> tuple[list[str], list[str]]:
    """(endpoints, patient labels) the task's objectives score: what another cohort must provide (primary first)."""
    from survlab.tasks.objective_classification import ClassificationObjective
    from survlab.tasks.objective_horizon import HorizonObjective
    from survlab.tasks.objective_survival import SurvivalObjective

    primary = fitted.primary_endpoint
    endpoints: list[str] = []
    labels: list[str] = []
    for o in task.objectives.values():
        if isinstance(o, SurvivalObjective | HorizonObjective):
            endpoints.append(str(o.endpoint or primary))
        elif isinstance(o, ClassificationObjective) and o.level == "patient":
            labels.append(str(o.label))
    ordered = sorted(set(endpoints), key=lambda e: (e != primary, list(fitted.endpoints).index(e)))
    return ordered, list(dict.fromkeys(labels))


def _has_outcomes(ext: Any) -> bool:
    """Whether the cohort's clinical CSV holds any outcome the model can be scored on (endpoint or label columns)."""
    header = set(pd.read_csv(ext.clinical_csv, nrows=0).columns)
    cols = [c for e in ext.endpoints for c in e.outcome_cols] + [sp.column for sp in ext.label_specs.values()]
    return any(c in header for c in cols)


NO_OUTCOMES: dict[str, Any] = {
    "time_col": None,
    "endpoints": None,
    "labels": None,
    "label_cols": [],
    "slide_labels": None,
    "weighted_sampling": False,
    "prompts": None,
}


def external_datamodule(
    cfg: DictConfig,
    name: str,
    overrides: Any,
    modalities: tuple[str, ...],
    outcomes: str,
    option: str = "data",
) -> tuple[Any, DictConfig, bool]:
    """-> (the un-set-up CohortDataModule of cohort `name` with `overrides` (a mapping of keys of its data config:
    survlab eval's data.* arguments, a run's external_data_overrides; None = none), its data config, whether it is
    scored with outcomes). `option`: how the user named the cohort (`data` of survlab eval, `external_data` of a
    run), for the messages."""
    from survlab.runner.build import instantiate_clean

    try:
        node = external_data_config(cfg, name, overrides)
    except ValueError as err:  # its message speaks of external_data=, the training-time option
        raise ValueError(str(err).replace(f"external_data={name}:", f"{option}={name}:", 1)) from None
    ext = instantiate_clean(node, modalities=modalities, _recursive_=False)
    ext.prepare_data()
    with_outcomes = outcomes == "true" or (outcomes == "auto" and _has_outcomes(ext))
    if not with_outcomes:
        blind = {k: v for k, v in NO_OUTCOMES.items() if k in node or k == "time_col"}
        node = cast(DictConfig, OmegaConf.merge(node, blind))
        node.splits = {**dict(node.get("splits") or {}), "stratify_label": None}
        ext = instantiate_clean(node, modalities=modalities, _recursive_=False)
    return ext, node, with_outcomes


def _check_dims(ext_dims: Any, model_dims: Any, where: str) -> None:
    """The scored cohort's inputs have the sizes the network was built for; one-line ValueError otherwise."""
    for field, what in (
        ("wsi_dim", "WSI feature dim (extract features with the training encoder)"),
        ("scale_dims", "per-scale feature dims (extract features with the training encoders)"),
        ("imaging", "CT/PET dims (same stack settings and table columns)"),
    ):
        got, want = getattr(ext_dims, field), getattr(model_dims, field)
        if want is not None and got != want:
            raise ValueError(f"{where}: {what}: {got} != {want} of the trained model")


def _files(ext: Any) -> dict[str, str]:
    """The scored cohort's files (for the protocol card)."""
    files = {"clinical_csv": str(ext.clinical_csv)}
    if ext.gen_cfg is not None and "genomics" in ext.modalities:
        files["expression"] = str(Path(ext.root) / ext.gen_cfg["expression"])
    if ext.wsi_cfg is not None and {"wsi", "scales"} & set(ext.modalities):
        files["features_dir"] = str(Path(ext.root) / ext.wsi_cfg["features_dir"])
    if ext.imaging_cfg is not None and "ct" in ext.modalities:
        files["imaging"] = str(ext.root)
    return files


def predict_rows(task: Any, ext: Any, classes: dict[str, list[str]], device: str) -> pd.DataFrame:
    """Predictions [one row per patient, sorted by case_id] of the task's network on every patient of `ext` (a cohort
    without outcomes): the one pass (survlab.runner.predict, `outcomes=False`) through the one predictions table
    (survlab.report.predictions.predictions_table): risk, hazard_k / surv_k, `<objective>_risk` (secondary endpoints),
    `<objective>_p_<h>` (horizons), `<label>_pred` / `<label>_prob_<c>`."""
    from survlab.report.predictions import predictions_table
    from survlab.runner.predict import predict

    rows = predict(task.to(device), [ext.test_dataloader()], outcomes=False)
    return predictions_table(task.objectives, rows.objectives, ext, outcomes=False, classes=classes)


def run_km_cutoffs(run_metrics: dict[str, Any], task: Any, where: str) -> dict[str, np.ndarray]:
    """The KM risk-group cutoffs the run fitted on its training patients, per survival objective (its metrics'
    `km_cutoffs_by_objective`; runs written before it: `km_cutoffs`, the primary objective's only), so another cohort
    is cut exactly as the internal test fold was; {} (the scored cohort's own median / tertiles, with a warning
    naming `where`) for runs written before the cutoffs were recorded. A survival objective without recorded
    cutoffs is cut at the scored cohort's own quantiles, with a warning naming it."""
    from survlab.report.predictions import _primary_survival
    from survlab.tasks.objective_survival import SurvivalObjective

    survival = _primary_survival(task.objectives)
    if survival is None:
        return {}
    by_objective = run_metrics.get("km_cutoffs_by_objective") or {}
    cuts = run_metrics.get("km_cutoffs")
    out = {str(n): np.asarray(c, dtype=float) for n, c in by_objective.items() if n in task.objectives}
    if survival not in out and cuts:
        out[survival] = np.asarray(cuts, dtype=float)
    if not out:
        log.warning(
            "%s records no km_cutoffs (an older run): KM groups cut at the scored cohort's own %s",
            where,
            "risk quantiles",
        )
        return {}
    missing = [n for n, o in task.objectives.items() if isinstance(o, SurvivalObjective) and n not in out]
    if missing:
        log.warning(
            "%s records no KM cutoffs of %s (an older run): their KM groups / HR are cut at the scored cohort's own "
            "risk quantiles",
            where,
            ", ".join(missing),
        )
    return out


def _drop_stale_metrics(out: Path) -> None:
    """Before writing predictions only into `out`: remove the metrics.json / km.png of an earlier survlab evaluation
    there (recognised by its protocol.json), so no stale metrics sit beside outcome-free predictions."""
    try:
        earlier = json.loads((out / "protocol.json").read_text())
    except (OSError, ValueError):
        return
    if isinstance(earlier, dict) and "trained_on" in earlier and "evaluated_on" in earlier:
        for name in ("metrics.json", "km.png"):
            (out / name).unlink(missing_ok=True)


def write_protocol_md(path: Path, card: dict[str, Any], metrics: dict[str, Any] | None) -> None:
    """A short human-readable protocol card naming both cohorts (and the patients per availability pattern when
    the scored cohort lacks a modality for some)."""
    from survlab.data.external_absence import dropped_sentence
    from survlab.report.groups import availability_sentence

    t, e = card["trained_on"], card["evaluated_on"]
    lines = [
        f"# {card['evaluation']}",
        "",
        f"- trained on: **{t['cohort']}** fold {t['fold']} (split {str(t['split_hash'])[:12]}), model "
        f"{t['model']}, run `{t['run_dir']}`, checkpoint `{t['checkpoint']}`",
        f"- evaluated on: **{e['cohort']}** ({e['n_patients']} patients), files:",
        *[f"  - {k}: `{v}`" for k, v in e["files"].items()],
        f"- preprocessing: {card['preprocessing']}",
        *([f"- {availability_sentence(card['availability'])}"] if card.get("availability") else []),
        *([f"- {dropped_sentence(card['dropped'])}"] if card.get("dropped") else []),
        "",
    ]
    if metrics:
        lines += [
            "| metric | value |",
            "|---|---|",
            *[
                f"| {k} | {v:.4f} |"
                for k, v in metrics.items()
                if k.startswith("test/") and k.count("/") == 1 and isinstance(v, float)
            ],
        ]
    else:
        lines += ["No outcomes: predictions only (predictions.csv), no metrics."]
    path.write_text("\n".join(lines) + "\n")
