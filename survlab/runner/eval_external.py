"""THE external-validation path: a trained run's selected model scored on every patient of another cohort,
preprocessed with the run's saved FoldPreprocessing (nothing refitted, selected or tuned on it). `survlab eval
run=<run dir> data=<name>` calls `evaluate_external` (weights from the checkpoint), a training run's
`external_data=<name>` calls `run_external` (its current weights); both go through `score_external`.

    metrics = evaluate_external(cfg, ckpt, fitted, out, run_dir, "tcga_luad", [], "auto", "error", run_metrics)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from survlab.runner.conformal import conformal_options, external_conformal
from survlab.runner.eval_cohort import (
    _check_dims,
    _drop_stale_metrics,
    _files,
    external_datamodule,
    predict_rows,
    run_km_cutoffs,
    scored_targets,
    write_protocol_md,
)
from survlab.runner.eval_run import _check_out, _eval_cfg, _load_weights, _task, _trainer
from survlab.runner.modalities import model_cannot_take

log = logging.getLogger("survlab.runner.evaluate")  # one log channel for everything `survlab eval` does


def run_external(
    cfg: DictConfig, task: Any, datamodule: Any, out_dir: Path, ckpt: str | None, run_metrics: dict[str, Any]
) -> dict[str, Any]:
    """Test the task's current (selected) weights on `cfg.external_data` through the one evaluate path, into
    `out_dir/external/`; return the external metrics as `external/<metric>` keys for the internal metrics.json.
    `run_metrics`: the internal run's metrics (its training KM cutoffs, `val/best`, `epochs_trained`)."""
    name = str(cfg.external_data)
    metrics = score_external(
        cfg,
        task,
        datamodule.fitted,
        name,
        out_dir / "external",
        out_dir,
        str(ckpt),
        run_metrics,
        cfg.get("external_data_overrides"),
        outcomes="true",
        option="external_data",
        conformal=cfg.get("conformal"),
        internal=datamodule,
    )
    return {f"external/{k}": v for k, v in metrics.items() if k.startswith("test/") or k == "oracle_cindex"}


