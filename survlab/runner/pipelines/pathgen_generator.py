"""Stage 1 of the PathGen pipeline, `generator/`: the PathGen DDPM trained on the fold's training patients' expression
groups (scaled to [-1, 1] by a scaler fitted on them, checkpoint on the inner-validation loss), then sampled for every
patient of the fold: `expression.csv` (real table's format and units), `parts.csv`, `scaler.json`, and
`generation.json` (Spearman / MAE on the test patients beside the training-mean reference and the cohort's ceiling).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from survlab.data.modalities.genomics import GeneScaler
from survlab.metrics.generation import generation_metrics
from survlab.runner.build import build_net, build_task, build_trainer
from survlab.runner.pipelines.pathgen_stage import _datamodule, _device, _loaders
from survlab.utils.files import atomic_path
from survlab.utils.outputs import write_json

log = logging.getLogger("survlab.pipeline")


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
