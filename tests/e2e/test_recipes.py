"""Every published recipe in conf/experiment composes and runs one fast_dev_run step end to end, on synthetic files
written in the real layout its data config expects (cohort folder, encoder name, scales); the papers' recipes train
with the papers' optimiser steps (patients per step, learning rate of every step), recorded during a real fit.
The CLAM recipes (clam_sb_<cohort>) do the same on CLAM dataset_csv-style classification files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from survlab.config.check_task import resolve_auto
from survlab.data.sources.synthetic import generate_cohort
from survlab.data.sources.synthetic_spec import SyntheticSpec
from tests.helpers.runs import CONF_DIR, compose_config, run_job

RECIPES = sorted(
    p.stem for p in (CONF_DIR / "experiment").glob("*.yaml") if not p.stem.startswith("_")
)  # _x: shared parts
PAPER = {  # what the recipes must say (specs/*.md)
    "ggmf": {
        "model.task.lr": 1e-4,
        "model.task.alpha": 0.5,
        "trainer.max_epochs": 20,
        "model.net.dim": 256,
        "model.net.heads": 16,
        "model.task.warmup_epochs": 1,
        "data.weighted_sampling": True,
        "seed": 1,
    },
    "crossfusion": {
        "model.task.lr": 1e-4,
        "model.task.weight_decay": 4e-6,
        "model.task.alpha": 0.2,
        "trainer.max_epochs": 100,
        "trainer.accumulate_grad_batches": 32,
        "model.net.dim": 512,
        "callbacks.early_stopping.patience": 20,
        "seed": 7,
    },
    # CLAM (mahmoodlab/CLAM main.py defaults + the README's commands)
    "clam": {
        "model.task.lr": 2e-4,
        "model.task.weight_decay": 1e-5,
        "model.task.optimizer": "adam",
        "model.task.scheduler": "none",
        "model.task.objectives.label.loss": "ce",
        "model.task.objectives.label.weight": 0.7,
        "model.task.aux_weight": 0.3,
        "model.net.k_sample": 8,
        "model.net.instance_loss": "svm",
        "model.net.dropout": 0.25,
        "model.net.size_arg": "small",
        "data.weighted_sampling": True,
        "data.batch_size": 1,
        "data.max_patches": None,
        "trainer.max_epochs": 200,
        "trainer.min_epochs": 52,
        "trainer.accumulate_grad_batches": 1,
        "callbacks.early_stopping.patience": 20,
        "monitor": "val/loss",
        "monitor_mode": "min",
        "seed": 1,
    },
    # HMF (specs/hmf.md): AdamW 1e-5, weight decay 0.01, accumulation 5, early stopping patience 5 on val accuracy
    "hmf": {
        "model.task.lr": 1e-5,
        "model.task.weight_decay": 0.01,
        "model.task.optimizer": "adamw",
        "trainer.accumulate_grad_batches": 5,
        "trainer.max_epochs": 200,
        "callbacks.early_stopping.patience": 5,
        "monitor": "val/accuracy",
        "monitor_mode": "max",
        "seed": 2025,
        "model.task.weighting": "uncertainty",
        "model.net.ratio": 0.5,
        "model.net.temperature": 0.07,
        "model.net.dim": 512,
        "model.net.slide_dim": 1024,
    },
    # MM-DLS (specs/mmdls.md): Adam 1e-4, wd 1e-5, <= 300 epochs, patience 8; batches of 32, not the reference's 4
    "mmdls": {
        "model.task.lr": 1e-4,
        "model.task.weight_decay": 1e-5,
        "model.task.optimizer": "adam",
        "trainer.max_epochs": 300,
        "callbacks.early_stopping.patience": 8,
        "model.net.dim": 128,
        "model.net.hidden": 256,
        "model.net.heads": 4,
        "model.net.attn_dropout": 0.1,
        "model.net.dropout": 0.3,
        "model.net.task_embed_dim": 32,
        "data.batch_size": 32,
        "data.imaging.stack_length": 30,
        "data.imaging.image_size": 224,
    },
}
# where a cohort's challenge defines the metric: CAMELYON17 scores pN stages with quadratic weighted kappa
PAPER_OVERRIDES = {"hmf_camelyon17": {"monitor": "val/kappa", "monitor_mode": "max"}}
# CLAM recipe -> (data config, the label it classifies, CLAM's --subtyping)
CLAM_RECIPES = {
    "clam_sb_camelyon16": ("camelyon16", "label", False),
    "clam_sb_tcga_nsclc": ("tcga_nsclc", "label", True),
    "clam_sb_tcga_brca_subtype": ("tcga_brca_subtype", "label", True),
    "clam_sb_camelyon17": ("camelyon17", "pn_stage", False),
}


def _clam_layout(cfg: DictConfig) -> bool:
    """Whether the composed config reads a real classification cohort (CLAM layout, no survival columns)."""
    return (
        cfg.data.get("synthetic") is None
        and cfg.data.get("public") is None
        and cfg.data.get("time_col", "") is None
    )


def _slide_value(spec: DictConfig, labels: dict, p: int, j: int) -> str:
    """Slide j of patient p's value of a slide label, cycled over the classes, obeying the label's patient rule when
    it has one (`slide_labels.<name>.patient`: a patient of a `negative` class has only `normal` slides, any other
    at least one that is not normal)."""
    value = spec.classes[(p + j) % len(spec.classes)]
    rule = spec.get("patient")
    if not rule:
        return value
    patient_label = labels[rule.label]
    if patient_label.classes[p % len(patient_label.classes)] in rule.negative:
        return rule.normal[0]
    if j == 0 and value in rule.normal:
        return next(c for c in spec.classes if c not in rule.normal)
    return value


def _write_clam_cohort(
    data: DictConfig, n_patients: int, feature_dim: int, patches: tuple[int, int] = (4, 8)
) -> None:
    """Write a small classification cohort where `data` (a composed CLAM-layout data config) reads it: clinical.csv
    (one row per slide: case_id, slide_id, every patient / slide label column with the config's classes, cycled
    over patients) + features/<encoder>/pt_files/<slide_id>.pt [n, feature_dim]; 5 node slides per patient when the
    cohort has slide labels (CAMELYON17), else 1-2 slides."""
    root, gen = Path(data.root), torch.Generator().manual_seed(0)
    feats = root / data.wsi.features_dir / data.wsi.encoder / "pt_files"
    feats.mkdir(parents=True)
    labels, slide_labels = dict(data.get("labels") or {}), dict(data.get("slide_labels") or {})
    # a slide label read from a patient label's column (TCGA HMF recipes: every slide has the patient's subtype)
    slide_labels = {
        k: v for k, v in slide_labels.items() if v.column not in {s.column for s in labels.values()}
    }
    rows = []
    for p in range(n_patients):
        case = f"patient_{p:03d}"
        for j in range(5 if slide_labels else 1 + p % 2):
            slide = f"{case}_node_{j}"
            values = [spec.classes[p % len(spec.classes)] for spec in labels.values()]
            values += [_slide_value(spec, labels, p, j) for spec in slide_labels.values()]
            rows.append(",".join([case, slide, *values]))
            n = int(torch.randint(patches[0], patches[1] + 1, (1,), generator=gen))
            torch.save(torch.randn(n, feature_dim, generator=gen), feats / f"{slide}.pt")
    header = [
        data.case_col,
        data.slide_col,
        *(spec.column for spec in [*labels.values(), *slide_labels.values()]),
    ]
    (root / data.clinical_csv).write_text("\n".join([",".join(header), *rows]) + "\n")


def test_recipes_exist_for_every_published_cohort() -> None:
    for cohort in ("luad", "brca"):
        assert f"ggmf_tcga_{cohort}" in RECIPES and f"mcat_tcga_{cohort}" in RECIPES
    for cohort in ("blca", "brca", "coadread", "luad", "gbmlgg", "ucec"):
        assert f"crossfusion_tcga_{cohort}" in RECIPES
    assert set(CLAM_RECIPES) <= set(RECIPES)  # every classification cohort (conf/data/_clam.yaml users)
    clam_cohorts = {
        p.stem for p in (CONF_DIR / "data").glob("*.yaml") if "defaults: [_clam," in p.read_text()
    }
    assert clam_cohorts == {cohort for cohort, _, _ in CLAM_RECIPES.values()}


@pytest.mark.parametrize("recipe", sorted(CLAM_RECIPES))
def test_clam_recipe_trains_its_cohorts_label_with_clams_subtyping_flag(recipe: str, tmp_path: Path) -> None:
    cohort, label, subtyping = CLAM_RECIPES[recipe]
    cfg = compose_config(
        tmp_path, [f"experiment={recipe}", f"paths.data_dir={tmp_path}", f"paths.log_dir={tmp_path / 'logs'}"]
    )
    assert cfg.data.name == cohort and cfg.model.name == "clam_sb" and cfg.data.time_col is None
    assert cfg.model.net.subtyping is subtyping
    assert label in cfg.data.labels and cfg.model.task.objectives.label.label in (None, label)
    assert cfg.model.net.targets in (None, [label])
    if cfg.model.task.objectives.label.label is None:  # null = the cohort's primary label: its first one here
        assert next(iter(cfg.data.labels)) == label and cfg.data.splits.stratify_label in (None, label)


@pytest.mark.parametrize(
    "recipe", [r for r in RECIPES if r.split("_")[0] in PAPER and not r.endswith("_synthetic")]
)
def test_recipe_carries_the_papers_hyperparameters(recipe: str, tmp_path: Path) -> None:
    cfg = compose_config(
        tmp_path, [f"experiment={recipe}", f"paths.data_dir={tmp_path}", f"paths.log_dir={tmp_path / 'logs'}"]
    )
    for key, expected in {**PAPER[recipe.split("_")[0]], **PAPER_OVERRIDES.get(recipe, {})}.items():
        assert OmegaConf.select(cfg, key) == pytest.approx(expected), key
    resolve_auto(cfg)  # monitor: auto -> val/<primary metric>, as a run resolves it at start-up
    assert cfg.selection == "best_val" and cfg.monitor.startswith("val/")  # selection on the inner split


@pytest.mark.parametrize("recipe", [r for r in RECIPES if not r.startswith("pathgen_pipeline")])  # own tests
def test_recipe_runs_a_fast_dev_run_step(recipe: str, tmp_path: Path) -> None:
    overrides = [
        f"experiment={recipe}",
        "debug=fast_dev_run",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        "data.num_workers=0",
        "data.pin_memory=false",
        "export_attention=false",
    ]
    cfg = compose_config(tmp_path / "run", overrides)
    if cfg.data.get("public") is not None:  # a shipped table cohort (GSE7390): runs as is
        metrics = run_job(tmp_path / "run", overrides)
        _check_against_predictions(metrics, tmp_path / "run")
        return
    if (
        cfg.data.get("imaging") is not None or cfg.model.name == "mmdls_seg"
    ):  # PET/CT (MM-DLS): the real layout
        _run_petct_recipe(cfg, overrides, tmp_path)
        return
    overrides.append("data.wsi.feature_dim=8")
    multiscale = bool(cfg.data.wsi.get("scales"))
    if _clam_layout(cfg):  # a classification cohort: write CLAM-style files where it will look
        _write_clam_cohort(cfg.data, n_patients=30, feature_dim=8)
        metrics = run_job(tmp_path / "run", overrides)
        _check_against_predictions(metrics, tmp_path / "run")
        return
    if cfg.data.get("synthetic") is not None and cfg.data.synthetic.get("kind") == "classification":
        overrides += [
            "data.synthetic.n_patients=30",
            "data.synthetic.feature_dim=8",
            "data.synthetic.patches_per_slide=[16,40]",
        ]
        metrics = run_job(tmp_path / "run", overrides)
        _check_against_predictions(metrics, tmp_path / "run")
        return
    if cfg.data.get("synthetic") is None:  # a real-cohort recipe: write synthetic files where it will look
        spec = SyntheticSpec(
            n_patients=30,
            feature_dim=8,
            n_genes=60,
            n_pathways=8,
            patches_per_slide=(16, 40),
            multiscale=multiscale,
        )
        generate_cohort(Path(cfg.data.root), spec, encoder=cfg.data.wsi.encoder)
    else:
        overrides += [
            "data.synthetic.n_patients=30",
            "data.synthetic.feature_dim=8",
            "data.synthetic.n_genes=60",
            "data.synthetic.n_pathways=8",
            "data.synthetic.patches_per_slide=[16,40]",
        ]
    metrics = run_job(tmp_path / "run", overrides)
    _check_against_predictions(metrics, tmp_path / "run")


def _check_against_predictions(metrics: dict[str, Any], out: Path) -> None:
    """The run's headline test metric equals scikit-survival's / scikit-learn's on the run's own predictions.csv
    (one fast_dev_run step learns nothing, so equality with an independent reference is what a smoke run can
    assert; a range check such as 0 <= C <= 1 cannot fail)."""
    from sklearn.metrics import balanced_accuracy_score
    from sksurv.metrics import concordance_index_censored

    preds = pd.read_csv(out / "predictions.csv", dtype={"case_id": str})
    assert metrics["n_test"] == len(preds) > 0
    if "risk" in preds.columns:  # survival: Harrell's C of the primary endpoint
        expected = concordance_index_censored(
            preds["event"].astype(bool).to_numpy(), preds["time"].to_numpy(), preds["risk"].to_numpy()
        )[0]
        assert metrics["test/cindex"] == pytest.approx(expected, abs=1e-9)
        return
    protocol = json.loads((out / "protocol.json").read_text())
    label = next(iter(protocol["objectives"].values()))["label"]  # the primary objective's
    known = preds[label].notna()
    expected = balanced_accuracy_score(
        preds.loc[known, label].astype(str), preds.loc[known, f"{label}_pred"].astype(str)
    )
    assert metrics["test/balanced_accuracy"] == pytest.approx(expected, abs=1e-9)


def _run_petct_recipe(cfg: DictConfig, overrides: list[str], tmp_path: Path) -> None:
    from survlab.data.sources.synthetic_petct import PetCtSpec, generate_petct_cohort

    small = dict(n_patients=40, volume_size=32, n_slices=12, lesion_window=16)
    if cfg.data.get("synthetic") is None:  # the real layout of nsclc_petct, written where the recipe looks
        generate_petct_cohort(Path(cfg.data.root), PetCtSpec(**small))
    else:
        overrides += [f"data.synthetic.{k}={v}" for k, v in small.items()]
    if cfg.model.name == "mmdls_seg":  # slices + masks of the same generated cohort
        metrics = run_job(tmp_path / "run", [*overrides, "data.image_size=32"])
        assert metrics["n_test"] > 0 and 0.0 <= metrics["test/dice_lung"] <= 1.0
        return
    overrides += [
        "data.imaging.stack_length=4",
        "data.imaging.image_size=16",
        "data.imaging.lesion_window=16",
        "data.batch_size=16",
    ]
    if cfg.model.name == "mmdls":
        overrides += ["model.net.dim=16", "model.net.hidden=16", "model.net.heads=2"]
    metrics = run_job(tmp_path / "run", overrides)
    assert metrics["n_test"] > 0 and 0.0 <= metrics["test/cindex"] <= 1.0
    assert 0.0 <= metrics["test/subtype/auroc"] <= 1.0 and "test/treatment=immunotherapy/os/cindex" in metrics


# Patients per optimiser step in the papers' code (batch x gradient accumulation): GGMF steps per bag; CrossFusion and
# MCAT accumulate 32 single bags. snn_gse7390 is survlab's own recipe (batch 8, experiments/gse7390/README.md).
PATIENTS_PER_STEP = {"ggmf": 1, "crossfusion": 32, "mcat": 32, "snn": 8, "clam": 1, "hmf": 5}
SMALL_NETS = {  # shrink widths only (same task, optimiser and schedule code); the papers' widths are slow on CPU
    "ggmf": ["model.net.dim=16", "model.net.heads=2"],
    "crossfusion": ["model.net.dim=16", "model.net.heads=2", "model.net.mlp_dim=32"],
    "mcat": ["model.net.dim=16", "model.net.omic_hidden=[16,16]", "model.net.heads=2", "model.net.ff_dim=32"],
    "snn": [],
    "clam": [],
    "hmf": [
        "model.net.dim=16",
        "model.net.heads=2",
        "model.net.slide_heads=2",
        "model.net.slide_ff=16",
        "model.net.slide_dim=16",
        "model.net.pool_hidden=[8,8]",
        "model.net.patient_heads=2",
        "model.net.patient_ff=16",
        "model.net.bottleneck=8",
        "model.net.head_hidden=8",
        "model.net.filter_hidden=8",
        "model.net.filter_attn=8",
    ],
}
SCHEDULE_OVERRIDES = {  # fewer epochs / a shorter restart period, same scheduler code path
    "ggmf": ["trainer.max_epochs=2"],
    "crossfusion": ["trainer.max_epochs=3", "model.task.restart_epochs=2"],
    "mcat": ["trainer.max_epochs=1"],
    "snn": ["trainer.max_epochs=1"],
    "clam": ["trainer.max_epochs=2", "trainer.min_epochs=1"],
    "hmf": ["trainer.max_epochs=2"],
}


def _record_optimizer_steps(recipe: str, tmp_path: Path) -> tuple[list[dict[str, Any]], Any]:
    """Fit `recipe` briefly on a 50-patient synthetic cohort in its real layout (or its shipped table cohort) and
    return every optimiser step as recorded in training (epoch, lr, patients) with the composed config."""
    family = recipe.split("_")[0]
    run_dir, steps_file = tmp_path / "run", tmp_path / "steps.json"
    overrides = [
        f"experiment={recipe}",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        "logger=none",
        "data.num_workers=0",
        "data.pin_memory=false",
        "export_attention=false",
        "trainer.enable_progress_bar=false",
        "callbacks.rich_progress_bar=null",
        "callbacks.lr_monitor=null",
        "+callbacks.steps._target_=tests.helpers.runs.OptimizerStepRecorder",
        f"+callbacks.steps.path={steps_file}",
        *SMALL_NETS[family],
        *SCHEDULE_OVERRIDES[family],
    ]
    cfg = compose_config(run_dir, overrides)
    if _clam_layout(cfg):
        overrides.append("data.wsi.feature_dim=8")
        _write_clam_cohort(cfg.data, n_patients=50, feature_dim=8)
    elif cfg.data.get("public") is None:
        overrides.append("data.wsi.feature_dim=8")
        spec = SyntheticSpec(
            n_patients=50,
            feature_dim=8,
            n_genes=60,
            n_pathways=8,
            patches_per_slide=(4, 8),
            multiscale=bool(cfg.data.wsi.get("scales")),
        )
        generate_cohort(Path(cfg.data.root), spec, encoder=cfg.data.wsi.encoder)
    run_job(run_dir, overrides)
    return json.loads(steps_file.read_text()), compose_config(run_dir, overrides)


@pytest.mark.parametrize(
    "recipe", [r for r in RECIPES if r.split("_")[0] in PATIENTS_PER_STEP and not r.endswith("_synthetic")]
)
def test_recipe_trains_with_the_papers_optimiser_steps(recipe: str, tmp_path: Path) -> None:
    family = recipe.split("_")[0]
    steps, cfg = _record_optimizer_steps(recipe, tmp_path)
    epochs = sorted({s["epoch"] for s in steps})
    assert epochs == list(range(cfg.trainer.max_epochs))
    by_epoch = [[s for s in steps if s["epoch"] == e] for e in epochs]
    # every step but an epoch's last (the remainder of the training patients) applies the paper's number of patients
    full = [s["patients"] for ep in by_epoch for s in ep[:-1]]
    assert full and set(full) == {PATIENTS_PER_STEP[family]}, (
        recipe,
        [[s["patients"] for s in ep] for ep in by_epoch],
    )
    assert all(0 < ep[-1]["patients"] <= PATIENTS_PER_STEP[family] for ep in by_epoch)
    lr = [[s["lr"] for s in ep] for ep in by_epoch]
    peak, floor = cfg.model.task.lr, cfg.model.task.get("eta_min")
    if family == "ggmf":  # linear warm-up over the first epoch's steps, then cosine per step towards eta_min
        n0 = len(lr[0])
        assert lr[0][0] == pytest.approx(peak / n0) and lr[0][0] < peak
        assert lr[0] == pytest.approx(
            [peak * (i + 1) / n0 for i in range(n0)]
        )  # peak at the warm-up epoch's end
        # CosineAnnealingLR over the run's n1 remaining steps: the last one still above the floor
        n1 = len(lr[1])
        assert all(a > b for a, b in zip(lr[1], lr[1][1:], strict=False)) and lr[1][-1] == pytest.approx(
            floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * (n1 - 1) / n1))
        )
    elif family == "crossfusion":  # cosine stepped per epoch, restarting every restart_epochs (2 here)
        assert lr[0] == pytest.approx([peak] * len(lr[0])) and lr[2] == pytest.approx([peak] * len(lr[2]))
        assert lr[1] == pytest.approx([floor + (peak - floor) * 0.5] * len(lr[1]))
    elif family in ("mcat", "clam", "hmf"):  # no schedule
        assert lr[0] == pytest.approx([peak] * len(lr[0]))
