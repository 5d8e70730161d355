"""The PathGen pipeline for one fold: generator → grader (+ WSI-only) → conformal, each stage in its own subdir.

    python -m survlab.run experiment=pathgen_pipeline_synthetic            # one fold, all stages
    python -m survlab.run -m experiment=pathgen_pipeline_tcga_kirc fold=0,1,2,3,4

Stages (`pipeline.stages`, in this order; a stage reads only what earlier stages wrote):
1. `generator/`: PathGen DDPM (`pipeline.generator.model`, e.g. conf/model/pathgen.yaml) trained on the fold's
   TRAINING patients' real expression groups, min-max scaled to [-1, 1] by a scaler fitted on them
   (`scaler.json`); inner-validation loss picks the checkpoint. Writes `expression.csv` (synthetic expression of
   every patient of the fold — train, val, calibration, test — in the real table's format and units),
   `parts.csv` (case_id, part) and `generation.json` (per-family and overall Spearman / MAE on the TEST patients
   beside the training-mean reference, and the synthetic cohort's ceiling when known).
2. `grader/`: MCAT_GR (the run's `model`) trained on REAL genomics like any survlab run (its run outputs are in the
   stage dir), then evaluated on calibration + test patients with `genomics_source` real and synthetic (the
   synthetic values go through the scaler fitted on the real training expression: `data.genomics.values_from`) →
   `eval_predictions.csv` (rows of the one prediction pass, survlab.runner.predict); per-patch grade + risk of the
   test patients (`patch_predictions_<source>.csv`).
   `wsi_only/`: the WSI-only comparator (`pipeline.wsi_only.model`), same objectives, same outputs.
3. `conformal/`: split-conformal sets for grade and survival bin per (model, source), calibrated on the calibration
   patients of the SAME source as the test patients → conformal.json / .csv / conformal_sets.csv / conformal.png,
   computed and written by the shared conformal code of every run (survlab.report.conformal: q̂, sets, coverage,
   subgroup tables, the survival-bin censoring rule; its module doc gives the layout).
The job dir gets `comparison.csv` / `.md` (C-index, grade metrics per model × genomics source: the paper's table)
and metrics.json (the grader's real-genomics test metrics plus `test/<setting>/...` of every setting).

Every stage builds its data module, network, task and trainer through the one build path (survlab.runner.build).

Skipping and re-running: every stage dir holds `stage.json` (the stage's identity: the settings it depends on and the
identities of the stages it reads) and `DONE`. A stage whose DONE and identity match is skipped (a crashed job
re-runs from the stage that failed). `pipeline.rerun=[conformal]` (not part of the job's identity) re-runs the named
stages and everything after them: `python -m survlab.run experiment=... hydra.run.dir=<job dir>
pipeline.rerun=[conformal] skip_completed=false`.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from survlab.data.modalities.genomics import GeneScaler
from survlab.metrics.classification import classification_metrics
from survlab.metrics.conformal import calibrate_and_predict
from survlab.metrics.generation import generation_metrics
from survlab.metrics.survival import harrell_cindex
from survlab.report.conformal import (
    ConformalTarget,
    conformal_cell,
    probs_and_labels,
    sets_frame,
    write_conformal_files,
)
from survlab.report.figures import plot_coverage
from survlab.runner.build import build_datamodule, build_net, build_task, build_trainer
from survlab.runner.pipelines.patch_inference import patch_predictions
from survlab.runner.predict import predict
from survlab.tasks.objectives import ClassificationObjective, SurvivalObjective
from survlab.utils import job_identity, jobs
from survlab.utils.files import atomic_path
from survlab.utils.outputs import write_json

log = logging.getLogger("survlab.pipeline")

STAGES = ("generator", "grader", "wsi_only", "conformal")
STAGE_FILE = "stage.json"
Train = Callable[[DictConfig, Path], dict[str, Any]]


# ----------------------------------------------------------------------------------------------------- stage plumbing
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


# ----------------------------------------------------------------------------------------------------- stage 1
def _generator_config(cfg: DictConfig, stage_dir: Path) -> DictConfig:
    """The generator stage as a job config of its own (`pipeline.generator.model` / `max_epochs`, the job's data and
    trainer), for the one build path: its checkpoint is selected on the inner-validation loss (`best.ckpt`)."""
    g = cfg.pipeline.generator
    trainer = cast(dict[str, Any], OmegaConf.to_container(cfg.trainer, resolve=True))
    trainer.update(
        max_epochs=int(g.max_epochs),
        accumulate_grad_batches=int(g.get("accumulate_grad_batches", 1)),
        enable_progress_bar=False,
        enable_checkpointing=True,
    )
    best = {
        "_target_": "lightning.pytorch.callbacks.ModelCheckpoint",
        "dirpath": str(stage_dir / "checkpoints"),
        "filename": "best",
        "monitor": "val/loss",
        "mode": "min",
        "save_top_k": 1,
    }
    return OmegaConf.create(
        {
            "data": OmegaConf.to_container(cfg.data, resolve=True),
            "model": OmegaConf.to_container(g.model, resolve=True),
            "trainer": trainer,
            "callbacks": {"best": best},
            "seed": int(cfg.seed),
            "selection": "best_val",
            "monitor": "val/loss",
            "monitor_mode": "min",
            "optimized_metric": "test/loss",
        }
    )


def run_generator(cfg: DictConfig, stage_dir: Path) -> dict[str, Any]:
    """Train the PathGen generator on training patients; synthesise every patient; generation metrics on test."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    g = cfg.pipeline.generator
    stage = _generator_config(cfg, stage_dir)
    L.seed_everything(cfg.seed, workers=True)
    dm = _datamodule(stage, scaling=g.scaling, values_from=None)
    dm.batch_size = int(g.get("batch_size") or dm.batch_size)
    task = build_task(stage, build_net(stage, dm.dims))
    trainer = build_trainer(stage, stage_dir, [CSVLogger(stage_dir, name="csv", version="")])
    trainer.fit(task, datamodule=dm)
    best = next(cb for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint) and cb.monitor)
    state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
    task.load_state_dict(state)
    device = _device(cfg)
    task.to(device)

    synthetic, real, part_of = {}, {}, {}
    for part, loader in _loaders(dm).items():
        for batch in loader:
            batch = batch.to(device)
            x = (
                cast(Any, task)
                .sample(
                    batch,
                    sampler=g.sampler,
                    steps=g.get("steps"),
                    n_samples=int(g.n_samples),
                    seed=int(cfg.seed),
                )
                .cpu()
                .numpy()
            )
            for i, case in enumerate(batch.case_ids):
                synthetic[case] = x[i]
                real[case] = torch.cat([t[i] for t in batch.genomics]).cpu().numpy()
                part_of[case] = part
    cases = sorted(synthetic)
    scaler: GeneScaler = dm.fitted.gene_scaler
    frame = _to_expression(np.stack([synthetic[c] for c in cases]), dm.fitted.gene_groups, scaler, cases)
    with atomic_path(stage_dir / "expression.csv") as tmp:
        frame.to_csv(tmp, float_format="%.6g")
    pd.DataFrame({"case_id": cases, "part": [part_of[c] for c in cases]}).to_csv(
        stage_dir / "parts.csv", index=False
    )
    scaler.save(stage_dir / "scaler.json")

    test = [c for c in cases if part_of[c] == "test"]
    train_real = np.stack([real[c] for c in cases if part_of[c] == "train"])
    metrics = generation_metrics(
        np.stack([synthetic[c] for c in test]),
        np.stack([real[c] for c in test]),
        dm.fitted.gene_groups.sizes,
        dm.fitted.gene_groups.names,
        train_real.mean(axis=0),
    )
    ceiling = _ceiling(Path(dm.root))
    report = {
        "test": metrics,
        "ceiling": ceiling,
        "sampler": g.sampler,
        "steps": g.get("steps"),
        "n_samples": int(g.n_samples),
        "scaled_range": [-1.0, 1.0],
        "checkpoint": best.best_model_path,
        "epochs_trained": int(trainer.current_epoch),
        "fitted_on": "train",
    }
    write_json(stage_dir / "generation.json", report)
    ov = metrics["generator"]["overall"]
    log.info(
        "generator: test Spearman (per gene) %.3f vs training mean 0; MAE %.3f vs %.3f",
        ov["spearman_gene"],
        ov["mae"],
        metrics["training_mean"]["overall"]["mae"],
    )
    return report


