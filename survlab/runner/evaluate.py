"""Apply a trained run's selected model to a cohort: its own test fold again, or every patient of another cohort
(external validation), or — for a cohort without outcomes — predictions only. Nothing is fitted, selected or tuned
on the scored patients: the preprocessing is the run's `preprocessing.json` (fitted on its training patients).

    survlab eval run=<run dir>                                   # the run's own test fold, again
    survlab eval run=<run dir> data=<cohort> [out=<dir>]         # external validation
    survlab eval run=<run dir> data=<cohort> data.root=/data/x outcomes=false missing_genes=mean
    survlab eval run=<sweep dir or its <model>/<cohort> dir> data=<cohort>   # every fold + their ensemble

(`survlab eval ...` is the same command.) A training run's `external_data=<cohort>` is a call of the same path
(`run_external` -> `score_external`), written to `<run dir>/external/`: the same files and protocol card.

Outputs go to `out` (default `<run dir>/eval/<cohort>/`, never into the cohort's folder): predictions.csv, and with
outcomes metrics.json, km.png, protocol.json / protocol.md naming both the training and the scored cohort.

With a sweep dir (`run=` holds the finished fold jobs of one model × cohort, found as the sweep summary finds them),
every fold is scored as `run=<fold dir>` would be (its own preprocessing; `<fold dir>/eval/<cohort>/`), then their
ensemble (mean risk / mean class probabilities; survlab.report.ensemble) into `out` (default
`<run>/external/<cohort>/ensemble/`): metrics.json with each fold's metrics, their mean ± sd and the ensemble's.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from survlab.config.cohorts import compose_data_config
from survlab.runner.conformal import conformal_options, external_conformal, parse_cli, run_conformal
from survlab.utils.files import read_json

log = logging.getLogger("survlab.runner.evaluate")

OPTIONS = ("run", "data", "out", "outcomes", "missing_genes")
USAGE = (
    "usage: survlab eval run=<run dir | sweep dir> [data=<cohort>] [out=<dir>] [outcomes=auto|true|false] "
    "[missing_genes=error|mean] [conformal.alphas=[0.1,0.2] conformal.mondrian=true] [data.<key>=<value> ...]"
)


# ---------------------------------------------------------------------------------------------------- arguments
def parse_args(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """`key=value` arguments -> ({option: value}, [data.* overrides]); one-line ValueError for anything else."""
    options: dict[str, str] = {"outcomes": "auto", "missing_genes": "error"}
    overrides: list[str] = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ValueError(f"argument {arg!r} is not key=value; {USAGE}")
        if key.startswith("data."):
            overrides.append(f"{key[len('data.') :]}={value}")
        elif key in OPTIONS or key.startswith("conformal."):  # conformal.*: survlab.runner.conformal
            options[key] = value
        else:
            raise ValueError(f"unknown argument {key!r}; {USAGE}")
    if "run" not in options:
        raise ValueError(f"run=<run dir> is required; {USAGE}")
    if options["outcomes"] not in ("auto", "true", "false"):
        raise ValueError(f"outcomes={options['outcomes']}: use auto, true or false")
    if options["missing_genes"] not in ("error", "mean"):
        raise ValueError(f"missing_genes={options['missing_genes']}: use error (default) or mean")
    return options, overrides


# ---------------------------------------------------------------------------------------------------- the run
def load_run(run_dir: Path) -> tuple[DictConfig, str, Any, dict[str, Any]]:
    """-> (resolved config, selected checkpoint, its FoldPreprocessing (preprocessing.json), run metrics) of a
    finished run dir."""
    from survlab.config.check import moved_targets
    from survlab.data.fitted import FILENAME, read_preprocessing

    if not run_dir.is_dir():
        raise ValueError(f"run={run_dir}: no such directory; pass the output dir of a finished survlab run")
    protocol_path, metrics_path = run_dir / "protocol.json", run_dir / "metrics.json"
    for path in (protocol_path, metrics_path):
        if not path.is_file():
            raise ValueError(f"run={run_dir}: no {path.name}; the run did not finish (see its FAILED / log)")
    protocol, metrics = read_json(protocol_path), read_json(metrics_path)
    cfg = OmegaConf.create(protocol["config"])
    moved_targets(cfg)  # a run written before the folders became the layers names classes by their old paths
    ckpt = metrics.get("checkpoint") or protocol.get("selected_checkpoint")
    if not ckpt:
        raise ValueError(f"run={run_dir}: metrics.json names no selected checkpoint")
    path = Path(ckpt)
    if not path.is_file():  # the run dir was moved: the checkpoint travels with it
        moved = run_dir / "checkpoints" / path.name
        if not moved.is_file():
            raise ValueError(f"run={run_dir}: selected checkpoint {ckpt} not found (nor {moved}); restore it")
        path = moved
    return cfg, str(path), read_preprocessing(run_dir / FILENAME), metrics


def _trainer(cfg: DictConfig, out: Path) -> Any:
    """A test-only Lightning Trainer with the run's accelerator and precision (one device, no loggers)."""
    import hydra

    node = cast(dict[str, Any], OmegaConf.to_container(cfg.trainer, resolve=True))
    if "ddp" in str(node.get("strategy", "")):
        node.pop("strategy")
    node.update(
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=str(out),
        callbacks=[],
    )
    return hydra.utils.instantiate(node)


