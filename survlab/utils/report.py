"""Write a finished run's outputs: predictions.csv, protocol.json, km.png, attention/ — and the metrics dict."""

from __future__ import annotations

import logging
import platform
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from omegaconf import DictConfig, OmegaConf

import survlab
from survlab.eval.interpret import export_attention
from survlab.eval.km import plot_km_by_risk
from survlab.eval.metrics import harrell_cindex
from survlab.tasks.survival import SurvivalTask
from survlab.utils.files import atomic_path
from survlab.utils.outputs import git_commit, predictions_frame, write_json

log = logging.getLogger("survlab.run")


def write_run_outputs(
    cfg: DictConfig, out_dir: Path, task: SurvivalTask, datamodule: Any, trainer: L.Trainer,
    ckpt: str | None, wall_s: float,
) -> dict[str, Any]:
    """Write every per-run file and return the metrics that go to metrics.json."""
    res = task.test_results
    case_ids = datamodule.full_cohort.case_ids  # Batch.index = row of the patient in the full cohort table
    preds = predictions_frame(res, case_ids, cfg.fold)
    # exact outcomes from the cohort table (the batch carries float32 copies)
    truth = datamodule.full_cohort.rows(preds["case_id"].tolist())
    preds["time"], preds["event"] = truth["time"].to_numpy(float), truth["event"].to_numpy(bool).astype(int)
    with atomic_path(out_dir / "predictions.csv") as tmp:
        preds.to_csv(tmp, index=False)

    oracle = None
    oracle_risk = datamodule.oracle_risk  # reads truth.csv: once
    if oracle_risk:
        true_risk = np.array([oracle_risk[c] for c in preds["case_id"]])
        oracle = harrell_cindex(true_risk, preds["time"].to_numpy(), preds["event"].to_numpy().astype(bool))

    km = plot_km_by_risk(preds["risk"].to_numpy(), preds["time"].to_numpy(), preds["event"].to_numpy().astype(bool),
                         out_dir / "km.png", method=cfg.get("km_groups", "median"),
                         title=f"{cfg.model.name} · {cfg.data.name} · fold {cfg.fold} (test)")
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger":
            logger.log_image(key="test/km", images=[str(out_dir / "km.png")])

    if cfg.get("export_attention", True):
        export_attention(task.net, datamodule, out_dir / "attention", top_k=cfg.get("attention_top_k", 10))

    ckpt_cb = trainer.checkpoint_callback
    best_val = None
    if ckpt_cb is not None and ckpt_cb.best_model_score is not None:
        best_val = float(ckpt_cb.best_model_score)
    metrics: dict[str, Any] = {
        "model": cfg.model.name, "cohort": cfg.data.name, "fold": int(cfg.fold), "seed": int(cfg.seed), "status": "ok",
        **{f"test/{k}": float(v) for k, v in task.test_metrics.items()},
        "val/best": best_val, "oracle_cindex": oracle, "n_test": int(len(preds)),
        "km_logrank_p": km.get("logrank_p"), "epochs_trained": int(trainer.current_epoch),
        "checkpoint": ckpt, "wall_s": round(wall_s, 2),
    }
    protocol = {
        "cohort": datamodule.describe(),
        "model": {"name": cfg.model.name, "class": cfg.model.net._target_,
                  "modalities": list(type(task.net).modalities),
                  "n_parameters": int(sum(p.numel() for p in task.net.parameters()))},
        "fold": int(cfg.fold), "selection": cfg.selection, "monitor": cfg.monitor, "selected_checkpoint": ckpt,
        "seed": int(cfg.seed), "bin_edges": task.bin_edges,
        "survlab_version": survlab.__version__, "git_commit": git_commit(), "python": platform.python_version(),
        "torch": __import__("torch").__version__, "lightning": L.__version__,
        "trainer": {"precision": str(trainer.precision), "world_size": trainer.world_size,
                    "strategy": type(trainer.strategy).__name__, "accelerator": type(trainer.accelerator).__name__},
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    write_json(out_dir / "protocol.json", protocol)
    oracle_txt = f"{oracle:.3f}" if oracle is not None else "n/a"
    log.info("fold %s test C-index %.3f (oracle %s, Uno %.3f, IBS %s) — outputs in %s", cfg.fold,
             metrics.get("test/cindex", float("nan")), oracle_txt, metrics.get("test/cindex_uno", float("nan")),
             f"{metrics.get('test/ibs'):.3f}" if metrics.get("test/ibs") is not None else "n/a", out_dir)
    print(f"\nsurvlab: {cfg.model.name} on {cfg.data.name} fold {cfg.fold}: test C-index "
          f"{metrics.get('test/cindex', float('nan')):.3f} | oracle C-index {oracle_txt}\noutputs: {out_dir}\n")
    return metrics
