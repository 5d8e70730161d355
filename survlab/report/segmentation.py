"""Write a finished segmentation run's outputs: metrics (returned for metrics.json), dice_per_slice.csv,
dice_per_patient.csv, protocol.json and an overlay figure of test slices (ground truth vs prediction)."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any, cast

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

import survlab
from survlab.report.outputs import metrics_head
from survlab.utils.files import atomic_path
from survlab.utils.outputs import git_commit, write_json


def chance_dice(slices: list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Expected Dice of a random mask on the same basis as the reported Dice (`tasks.segmentation`).

    `slices`: the test items (case, slice, image, lung, lesion). The random mask marks each voxel independently with
    probability p = the structure's foreground rate over all test voxels. Its Dice on a volume with |G| true voxels
    out of N is about 2 p |G| / (|G| + p N) (0 when |G| = 0): `chance_dice_<s>` averages that over the test patients'
    volumes (like `dice_<s>`), `chance_dice_lesion_on_lesion_slices` over the slices holding lesion (like
    `dice_lesion_on_lesion_slices`)."""
    out: dict[str, float] = {}
    cases = np.array([it[0] for it in slices])
    for s, j in (("lung", 3), ("lesion", 4)):
        true = np.array([float(cast(np.ndarray, it[j]).sum()) for it in slices])
        size = np.array([float(cast(np.ndarray, it[j]).size) for it in slices])
        p = float(true.sum() / size.sum()) if size.sum() else float("nan")
        per_case = [(true[cases == c].sum(), size[cases == c].sum()) for c in np.unique(cases)]
        out[f"chance_dice_{s}"] = float(np.mean([2 * p * g / (g + p * n) if g else 0.0 for g, n in per_case]))
        if s == "lesion":
            hit = true > 0
            out["chance_dice_lesion_on_lesion_slices"] = (
                float(np.mean(2 * p * true[hit] / (true[hit] + p * size[hit]))) if hit.any() else float("nan")
            )
    return out


def below_chance(metrics: dict[str, Any]) -> list[str]:
    """The structures whose test Dice per patient volume is not above its chance level (a decoder that never learned
    its structure, e.g. a lesion decoder stuck at predicting nothing: Dice 0.000) -> e.g. ["lesion"]."""
    return [
        s
        for s in ("lung", "lesion")
        if not metrics.get(f"test/dice_{s}", float("nan")) > metrics.get(f"chance_dice_{s}", float("inf"))
    ]


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
    """dice_per_slice.csv and dice_per_patient.csv (case_id, voxel counts, Dice; see tasks.segmentation),
    overlays.png, protocol.json -> metrics."""
    from survlab.tasks.segmentation import segmentation_metrics

    _, rows, patients = segmentation_metrics(task.test_rows)
    for name, table in (("dice_per_slice.csv", rows), ("dice_per_patient.csv", patients)):
        table.insert(0, "case_id", [datamodule.all_case_ids[i] for i in table.pop("case")])
        with atomic_path(out_dir / name) as tmp:
            table.to_csv(tmp, index=False)
    plot_overlays(task, datamodule, out_dir / "overlays.png")
    metrics: dict[str, Any] = {
        **metrics_head(cfg, task, trainer),
        **chance_dice(datamodule.datasets["test"].slices),
        "n_test": int(rows["case_id"].nunique()),
        "n_test_slices": int(len(rows)),
        "epochs_trained": int(trainer.current_epoch),
        "checkpoint": ckpt,
        "wall_s": round(wall_s, 2),
    }
    metrics["not_above_chance"] = below_chance(metrics)
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
        f"\nsurvlab: {cfg.model.name} on {cfg.data.name} fold {cfg.fold}: test Dice per patient volume: lung "
        f"{metrics['test/dice_lung']:.3f} (chance {metrics['chance_dice_lung']:.3f}), lesion "
        f"{metrics['test/dice_lesion']:.3f} (chance {metrics['chance_dice_lesion']:.3f}); lesion Dice on lesion "
        f"slices only {metrics['test/dice_lesion_on_lesion_slices']:.3f}; false lesion on lesion-free slices: "
        f"{metrics['test/lesion_fp_voxels']:.1f} voxels / patient, {metrics['test/lesion_fp_slices']:.1%} of "
        f"those slices\noutputs: {out_dir}\n"
    )
    if metrics["not_above_chance"]:
        print(
            f"survlab: WARNING: test Dice of {' and '.join(metrics['not_above_chance'])} is not above chance: the "
            f"segmentor did not learn it (check train/loss in run.log; retrain, e.g. model.task.ce_weight=1.0 or "
            f"another seed) before cutting stacks with it\n"
        )
    return metrics


__all__ = ["below_chance", "chance_dice", "plot_overlays", "write_segmentation_outputs"]