def _task(cfg: DictConfig, dims: Any, fitted: Any) -> Any:
    """The run's OutcomeTask around a freshly built network (weights come from the checkpoint), with its training
    references (bins, training outcomes, a saved Cox Breslow baseline) from the FoldPreprocessing `fitted`."""
    from survlab.runner.build import build_task, instantiate_clean

    net = instantiate_clean(cfg.model.net, _partial_=True)(dims=dims)
    task = build_task(cfg, net)
    task.fit_references(fitted)
    return task


def _load_weights(task: Any, ckpt: str) -> None:
    """The checkpoint's weights (and its training references) into `task`, as Lightning's `ckpt_path` would."""
    import torch

    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    task.on_load_checkpoint(checkpoint)
    task.load_state_dict(checkpoint["state_dict"])


def _check_out(out: Path, root: Path) -> None:
    """Outputs never go into a cohort's folder (user data is read-only)."""
    if out.resolve().is_relative_to(Path(root).resolve()):
        raise ValueError(f"out={out} lies inside the cohort folder {root}; write the outputs elsewhere")


def _eval_cfg(cfg: DictConfig, data: DictConfig | None = None) -> DictConfig:
    """The run's config for writing outputs: another cohort's data node, no attention export."""
    out = cast(DictConfig, OmegaConf.create(OmegaConf.to_container(cfg, resolve=True)))
    if data is not None:
        out.data = data
    out.export_attention = False
    return out


def _with_overrides(node: DictConfig, overrides: list[str]) -> DictConfig:
    return cast(DictConfig, OmegaConf.merge(node, OmegaConf.from_dotlist(overrides))) if overrides else node


# ---------------------------------------------------------------------------------------------------- another cohort: config, targets, external_data=
def _data_dirs() -> list[Path]:
    from survlab.config.search_path import group_dirs

    return group_dirs("data")


def external_data_config(cfg: DictConfig, name: str) -> DictConfig:
    """conf/data/<name>.yaml (composed by Hydra with its defaults parents), resolved in the context of the run's
    config (paths, fold, seed); one-line ValueError for an unknown name."""
    found = [d / f"{name}.yaml" for d in _data_dirs() if (d / f"{name}.yaml").is_file()]
    if not found:
        names = sorted({p.stem for d in _data_dirs() for p in d.glob("*.yaml") if not p.stem.startswith("_")})
        raise ValueError(f"external_data={name}: no conf/data/{name}.yaml; available: {', '.join(names)}")
    context = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    context.data = OmegaConf.to_container(compose_data_config(name), resolve=False)
    resolved = OmegaConf.create(OmegaConf.to_container(context.data, resolve=True))
    assert isinstance(resolved, DictConfig)
    return resolved


def scored_targets(task: Any, fitted: Any) -> tuple[list[str], list[str]]:
    """(endpoints, patient labels) the task's objectives score: what another cohort must provide (primary first)."""
    from survlab.tasks.objectives import ClassificationObjective, HorizonObjective, SurvivalObjective

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
        outcomes="true",
        option="external_data",
        conformal=cfg.get("conformal"),
        internal=datamodule,
    )
    return {f"external/{k}": v for k, v in metrics.items() if k.startswith("test/") or k == "oracle_cindex"}