def _to_expression(scaled: np.ndarray, groups: Any, scaler: GeneScaler, cases: list[str]) -> pd.DataFrame:
    """Scaled group vectors [n, sum n_g] → expression table (case_id index, one column per gene of the groups' union,
    expression units); a gene listed in several groups gets the mean of its copies."""
    genes = list(dict.fromkeys(g for grp in groups.genes for g in grp))
    pos = {g: i for i, g in enumerate(genes)}
    total, count = np.zeros((len(cases), len(genes))), np.zeros(len(genes))
    flat = [g for grp in groups.genes for g in grp]
    for j, gene in enumerate(flat):
        total[:, pos[gene]] += scaled[:, j]
        count[pos[gene]] += 1
    values = scaler.inverse_transform(total / count)
    return pd.DataFrame(values, index=pd.Index(cases, name="case_id"), columns=genes)


def _ceiling(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / "oracle.json").read_text()).get("generation_ceiling")
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------------------------------- stage 2
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


# ----------------------------------------------------------------------------------------------------- stage 3
def _subgroups(cfg: DictConfig, frame: pd.DataFrame, cal_risk: np.ndarray) -> pd.DataFrame:
    """Subgroup columns for the test rows of `frame`: clinical columns (by case_id), numeric ones cut at
    `pipeline.conformal.bands`, the true grade, and the risk tertile (cut-points from the CALIBRATION risks)."""
    c = cfg.pipeline.conformal
    label = c.label
    out = pd.DataFrame(index=frame.index)
    wanted = [s for s in c.subgroups if s not in (label, "risk_bin")]
    if wanted:
        root = Path(cfg.data.root)
        clinical = pd.read_csv(root / cfg.data.get("clinical_csv", "clinical.csv"), dtype={"case_id": str})
        missing = [s for s in wanted if s not in clinical.columns]
        if missing:
            raise ValueError(
                f"pipeline.conformal.subgroups {missing} are not columns of {root / 'clinical.csv'} "
                f"(columns: {list(clinical.columns)[:12]}); fix the list"
            )
        per_case = clinical.groupby("case_id")[wanted].first()
        for s in wanted:
            values = per_case[s].reindex(frame["case_id"]).to_numpy()
            bands = (c.get("bands") or {}).get(s)
            if bands is not None:
                edges = [-math.inf, *bands, math.inf]
                cut = pd.cut(pd.to_numeric(values, errors="coerce"), edges, right=False)
                values = np.asarray(
                    [str(v) if isinstance(v, pd.Interval) else "missing" for v in cut], dtype=object
                )
            out[s] = values
    if label in c.subgroups:
        out[label] = frame[label].to_numpy()
    if "risk_bin" in c.subgroups:
        edges = np.quantile(cal_risk, [1 / 3, 2 / 3])
        out["risk_bin"] = np.asarray(["low", "mid", "high"])[np.searchsorted(edges, frame["risk"].to_numpy())]
    return out


