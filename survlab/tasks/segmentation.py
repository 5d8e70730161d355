"""`SegmentationTask`: lung + lesion segmentation (MM-DLS segmentor) with MONAI's soft Dice loss and Dice metric.

loss = w_lung * DiceLoss(lung) + w_lesion * DiceLoss(lesion)   (sigmoid on the logits; soft Dice over the whole
batch with `dice_batch: true` (MONAI `batch=True`), so the many slices without lesion do not drive the lesion
decoder to predict nothing; `false` = per slice, averaged, as the reference); `ce_weight` > 0 adds that weight times
binary cross-entropy per structure (MONAI `DiceCELoss`), which keeps a gradient on the rare lesion voxels when the
soft Dice alone stalls (a lesion decoder stuck at predicting nothing: Dice loss ~1.0 for every epoch)
metrics (val/, test/), on masks thresholded at `threshold`, per PATIENT VOLUME (every slice the data module holds
for the patient, lesion-free slices included, so a false lesion on an empty slice costs Dice):
- dice_lung, dice_lesion: mean over patients of 2|P & G| / (|P| + |G|) over the patient's slices (a patient whose
  prediction and truth are both empty has no Dice and is left out); dice = their mean (the primary metric);
- dice_lesion_on_lesion_slices: the per-slice Dice averaged over the slices whose TRUE lesion is not empty only
  (MONAI `ignore_empty=True`; blind to false positives on lesion-free slices: a secondary number, labelled so);
- lesion_fp_voxels: predicted lesion voxels (pixels at the data's image size) on the lesion-free slices, mean per
  patient; lesion_fp_slices: the fraction of lesion-free slices with any predicted lesion;
- loss.

Example (YAML, `model.task`):
    _target_: survlab.tasks.segmentation.SegmentationTask
    lr: 1.0e-4
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from lightning.pytorch import seed_everything
from torch import Tensor, nn

from survlab.tasks.base import Task

STRUCTURES = ("lung", "lesion")


class SegmentationTask(Task):
    """Train / evaluate a network mapping image [B, 1, H, W] -> {"lung", "lesion": logits [B, 1, H, W]}."""

    METRICS: ClassVar[tuple[str, ...]] = (
        "dice",
        "dice_lung",
        "dice_lesion",
        "dice_lesion_on_lesion_slices",
        "lesion_fp_voxels",
        "lesion_fp_slices",
    )
    PRIMARY_METRIC: ClassVar[str] = "dice"
    MODES: ClassVar[dict[str, str]] = {"lesion_fp_voxels": "min", "lesion_fp_slices": "min"}
    REPORTER: ClassVar[str | None] = "survlab.report.segmentation.write_segmentation_outputs"

    def __init__(
        self,
        net: nn.Module,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        lung_weight: float = 1.0,
        lesion_weight: float = 1.0,
        threshold: float = 0.5,
        dice_batch: bool = True,
        ce_weight: float = 0.0,
        max_epochs: int = 20,
        seed: int = 0,
    ) -> None:
        super().__init__()
        from monai.losses import DiceCELoss, DiceLoss

        if not ce_weight >= 0.0:
            raise ValueError(
                f"model.task.ce_weight must be >= 0 (0 = soft Dice only, the reference), got {ce_weight}"
            )
        self.save_hyperparameters(ignore=["net"])
        self.net = net
        self.dice_loss: nn.Module = (
            DiceCELoss(sigmoid=True, batch=bool(dice_batch), lambda_ce=float(ce_weight))
            if ce_weight > 0
            else DiceLoss(sigmoid=True, batch=bool(dice_batch))
        )
        self.weights = {"lung": float(lung_weight), "lesion": float(lesion_weight)}
        self._rows: dict[str, list[float]] = {}  # per slice: case, slice, |P & G|, |P|, |G| per structure
        self.test_metrics: dict[str, float] = {}
        self.test_rows: dict[str, list[float]] = {}

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        return self.net(image)

    def loss(self, out: dict[str, Tensor], batch: dict[str, Tensor]) -> Tensor:
        return sum(self.weights[s] * self.dice_loss(out[s].float(), batch[s]) for s in STRUCTURES)

    def on_train_epoch_start(self) -> None:
        seed_everything(self.hparams.seed * 10_007 + self.current_epoch, workers=True, verbose=False)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self.loss(self(batch["image"]), batch)
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(batch["image"]))
        return loss

    def _eval_step(self, batch: dict[str, Tensor], stage: str) -> None:
        out = self(batch["image"])
        self.log(f"{stage}/loss", self.loss(out, batch), on_epoch=True, batch_size=len(batch["image"]))
        self._rows.setdefault("case", []).extend(batch["case"].tolist())
        self._rows.setdefault("slice", []).extend(batch["slice"].tolist())
        for s in STRUCTURES:
            pred = torch.sigmoid(out[s].float()) > self.hparams.threshold
            truth = batch[s] > 0.5
            for name, count in (("inter", pred & truth), ("pred", pred), ("true", truth)):
                self._rows.setdefault(f"{name}_{s}", []).extend(count.flatten(1).sum(1).tolist())

    def _epoch_metrics(self) -> dict[str, float]:
        rows, self._rows = self._rows, {}
        return segmentation_metrics(rows)[0]

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        for key, value in self._epoch_metrics().items():
            self.log(f"val/{key}", value if math.isfinite(value) else 0.0)

    def on_validation_epoch_start(self) -> None:
        self._rows = {}

    def on_test_epoch_start(self) -> None:
        self.test_rows = {}
        self._rows = {}

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self.test_rows = {k: list(v) for k, v in self._rows.items()}
        self.test_metrics = self._epoch_metrics()
        for key, value in self.test_metrics.items():
            self.log(f"test/{key}", value)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


def _dice(inter: np.ndarray, pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Dice 2|P & G| / (|P| + |G|) from voxel counts [N] (float64); NaN where both masks are empty."""
    denom = pred + true
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2.0 * inter / np.where(denom > 0, denom, 1.0), np.nan)