# ---------------------------------------------------------------------------------------------------- own test fold
def _compare_state(state: dict[str, Any], now: Any, where: str) -> None:
    """The preprocessing `now` (a FoldPreprocessing) refitted on the run's training patients must equal the saved
    `state`: the cohort files or split changed since training otherwise (one-line ValueError naming what differs)."""
    keys = now.changed_keys(state)
    if keys:
        raise ValueError(
            f"{where}: the cohort's files or split changed since the run ({', '.join(keys)} differ from "
            f"preprocessing.json); restore them, or score the new files as another cohort (data.name=<new name>)"
        )


def evaluate_own_fold(
    cfg: DictConfig, ckpt: str, fitted: Any, out: Path, run_dir: Path, overrides: list[str]
) -> dict[str, Any]:
    """The run's own test fold, preprocessed exactly as in the run: reproduces its test metrics and predictions."""
    import lightning as L

    from survlab.report.outputs import write_run_outputs
    from survlab.runner.build import build_datamodule
    from survlab.runner.predict import attention_spec, run_test_pass

    started = time.time()
    cfg.data = _with_overrides(cfg.data, overrides)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    dm = build_datamodule(cfg)  # table networks read what the cohort has, as in the run
    dm.prepare_data()
    dm.setup("test")
    _check_out(out, dm.root)
    _compare_state(fitted.to_json(), dm.fitted, f"run={run_dir} data={dm.name} fold {dm.fold}")
    task = _task(cfg, dm.dims, dm.fitted)
    _load_weights(task, ckpt)
    out.mkdir(parents=True, exist_ok=True)
    trainer = _trainer(cfg, out)
    eval_cfg = _eval_cfg(cfg)
    # the one prediction pass: the test rows, and the training patients' rows (Cox baseline, KM cutoffs)
    predictions = run_test_pass(task, trainer, datamodule=dm, attention=attention_spec(eval_cfg, dm))
    metrics = write_run_outputs(
        eval_cfg, out, task, dm, trainer, ckpt, wall_s=time.time() - started, predictions=predictions
    )
    metrics.update(run_conformal(cfg, task, dm, out, trainer))  # cfg.conformal: set by evaluate() from argv
    metrics.update(evaluation="internal test fold (re-scored)", run_dir=str(run_dir))
    return metrics


