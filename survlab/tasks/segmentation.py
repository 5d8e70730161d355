"""`SegmentationTask`: lung + lesion segmentation (MM-DLS segmentor) with MONAI's soft Dice loss and Dice metric.

loss = w_lung * DiceLoss(lung) + w_lesion * DiceLoss(lesion)   (sigmoid on the logits; soft Dice over the whole
batch with `dice_batch: true` (MONAI `batch=True`), so the many slices without lesion do not drive the lesion
decoder to predict nothing; `false` = per slice, averaged, as the reference)
metrics (val/, test/): dice_lung, dice_lesion (MONAI DiceMetric on masks thresholded at 0.5, mean over the slices
whose ground truth is not empty), dice = their mean (the primary metric), loss.

Example (YAML, `model.task`):
    _target_: survlab.tasks.segmentation.SegmentationTask
    lr: 1.0e-4
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch
from lightning.pytorch import seed_everything
from torch import Tensor, nn

STRUCTURES = ("lung", "lesion")


class SegmentationTask(L.LightningModule):
    """Train / evaluate a network mapping image [B, 1, H, W] -> {"lung", "lesion": logits [B, 1, H, W]}."""

    CONFIG_METRICS: ClassVar[tuple[str, ...]] = (
        "dice",
        "dice_lung",
        "dice_lesion",
    )  # for config checks / monitor
    PRIMARY_METRIC: ClassVar[str] = "dice"

    def __init__(
        self,
        net: nn.Module,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        lung_weight: float = 1.0,
        lesion_weight: float = 1.0,
        threshold: float = 0.5,
        dice_batch: bool = True,
        max_epochs: int = 20,
        seed: int = 0,
    ) -> None:
        super().__init__()
        from monai.losses import DiceLoss

        self.save_hyperparameters(ignore=["net"])
        self.net = net
        self.dice_loss = DiceLoss(sigmoid=True, batch=bool(dice_batch))
        self.weights = {"lung": float(lung_weight), "lesion": float(lesion_weight)}
        self._metrics = self._new_metrics()
        self.test_metrics: dict[str, float] = {}
        self.test_rows: dict[str, list[float]] = {}

    @staticmethod
    def _new_metrics() -> dict[str, Any]:
        from monai.metrics import DiceMetric

        return {
            s: DiceMetric(include_background=True, reduction="mean", ignore_empty=True) for s in STRUCTURES
        }

    def fit_references(self, datamodule: Any) -> None:  # noqa: B027 - the run calls it on every task
        """Nothing is fitted from the training fold (the Dice needs no reference)."""

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
        for s in STRUCTURES:
            pred = (torch.sigmoid(out[s].float()) > self.hparams.threshold).float()
            per_slice = self._metrics[s](pred, batch[s])  # [B, 1], NaN where the ground truth is empty
            if stage == "test":
                self.test_rows.setdefault(f"dice_{s}", []).extend(per_slice.reshape(-1).tolist())
        if stage == "test":
            self.test_rows.setdefault("case", []).extend(batch["case"].tolist())
            self.test_rows.setdefault("slice", []).extend(batch["slice"].tolist())

    def _epoch_metrics(self) -> dict[str, float]:
        out = {}
        for s in STRUCTURES:
            try:
                value = float(self._metrics[s].aggregate().item())
            except (ValueError, RuntimeError, TypeError):  # nothing accumulated
                value = math.nan
            out[f"dice_{s}"] = value
            self._metrics[s].reset()
        out["dice"] = float(np.nanmean([out["dice_lung"], out["dice_lesion"]]))
        return out

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        for key, value in self._epoch_metrics().items():
            self.log(f"val/{key}", value if math.isfinite(value) else 0.0)

    def on_test_epoch_start(self) -> None:
        self.test_rows = {}
        self._metrics = self._new_metrics()

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self.test_metrics = self._epoch_metrics()
        for key, value in self.test_metrics.items():
            self.log(f"test/{key}", value)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


__all__ = ["SegmentationTask"]