def evaluate_external(
    cfg: DictConfig,
    ckpt: str,
    fitted: Any,
    out: Path,
    run_dir: Path,
    name: str,
    overrides: list[str],
    outcomes: str,
    missing_genes: str,
    run_metrics: dict[str, Any],
    conformal: Any = None,
    keep: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`survlab eval run=<run dir> data=<name>`: the run's selected model (rebuilt from its checkpoint) on every
    patient of cohort `name`, preprocessed with the run's saved FoldPreprocessing (`score_external`)."""
    import lightning as L

    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    task = _task(cfg, fitted.dims, fitted)
    _load_weights(task, ckpt)
    return score_external(
        cfg,
        task,
        fitted,
        name,
        out,
        run_dir,
        ckpt,
        run_metrics,
        OmegaConf.from_dotlist(overrides),
        outcomes,
        missing_genes,
        conformal,
        keep=keep,
    )


def score_external(
    cfg: DictConfig,
    task: Any,
    fitted: Any,
    name: str,
    out: Path,
    run_dir: Path,
    ckpt: str,
    run_metrics: dict[str, Any],
    overrides: Any = None,
    outcomes: str = "auto",
    missing_genes: str = "error",
    conformal: Any = None,
    option: str = "data",
    internal: Any = None,
    keep: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """THE external-validation path (`survlab eval ... data=<name>` and a run's `external_data=<name>`): every
    patient of cohort `name`, preprocessed with the training fold's FoldPreprocessing `fitted` (nothing refitted,
    selected or tuned on it), scored by `task`'s current weights. `overrides`: keys of that cohort's data config (a
    mapping merged before it is resolved: survlab eval's data.* arguments, a run's external_data_overrides). Writes into `out`: predictions.csv, and with
    outcomes km.png / metrics.json (KM groups cut at the run's training cutoffs, `run_km_cutoffs`: every survival objective's);
    protocol.json (written once: the run's card plus who was trained on / evaluated on) and protocol.md. Returns the
    metrics (or the predictions-only summary). `keep`: a dict that receives the pass's test rows (`rows`: objective
    -> rows; None for predictions only), `task` and the scored cohort's `case_ids` (a fold ensemble averages them)."""
    import torch

    from survlab.data.external import setup_external
    from survlab.data.external_absence import dropped_card
    from survlab.report.groups import availability_card
    from survlab.report.outputs import write_run_outputs
    from survlab.report.predictions import write_predictions
    from survlab.runner.predict import attention_spec, run_test_pass
    from survlab.utils.outputs import write_json

    started = time.time()
    ext, node, with_outcomes = external_datamodule(
        cfg, name, overrides, tuple(fitted.modalities), outcomes, option
    )
    if ext.name == fitted.cohort:
        raise ValueError(
            f"{option}={name} is the run's own cohort {fitted.cohort}; omit data= to re-score its test fold, "
            f"or give another cohort (data.name=<other> for the same config on other files)"
            if option == "data"
            else f"{option}={name} is the training cohort itself; name another cohort"
        )
    _check_out(out, ext.root)
    setup_external(
        ext,
        fitted,
        with_outcomes,
        missing_genes,
        scored_on=scored_targets(task, fitted),
        cannot_take=model_cannot_take(cfg, fitted.absent_in_training, f"run={run_dir}"),
    )
    _check_dims(ext.dims, fitted.dims, f"{option}={ext.name} for the model of run={run_dir}")
    log.info(
        "external validation on %s (%d patients): the selected model, preprocessing of %s's training patients",
        ext.name,
        len(ext.datasets["test"]),
        fitted.cohort,
    )
    out.mkdir(parents=True, exist_ok=True)
    card: dict[str, Any] = {
        "evaluation": "external validation"
        if with_outcomes
        else "predictions only (the cohort has no outcomes)",
        "trained_on": {
            "cohort": fitted.cohort,
            "fold": fitted.fold,
            "split_hash": fitted.split_hash,
            "run_dir": str(run_dir),
            "checkpoint": ckpt,
            "model": str(cfg.model.name),
        },
        "evaluated_on": {
            "cohort": ext.name,
            "root": str(ext.root),
            "files": _files(ext),
            "n_patients": len(ext.datasets["test"]),
        },
        "preprocessing": f"{run_dir / 'preprocessing.json'} (fitted on the training patients of {fitted.cohort} "
        f"fold {fitted.fold}; nothing refitted on {ext.name})",
    }
    availability = availability_card(ext)
    if availability is not None:  # patients missing a modality: counted in the card (protocol.json / .md)
        card["availability"] = availability
    if dropped := dropped_card(
        ext, len(ext.full_cohort.case_ids)
    ):  # data.missing=drop: complete patients only
        card["dropped"] = dropped
    if not with_outcomes and conformal_options(conformal)[0]:
        raise ValueError(
            f"conformal.alphas: {option}={name} has no outcomes (the sets' coverage needs its labels); drop "
            f"conformal.alphas for predictions only"
        )
    if not with_outcomes:
        accel = str(cfg.trainer.get("accelerator", "cpu"))
        device = "cuda" if accel in ("gpu", "cuda", "auto") and torch.cuda.is_available() else "cpu"
        classes = {n: list(c) for n, c in fitted.classes.items()}
        preds = predict_rows(task, ext, classes, device)
        if keep is not None:
            keep.update(
                rows=None, task=task, case_ids=list(ext.full_cohort.case_ids), dropped=card.get("dropped")
            )
        _drop_stale_metrics(out)
        write_predictions(preds, out)
        write_json(out / "protocol.json", card)
        write_protocol_md(out / "protocol.md", card, None)
        print(
            f"\nsurvlab: PREDICTIONS ONLY for {ext.name} ({len(preds)} patients, no outcomes: no metrics) with the "
            f"model trained on {fitted.cohort} fold {fitted.fold}\noutputs: {out}\n"
        )
        return {"evaluation": card["evaluation"], "n_predicted": len(preds)}
    trainer = _trainer(cfg, out)
    eval_cfg = _eval_cfg(cfg, node)
    # the one prediction pass over the scored cohort; its KM groups are cut at the run's training cutoffs
    predictions = run_test_pass(
        task, trainer, dataloaders=ext.test_dataloader(), attention=attention_spec(eval_cfg, ext)
    )
    if keep is not None:
        keep.update(
            rows=predictions["test"].objectives,
            task=task,
            case_ids=list(ext.full_cohort.case_ids),
            availability=dict(getattr(ext, "availability", None) or {}),
            availability_card=availability,
            dropped=card.get("dropped"),
        )
    metrics = write_run_outputs(
        eval_cfg,
        out,
        task,
        ext,
        trainer,
        ckpt,
        wall_s=time.time() - started,
        km_cutoffs=run_km_cutoffs(run_metrics, task, f"{run_dir / 'metrics.json'}"),
        protocol_card=card,
        predictions=predictions,
    )
    metrics.update(external_conformal(cfg, conformal, task, ext, out, run_dir, internal, trainer))
    metrics.update(
        evaluation="external", trained_on=fitted.cohort, trained_fold=fitted.fold, run_dir=str(run_dir)
    )
    # facts of the model (its selection), not of this evaluation's trainer
    metrics.update({k: run_metrics[k] for k in ("val/best", "epochs_trained") if k in run_metrics})
    write_json(out / "metrics.json", metrics)
    write_protocol_md(out / "protocol.md", card, metrics)
    print(
        f"survlab: EXTERNAL validation on {ext.name} of the model trained on {fitted.cohort} fold {fitted.fold} "
        f"(nothing fitted or selected on {ext.name}): {out}\n"
    )
    return metrics