def _setting_arrays(
    frame: pd.DataFrame, source: str, target: str, label: str, n_bins: int, names: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    """The calibration and test rows of `source` as the shared conformal code reads them
    (survlab.report.conformal.probs_and_labels: LAC probabilities, true class / known bin under its censoring rule)
    → (cal probs [n_cal, K], cal labels [n_cal] (−1 unknown), test probs [n, K], test labels [n], test rows)."""
    rows = frame[frame["source"] == source]
    cal, test = rows[rows["part"] == "calibration"], rows[rows["part"] == "test"]
    if cal.empty or test.empty:
        raise ValueError(
            f"conformal: source {source!r} has {len(cal)} calibration and {len(test)} test rows; "
            f"both are needed (same genomics source for calibration and test)"
        )
    if target == label:
        k = frame.filter(regex=f"^{label}_prob_").shape[1]
        spec = ConformalTarget(target, "class", tuple(names or map(str, range(k))))
    else:
        spec = ConformalTarget(target, "survival_bin", tuple(names or (f"bin{k}" for k in range(n_bins))))

    def arrays(part: pd.DataFrame) -> tuple[np.ndarray, ...]:
        if target == label:
            cols = {"probs": part.filter(regex=f"^{label}_prob_").to_numpy(), "label": part[label].to_numpy()}
        else:
            cols = {
                "hazard_logits": part.filter(regex="^hazard_").to_numpy(),
                "time_bin": part["time_bin"].to_numpy(),
                "event": part["event"].to_numpy(),
                **({"time": part["time"].to_numpy()} if "time" in part else {}),
            }
        return probs_and_labels(spec, {"index": np.arange(len(part)), **cols})

    _, cal_p, cal_y = arrays(cal)
    test_idx, test_p, test_y = arrays(test)
    return cal_p, cal_y, test_p, test_y, test.iloc[test_idx]


def conformal_setting(
    frame: pd.DataFrame, source: str, target: str, alpha: float, label: str, n_bins: int
) -> tuple[float, np.ndarray, np.ndarray, pd.DataFrame, int]:
    """Calibrate on the calibration rows of `source` and predict the test rows of the SAME `source`.

    → (q̂, test sets [n, K], test labels [n] (−1 unknown), test rows, number of calibration patients excluded).
    Raises CalibrationSizeError when the calibration part is too small for `alpha`."""
    cal_p, cal_y, test_p, test_y, test = _setting_arrays(frame, source, target, label, n_bins)
    qhat, sets = calibrate_and_predict(cal_p, cal_y, test_p, alpha)
    return qhat, sets, test_y, test, int((cal_y < 0).sum())


def run_conformal(
    cfg: DictConfig, out_dir: Path, stage_dir: Path, settings: dict[str, tuple[str, str]]
) -> dict[str, Any]:
    """Split-conformal sets per setting (name → (stage, source)) × target (grade, survival_bin) × alpha, computed
    and written by the shared conformal code (survlab.report.conformal: `conformal_cell`, `write_conformal_files`)."""
    c = cfg.pipeline.conformal
    label, tables, sets_rows, summary = c.label, [], [], {}
    for setting, (stage, source) in settings.items():
        frame = pd.read_csv(out_dir / stage / "eval_predictions.csv", dtype={"case_id": str})
        meta = json.loads((out_dir / stage / "classes.json").read_text())
        classes, n_bins = meta[label], int(meta["n_bins"])
        cal_rows = frame[(frame["source"] == source) & (frame["part"] == "calibration")]
        for target in (label, "survival_bin"):
            names = classes if target == label else [f"bin{k}" for k in range(n_bins)]
            cal_p, cal_y, test_p, test_y, test = _setting_arrays(frame, source, target, label, n_bins, names)
            groups = _subgroups(cfg, test, cal_rows["risk"].to_numpy())
            if label in groups:
                groups[label] = [classes[i] if i >= 0 else "missing" for i in groups[label]]
            for alpha in c.alphas:
                key = f"{setting}/{target}/alpha={float(alpha):g}"
                cell = conformal_cell(
                    names, cal_p, cal_y, test_p, test_y, float(alpha), "marginal", groups, key
                )
                table = cell.table
                table.insert(0, "setting", f"{setting} · {target} · α={float(alpha):g}")
                table.insert(1, "model", stage)
                table.insert(2, "source", source)
                table.insert(3, "target", target)
                table.insert(4, "alpha", float(alpha))
                tables.append(table)
                summary[key] = {
                    "model": stage,
                    "calibration_source": source,
                    "test_source": source,
                    "target": target,
                    "alpha": float(alpha),
                    "method": "marginal",
                    "classes": list(names),
                    **cell.summary,
                }
                if cell.note:
                    continue
                sets = sets_frame(test["case_id"].to_numpy(), names, cell)
                sets.insert(0, "setting", setting)
                sets.insert(1, "target", target)
                sets.insert(2, "alpha", float(alpha))
                sets_rows.append(sets)
    write_conformal_files(
        stage_dir,
        c.alphas,
        summary,
        tables,
        sets_rows,
        ["setting", "target", "alpha", "case_id", "set", "set_size", "label", "covered"],
        entries_key="settings",
    )
    first = float(c.alphas[0])
    table = pd.concat(tables, ignore_index=True)
    plot_coverage(
        table[table["alpha"] == first],
        first,
        stage_dir / "conformal.png",
        title=f"{cfg.data.name} fold {cfg.fold}: split-conformal coverage (bars) and mean set size (numbers)",
    )
    return summary


# ----------------------------------------------------------------------------------------------------- comparison
def comparison_table(out_dir: Path, settings: dict[str, tuple[str, str]], label: str) -> pd.DataFrame:
    """Test C-index and grade metrics per setting (model × genomics source) from the stages' eval predictions."""
    rows = []
    for setting, (stage, source) in settings.items():
        frame = pd.read_csv(out_dir / stage / "eval_predictions.csv", dtype={"case_id": str})
        test = frame[(frame["source"] == source) & (frame["part"] == "test")]
        known = test[label].to_numpy() >= 0
        probs = test.filter(regex=f"^{label}_prob_").to_numpy()
        grade = classification_metrics(probs[known], test[label].to_numpy()[known], ordinal=True)
        rows.append(
            {
                "setting": setting,
                "model": stage,
                "genomics_source": source,
                "n_test": len(test),
                "cindex": harrell_cindex(
                    test["risk"].to_numpy(), test["time"].to_numpy(), test["event"].to_numpy().astype(bool)
                ),
                **{
                    f"{label}_{k}" + ("_quadratic" if k == "kappa" else ""): v
                    for k, v in grade.items()
                    if k in ("accuracy", "balanced_accuracy", "f1", "auroc", "kappa")
                },
            }
        )
    return pd.DataFrame(rows)


def _markdown(table: pd.DataFrame) -> str:
    """A Markdown table (floats to 3 decimals) without the optional `tabulate` dependency."""
    cells = [
        [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in table.itertuples(index=False)
    ]
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])