# ---------------------------------------------------------------------------------------------------- another cohort
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
    overrides: list[str],
    modalities: tuple[str, ...],
    outcomes: str,
    option: str = "data",
) -> tuple[Any, DictConfig, bool]:
    """-> (the un-set-up CohortDataModule of cohort `name` with `overrides`, its data config, whether it is scored
    with outcomes). `option`: how the user named the cohort (`data` of survlab eval, `external_data` of a run)."""
    from survlab.runner.build import instantiate_clean

    try:
        node = _with_overrides(external_data_config(cfg, name), overrides)
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
    (survlab.report.outputs.predictions_table): risk, hazard_k / surv_k, `<objective>_risk` (secondary endpoints),
    `<objective>_p_<h>` (horizons), `<label>_pred` / `<label>_prob_<c>`."""
    from survlab.report.outputs import predictions_table
    from survlab.runner.predict import predict

    rows = predict(task.to(device), [ext.test_dataloader()], outcomes=False)
    return predictions_table(task.objectives, rows.objectives, ext, outcomes=False, classes=classes)


def run_km_cutoffs(run_metrics: dict[str, Any], task: Any, where: str) -> dict[str, np.ndarray]:
    """The KM risk-group cutoffs the run fitted on its training patients (its metrics' `km_cutoffs`), keyed by the
    primary survival objective, so another cohort is cut exactly as the internal test fold was; {} (the scored
    cohort's own median / tertiles, with a warning naming `where`) for runs written before the cutoffs were
    recorded."""
    from survlab.report.outputs import _primary_survival

    survival = _primary_survival(task)
    cuts = run_metrics.get("km_cutoffs")
    if survival is None:
        return {}
    if not cuts:
        log.warning(
            "%s records no km_cutoffs (an older run): KM groups cut at the scored cohort's own %s",
            where,
            "risk quantiles",
        )
        return {}
    return {survival: np.asarray(cuts, dtype=float)}


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
        overrides,
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
    overrides: list[str] = (),  # type: ignore[assignment]
    outcomes: str = "auto",
    missing_genes: str = "error",
    conformal: Any = None,
    option: str = "data",
    internal: Any = None,
    keep: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """THE external-validation path (`survlab eval ... data=<name>` and a run's `external_data=<name>`): every
    patient of cohort `name`, preprocessed with the training fold's FoldPreprocessing `fitted` (nothing refitted,
    selected or tuned on it), scored by `task`'s current weights. Writes into `out`: predictions.csv, and with
    outcomes km.png / metrics.json (KM groups cut at the run's training cutoffs, `run_metrics["km_cutoffs"]`);
    protocol.json (written once: the run's card plus who was trained on / evaluated on) and protocol.md. Returns the
    metrics (or the predictions-only summary). `keep`: a dict that receives the pass's test rows (`rows`: objective
    -> rows; None for predictions only), `task` and the scored cohort's `case_ids` (a fold ensemble averages them)."""
    import torch

    from survlab.data.external import setup_external
    from survlab.report.groups import availability_card
    from survlab.report.outputs import write_predictions, write_run_outputs
    from survlab.runner.predict import attention_spec, run_test_pass
    from survlab.utils.outputs import write_json

    started = time.time()
    ext, node, with_outcomes = external_datamodule(
        cfg, name, list(overrides), tuple(fitted.modalities), outcomes, option
    )
    if ext.name == fitted.cohort:
        raise ValueError(
            f"{option}={name} is the run's own cohort {fitted.cohort}; omit data= to re-score its test fold, "
            f"or give another cohort (data.name=<other> for the same config on other files)"
            if option == "data"
            else f"{option}={name} is the training cohort itself; name another cohort"
        )
    _check_out(out, ext.root)
    setup_external(ext, fitted, with_outcomes, missing_genes, scored_on=scored_targets(task, fitted))
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
            keep.update(rows=None, task=task, case_ids=list(ext.full_cohort.case_ids))
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


# ---------------------------------------------------------------------------------------------------- fold ensembles
def fold_runs(run_dir: Path) -> list[Path] | None:
    """The finished fold jobs of ONE model × cohort under `run_dir` (a sweep dir or its `<model>/<cohort>` dir), found
    by the sweep summary's job discovery (survlab.report.sweep.collect_jobs); None when `run_dir` holds no job dir.
    A job without DONE or without preprocessing.json is skipped with a warning naming it; one-line ValueError for
    fold jobs of several model × cohort groups or fewer than two usable folds."""
    from survlab.data.fitted import FILENAME
    from survlab.report.sweep import collect_jobs

    jobs = collect_jobs(run_dir)
    if jobs.empty:
        return None
    usable: list[tuple[str, str, Path]] = []
    for model, cohort, status, d in zip(
        jobs["model"], jobs["cohort"], jobs["status"], jobs["dir"], strict=True
    ):
        if status != "done":
            log.warning("run=%s: fold job %s skipped: %s (no DONE marker)", run_dir, d, status)
        elif not (Path(d) / FILENAME).is_file():
            log.warning("run=%s: fold job %s skipped: no %s (retrain it to score it)", run_dir, d, FILENAME)
        else:
            usable.append((str(model), str(cohort), Path(d)))
    groups = sorted({(m, c) for m, c, _ in usable})
    if len(groups) > 1:
        m, c = groups[0]
        where = os.path.commonpath([str(d) for mm, cc, d in usable if (mm, cc) == (m, c)])
        raise ValueError(
            f"run={run_dir} holds fold jobs of {len(groups)} model x cohort groups "
            f"({', '.join(f'{mm}/{cc}' for mm, cc in groups)}); a fold ensemble is one model x cohort: narrow run= "
            f"to one group's dir, e.g. run={where}"
        )
    if len(usable) < 2:
        raise ValueError(
            f"run={run_dir}: {len(usable)} finished fold job(s) with {FILENAME} (see the warnings); a fold ensemble "
            f"needs two or more" + (f": pass run={usable[0][2]} to score that one alone" if usable else "")
        )
    return [d for _, _, d in usable]


def evaluate_ensemble(
    run_dir: Path, folds: list[Path], options: dict[str, str], overrides: list[str], conformal: Any
) -> dict[str, Any]:
    """`survlab eval run=<sweep dir> data=<cohort>`: every fold run of `folds` scored on the cohort exactly as
    `survlab eval run=<fold dir> data=<cohort>` (its own preprocessing.json; outputs in `<fold dir>/eval/<cohort>/`),
    then their ensemble (survlab.report.ensemble: mean risk / mean class probabilities per patient), scored by the
    folds' own objectives (`Objective.score`, as every run's test metrics) -> `out` (default
    `<run_dir>/external/<cohort>/ensemble/`): metrics.json (the ensemble's `test/<metric>`, each fold's metrics,
    their mean and sd over the folds), predictions.csv (a fold's columns, averaged), protocol.json / .md."""
    from survlab.report.ensemble import RISK_AVERAGING, average_predictions, average_rows, fold_summary
    from survlab.report.groups import group_report
    from survlab.report.outputs import write_predictions
    from survlab.utils.outputs import write_json

    name = options.get("data")
    if not name:
        raise ValueError(
            f"run={run_dir} is a sweep: a fold ensemble scores another cohort; add data=<cohort>"
        )
    scored = next((o.split("=", 1)[1] for o in reversed(overrides) if o.startswith("name=")), name)
    out = Path(os.path.expanduser(options.get("out") or run_dir / "external" / scored / "ensemble")).resolve()
    per_fold: dict[str, dict[str, float]] = {}
    kept: list[dict[str, Any]] = []
    tables: list[pd.DataFrame] = []
    used: list[dict[str, Any]] = []
    for d in folds:
        cfg, ckpt, fitted, run_metrics = load_run(d)
        cfg.conformal = conformal
        keep: dict[str, Any] = {}
        fold_out = d / "eval" / scored
        log.info("fold ensemble: scoring %s on %s", d, scored)
        metrics = evaluate_external(
            cfg,
            ckpt,
            fitted,
            fold_out,
            d,
            name,
            overrides,
            options["outcomes"],
            options["missing_genes"],
            run_metrics,
            conformal=conformal,
            keep=keep,
        )
        label = str(d.relative_to(run_dir))
        per_fold[label] = {
            k: float(v)
            for k, v in metrics.items()
            if k.startswith("test/") and isinstance(v, int | float) and not isinstance(v, bool)
        }
        kept.append(keep)
        tables.append(pd.read_csv(fold_out / "predictions.csv", dtype={"case_id": str}))
        used.append(
            {
                "run_dir": str(d),
                "model": str(cfg.model.name),
                "cohort": fitted.cohort,
                "fold": fitted.fold,
                "seed": int(cfg.seed),
                "split_hash": fitted.split_hash,
                "checkpoint": ckpt,
                "outputs": str(fold_out),
            }
        )
    where = f"run={run_dir} data={scored} (fold ensemble)"
    card: dict[str, Any] = {
        "evaluation": "fold ensemble, external validation"
        if kept[0]["rows"] is not None
        else "fold ensemble, predictions only (the cohort has no outcomes)",
        "model": used[0]["model"],
        "trained_on": used[0]["cohort"],
        "evaluated_on": scored,
        "n_folds": len(folds),
        "averaging": RISK_AVERAGING,
        "preprocessing": "each fold's own preprocessing.json (fitted on its training patients), as its single-fold "
        "evaluation",
        "fold_runs": used,
    }
    if kept[0].get("availability_card"):  # the scored cohort lacks a modality for some patients
        card["availability"] = kept[0]["availability_card"]
    out.mkdir(parents=True, exist_ok=True)
    preds = average_predictions(tables, where)
    write_predictions(preds, out)
    write_json(out / "protocol.json", card)
    result: dict[str, Any] = {"evaluation": card["evaluation"], "model": card["model"], "cohort": scored}
    if kept[0]["rows"] is not None:
        task = kept[0]["task"]
        rows = {
            obj: average_rows(
                [k["rows"][obj] for k in kept], [k["case_ids"] for k in kept], f"{where}, objective {obj}"
            )
            if len(kept[0]["rows"][obj].get("index", ()))
            else {}
            for obj in task.objectives
        }
        for objective in task.objectives.values():  # fold 0's Cox baseline does not belong to the mean risk
            if hasattr(objective, "train_risk"):
                objective.train_risk = None
        ensemble = task.score_rows(rows)  # the folds' own metric code (Objective.score), on the averaged rows
        notes = task.metric_notes(rows, ensemble)
        fold_mean, fold_sd = fold_summary(per_fold)
        # per availability pattern (the cohort lacks a modality for some patients): the same group metric as a run's
        availability = group_report(
            task.objectives, rows, kept[0]["case_ids"], kept[0].get("availability") or {}
        )
        result.update(
            {
                "trained_on": card["trained_on"],
                "n_folds": len(folds),
                **{f"test/{k}": float(v) for k, v in ensemble.items()},
                **{f"test/{k}_note": v for k, v in notes.items()},
                "n_test": int(len(preds)),
                "folds": per_fold,
                "folds_mean": fold_mean,
                "folds_sd": fold_sd,
                "fold_runs": [u["run_dir"] for u in used],
                **({"availability": availability} if availability else {}),
            }
        )
        write_json(out / "metrics.json", result)
    else:
        result["n_predicted"] = int(len(preds))
    _ensemble_md(out / "protocol.md", card, result)
    print(f"survlab: FOLD ENSEMBLE of {len(folds)} {card['model']} models on {scored}: {out}\n")
    return result


def _ensemble_md(path: Path, card: dict[str, Any], metrics: dict[str, Any]) -> None:
    """The fold ensemble's protocol card: the fold runs used, how they are averaged, per-fold and ensemble metrics."""
    from survlab.report.groups import availability_sentence

    lines = [
        f"# {card['evaluation']}",
        "",
        f"- model **{card['model']}** trained on **{card['trained_on']}**, {card['n_folds']} fold runs, evaluated "
        f"on **{card['evaluated_on']}**",
        *[
            f"  - fold {u['fold']} (split {str(u['split_hash'])[:12]}): `{u['run_dir']}`"
            for u in card["fold_runs"]
        ],
        f"- preprocessing: {card['preprocessing']}",
        f"- ensemble: {card['averaging']}",
        *([f"- {availability_sentence(card['availability'])}"] if card.get("availability") else []),
        "",
    ]
    folds = metrics.get("folds")
    if folds:
        keys = [
            k
            for k in metrics
            if k.startswith("test/") and k.count("/") == 1 and isinstance(metrics[k], float)
        ]
        lines += [
            "| metric | ensemble | folds mean ± sd |",
            "|---|---|---|",
            *[
                f"| {k} | {metrics[k]:.4f} | {metrics['folds_mean'].get(k, float('nan')):.4f} ± "
                f"{metrics['folds_sd'].get(k, float('nan')):.4f} |"
                for k in keys
            ],
        ]
    else:
        lines += ["No outcomes: predictions only (predictions.csv), no metrics."]
    path.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------------- entry
def evaluate(argv: list[str]) -> dict[str, Any]:
    """Parse `argv`, score, write outputs; -> the metrics (or the predictions-only summary)."""
    from survlab.utils.malloc import reuse_from_env
    from survlab.utils.outputs import write_json

    reuse_from_env()  # as survlab.run: reuse freed batch buffers (SURVLAB_MALLOC_REUSE=0: off)
    options, overrides = parse_args(argv)
    run_dir = Path(os.path.expanduser(options["run"])).resolve()
    if run_dir.is_dir() and not (run_dir / "protocol.json").is_file():  # a sweep dir: the fold ensemble
        folds = fold_runs(run_dir)
        if folds is not None:
            conformal = parse_cli([f"{k}={v}" for k, v in options.items() if k.startswith("conformal.")])
            return evaluate_ensemble(run_dir, folds, options, overrides, conformal)
    cfg, ckpt, fitted, run_metrics = load_run(run_dir)
    cfg.conformal = parse_cli([f"{k}={v}" for k, v in options.items() if k.startswith("conformal.")])
    name = options.get("data") or str(cfg.data.name)
    own = name == str(cfg.data.name) and not any(o.startswith("name=") for o in overrides)
    if own and options["outcomes"] == "false":
        raise ValueError("outcomes=false applies to another cohort; the run's own test fold has outcomes")
    scored = next((o.split("=", 1)[1] for o in reversed(overrides) if o.startswith("name=")), name)
    out = Path(os.path.expanduser(options.get("out") or run_dir / "eval" / scored)).resolve()
    if not own:  # writes its own metrics.json
        return evaluate_external(
            cfg,
            ckpt,
            fitted,
            out,
            run_dir,
            name,
            overrides,
            options["outcomes"],
            options["missing_genes"],
            run_metrics,
            conformal=cfg.conformal,
        )
    metrics = evaluate_own_fold(cfg, ckpt, fitted, out, run_dir, overrides)
    # facts of the model (its selection), not of this evaluation's trainer
    metrics.update({k: run_metrics[k] for k in ("val/best", "epochs_trained") if k in run_metrics})
    write_json(out / "metrics.json", metrics)
    return metrics