def segmentation_metrics(rows: dict[str, list[float]]) -> tuple[dict[str, float], pd.DataFrame, pd.DataFrame]:
    """Per-slice voxel counts -> (metrics, per-slice table, per-patient table).

    `rows`: equal-length lists `case`, `slice`, and per structure s in (lung, lesion) `inter_<s>` = |P & G|,
    `pred_<s>` = |P|, `true_<s>` = |G| (voxels of one slice). A patient's volume Dice sums the counts over all of
    its slices. See the module docstring for the metric names."""
    nan = {k: math.nan for k in ("dice", *(f"dice_{s}" for s in STRUCTURES), "dice_lesion_on_lesion_slices")}
    if not rows.get("case"):
        return (
            {**nan, "lesion_fp_voxels": math.nan, "lesion_fp_slices": math.nan},
            pd.DataFrame(),
            pd.DataFrame(),
        )
    sl = pd.DataFrame(rows)
    for s in STRUCTURES:
        sl[f"dice_{s}"] = _dice(*(sl[f"{k}_{s}"].to_numpy(np.float64) for k in ("inter", "pred", "true")))
    sl["lesion_free"] = sl["true_lesion"] == 0
    sl["fp_lesion"] = np.where(sl["lesion_free"], sl["pred_lesion"], 0)
    counts = [f"{k}_{s}" for s in STRUCTURES for k in ("inter", "pred", "true")]
    pt = sl.groupby("case", sort=True).agg(
        **{c: (c, "sum") for c in counts},
        n_slices=("slice", "size"),
        lesion_free_slices=("lesion_free", "sum"),
        lesion_fp_voxels=("fp_lesion", "sum"),
        lesion_fp_slices=("fp_lesion", lambda v: int((v > 0).sum())),
    )
    for s in STRUCTURES:
        pt[f"dice_{s}"] = _dice(*(pt[f"{k}_{s}"].to_numpy(np.float64) for k in ("inter", "pred", "true")))
    out = {
        f"dice_{s}": float(np.nanmean(pt[f"dice_{s}"])) if pt[f"dice_{s}"].notna().any() else math.nan
        for s in STRUCTURES
    }
    out["dice"] = float(np.nanmean([out["dice_lung"], out["dice_lesion"]]))
    on_lesion = sl.loc[~sl["lesion_free"], "dice_lesion"]
    out["dice_lesion_on_lesion_slices"] = float(on_lesion.mean()) if len(on_lesion) else math.nan
    out["lesion_fp_voxels"] = float(pt["lesion_fp_voxels"].mean())
    n_free = int(sl["lesion_free"].sum())
    out["lesion_fp_slices"] = float((sl["fp_lesion"] > 0).sum() / n_free) if n_free else math.nan
    return out, sl, pt.reset_index()


__all__ = ["SegmentationTask", "segmentation_metrics"]