# ----------------------------------------------------------------------------------------------------- entry
def run_pipeline(cfg: DictConfig, out_dir: Path, train: Train) -> dict[str, Any]:
    """Run (or skip) every stage of `cfg.pipeline.stages` for this fold; → the job's metrics.json content."""
    p = cfg.pipeline
    stages = [str(s) for s in p.stages]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"pipeline.stages {unknown} unknown; allowed (in order): {list(STAGES)}")
    rerun_from = min((STAGES.index(str(s)) for s in (p.get("rerun") or [])), default=len(STAGES))
    base = {
        "data": OmegaConf.to_container(cfg.data, resolve=False),
        "fold": cfg.fold,
        "seed": cfg.seed,
        "trainer": OmegaConf.to_container(cfg.trainer, resolve=False),
    }
    ids: dict[str, str] = {}
    ids["generator"] = _digest({**base, "generator": OmegaConf.to_container(p.generator, resolve=False)})
    ids["grader"] = _digest(
        {
            **base,
            "model": OmegaConf.to_container(cfg.model, resolve=False),
            "upstream": ids["generator"],
            "monitor": cfg.monitor,
            "selection": cfg.selection,
            "patch_maps": p.grader.get("patch_maps", True),
        }
    )
    ids["wsi_only"] = _digest(
        {
            **base,
            "model": OmegaConf.to_container(p.wsi_only.model, resolve=False),
            "max_epochs": p.wsi_only.get("max_epochs"),
            "monitor": cfg.monitor,
            "selection": cfg.selection,
        }
    )
    ids["conformal"] = _digest(
        {
            "conformal": OmegaConf.to_container(p.conformal, resolve=False),
            "upstream": [ids["grader"], ids["wsi_only"]],
        }
    )
    synthetic = out_dir / "generator" / "expression.csv"
    grader_sources = {"real": None, **({"synthetic": str(synthetic)} if "generator" in stages else {})}
    settings = {f"mcat_gr_{s}": ("grader", s) for s in grader_sources if "grader" in stages}
    if "wsi_only" in stages:
        settings["wsi_only"] = ("wsi_only", "none")
    work = {
        "generator": lambda: run_generator(cfg, out_dir / "generator"),
        "grader": lambda: run_outcome_stage(
            cfg,
            out_dir,
            out_dir / "grader",
            train,
            OmegaConf.to_container(cfg.model, resolve=True),
            None,
            grader_sources,
            bool(p.grader.get("patch_maps", True)),
        ),
        "wsi_only": lambda: run_outcome_stage(
            cfg,
            out_dir,
            out_dir / "wsi_only",
            train,
            OmegaConf.to_container(p.wsi_only.model, resolve=True),
            p.wsi_only.get("max_epochs"),
            {"none": None},
            False,
        ),
        "conformal": lambda: run_conformal(cfg, out_dir, out_dir / "conformal", settings),
    }
    for i, stage in enumerate(STAGES):
        if stage in stages:
            _run_stage(stage, out_dir / stage, ids[stage], i >= rerun_from, work[stage])

    metrics: dict[str, Any] = {
        "model": "pathgen_pipeline",
        "cohort": cfg.data.name,
        "fold": int(cfg.fold),
        "seed": int(cfg.seed),
        "status": "ok",
    }
    if "grader" in stages:
        grader = json.loads((out_dir / "grader" / "metrics.json").read_text())
        metrics.update(
            {k: v for k, v in grader.items() if k.startswith(("test/", "val/")) or k == "oracle_cindex"}
        )
    if settings:
        table = comparison_table(out_dir, settings, p.conformal.label)
        table.to_csv(out_dir / "comparison.csv", index=False)
        (out_dir / "comparison.md").write_text(_markdown(table) + "\n")
        for row in table.to_dict("records"):
            for k, v in row.items():
                if isinstance(v, float):
                    metrics[f"test/{row['setting']}/{k}"] = v
        print(
            f"\nsurvlab: PathGen pipeline on {cfg.data.name} fold {cfg.fold} (test patients)\n"
            f"{_markdown(table)}\noutputs: {out_dir}\n"
        )
    if "generator" in stages:
        gen = json.loads((out_dir / "generator" / "generation.json").read_text())["test"]
        for who in ("generator", "training_mean"):
            for k, v in gen[who]["overall"].items():
                metrics[f"test/generation/{who}/{k}"] = v
    if "conformal" in stages:
        conf = json.loads((out_dir / "conformal" / "conformal.json").read_text())["settings"]
        for key, s in conf.items():
            metrics[f"test/conformal/{key}/coverage"] = s["coverage"]
            metrics[f"test/conformal/{key}/mean_set_size"] = s["mean_set_size"]
            if s.get("note"):
                metrics[f"test/conformal/{key}/coverage_note"] = s["note"]
    return metrics


__all__ = [
    "STAGES",
    "comparison_table",
    "conformal_setting",
    "run_conformal",
    "run_generator",
    "run_outcome_stage",
    "run_pipeline",
]
