"""Write a finished segmentation run's outputs: metrics (returned for metrics.json), dice_per_slice.csv,
protocol.json and an overlay figure of test slices (ground truth vs prediction)."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

import survlab
from survlab.utils.files import atomic_path
from survlab.utils.outputs import git_commit, write_json


def _chance_dice(datamodule: Any) -> dict[str, float]:
    """Expected Dice of a random mask with each structure's foreground rate on the test slices (a chance level)."""
    out = {}
    for s in ("lung", "lesion"):
        masks = np.stack([it[3 if s == "lung" else 4] for it in datamodule.datasets["test"].slices])
        p = float(masks.mean())
        out[f"chance_dice_{s}"] = p  # E|A∩B| / ((|A|+|B|)/2) with B ~ Bernoulli(p) independent of A = p
    return out


def plot_overlays(task: Any, datamodule: Any, path: Path, n: int = 6) -> None:
    """Test slices with the most lesion: image, ground truth (lung green, lesion red) and prediction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    slices = sorted(datamodule.datasets["test"].slices, key=lambda it: -int(it[4].sum()))[:n]
    if not slices:
        return
    image = torch.stack([torch.from_numpy(it[2].astype(np.float32) / 255.0)[None] for it in slices])
    task.eval()
    with torch.no_grad():
        out = task(image.to(task.device))
    fig, axes = plt.subplots(2, len(slices), figsize=(2 * len(slices), 4), squeeze=False)
    for j, it in enumerate(slices):
        pred = {s: (torch.sigmoid(out[s][j, 0].float()) > 0.5).cpu().numpy() for s in ("lung", "lesion")}
        for row, (lung, lesion) in enumerate(((it[3], it[4]), (pred["lung"], pred["lesion"]))):
            ax = axes[row, j]
            ax.imshow(it[2], cmap="gray")
            ax.contour(lung, levels=[0.5], colors="lime", linewidths=0.8)
            ax.contour(lesion, levels=[0.5], colors="red", linewidths=0.8)
            ax.set_axis_off()
    axes[0, 0].set_title("ground truth", fontsize=8)
    axes[1, 0].set_title("prediction", fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def write_segmentation_outputs(
    cfg: DictConfig,
    out_dir: Path,
    task: Any,
    datamodule: Any,
    trainer: L.Trainer,
    ckpt: str | None,
    wall_s: float,
) -> dict[str, Any]:
    """dice_per_slice.csv (case_id, slice, dice_lung, dice_lesion), overlays.png, protocol.json -> metrics."""
    rows = pd.DataFrame(task.test_rows)
    rows.insert(0, "case_id", [datamodule.all_case_ids[i] for i in rows.pop("case")])
    with atomic_path(out_dir / "dice_per_slice.csv") as tmp:
        rows.to_csv(tmp, index=False)
    plot_overlays(task, datamodule, out_dir / "overlays.png")
    ckpt_cb = trainer.checkpoint_callback
    metrics: dict[str, Any] = {
        "model": cfg.model.name,
        "cohort": cfg.data.name,
        "fold": int(cfg.fold),
        "seed": int(cfg.seed),
        "status": "ok",
        **{f"test/{k}": float(v) for k, v in task.test_metrics.items()},
        **_chance_dice(datamodule),
        "val/best": float(ckpt_cb.best_model_score)
        if ckpt_cb is not None and ckpt_cb.best_model_score is not None
        else None,
        "n_test": int(rows["case_id"].nunique()),
        "n_test_slices": int(len(rows)),
        "epochs_trained": int(trainer.current_epoch),
        "checkpoint": ckpt,
        "wall_s": round(wall_s, 2),
    }
    write_json(
        out_dir / "protocol.json",
        {
            "cohort": datamodule.describe(),
            "model": {
                "name": cfg.model.name,
                "class": cfg.model.net._target_,
                "n_parameters": int(sum(p.numel() for p in task.net.parameters())),
            },
            "fold": int(cfg.fold),
            "selection": cfg.selection,
            "monitor": cfg.monitor,
            "selected_checkpoint": ckpt,
            "seed": int(cfg.seed),
            "survlab_version": survlab.__version__,
            "git_commit": git_commit(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "lightning": L.__version__,
            "config": OmegaConf.to_container(cfg, resolve=True),
        },
    )
    print(
        f"\nsurvlab: {cfg.model.name} on {cfg.data.name} fold {cfg.fold}: test Dice lung "
        f"{metrics['test/dice_lung']:.3f} (chance {metrics['chance_dice_lung']:.3f}), lesion "
        f"{metrics['test/dice_lesion']:.3f} (chance {metrics['chance_dice_lesion']:.3f})\noutputs: {out_dir}\n"
    )
    return metrics


__all__ = ["plot_overlays", "write_segmentation_outputs"]
