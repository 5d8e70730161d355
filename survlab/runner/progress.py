"""What a researcher sees while a run trains: the progress bar's metrics and one log line per epoch.

- `MetricsProgressBar`: Lightning's rich progress bar, showing the last epoch's `train/loss` and the inner-validation
  metric that selects the checkpoint (`monitor`, e.g. `val/cindex`) beside the step counter.
- `EpochLog`: one INFO line per epoch through the `survlab` logger (console and the job's log file):
  ``epoch 3/20 | train/loss 1.2345 | val/cindex 0.6512 | val/loss 1.3021 | best val/cindex 0.6600 (epoch 2) | 4.06 s``

Both are registered in `survlab/conf/callbacks/default.yaml` (`rich_progress_bar`, `epoch_log`).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, RichProgressBar

log = logging.getLogger("survlab")

__all__ = ["EpochLog", "MetricsProgressBar", "epoch_line"]


def _value(metrics: dict[str, Any], key: str) -> float | None:
    """metrics[key] as a float (tensors included), None when absent."""
    if key not in metrics:
        return None
    value = metrics[key]
    return float(value.item() if hasattr(value, "item") else value)


class MetricsProgressBar(RichProgressBar):
    """RichProgressBar that also shows `train/loss` and the validation `monitor` (latest epoch's values)."""

    def __init__(self, monitor: str = "val/cindex", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.monitor = str(monitor)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        for key in ("train/loss", self.monitor):
            value = _value(trainer.callback_metrics, key)
            if value is not None:
                items[key] = f"{value:.4f}"
        return items


def epoch_line(
    epoch: int,
    max_epochs: int,
    metrics: dict[str, float],
    monitor: str,
    best: float | None,
    best_epoch: int | None,
    seconds: float,
) -> str:
    """The one log line of an epoch (1-based `epoch`); `metrics` in display order, e.g. {"train/loss": 1.2}."""
    parts = [f"epoch {epoch}/{max_epochs}" if max_epochs > 0 else f"epoch {epoch}"]
    parts += [f"{k} {v:.4f}" for k, v in metrics.items()]
    if best is not None and math.isfinite(best):
        parts.append(
            f"best {monitor} {best:.4f}" + (f" (epoch {best_epoch})" if best_epoch is not None else "")
        )
    parts.append(f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.0f} s")
    return " | ".join(parts)


class EpochLog(Callback):
    """Logs one line per training epoch (rank 0): epoch, train loss, validation metric(s), best so far, wall time.

    `monitor` / `mode` are the checkpoint-selection metric and direction (`${monitor}`, `${monitor_mode}`);
    `extra` names other logged metrics to show when present (default the validation loss)."""

    def __init__(
        self, monitor: str = "val/cindex", mode: str = "max", extra: tuple[str, ...] = ("val/loss",)
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"EpochLog: mode must be 'max' or 'min', got {mode!r}")
        self.monitor, self.mode, self.extra = str(monitor), mode, tuple(extra)
        self.best: float | None = None
        self.best_epoch: int | None = None
        self._started = time.monotonic()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.monotonic()

    def _update_best(self, value: float | None, epoch: int) -> None:
        if value is None or not math.isfinite(value):
            return
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if better:
            self.best, self.best_epoch = value, epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        epoch = int(trainer.current_epoch) + 1
        metrics = trainer.callback_metrics
        shown = {}
        for key in ("train/loss", self.monitor, *self.extra):
            value = _value(metrics, key)
            if value is not None and key not in shown:
                shown[key] = value
        self._update_best(shown.get(self.monitor), epoch)
        log.info(
            epoch_line(
                epoch,
                int(trainer.max_epochs or -1),
                shown,
                self.monitor,
                self.best,
                self.best_epoch,
                time.monotonic() - self._started,
            )
        )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best, self.best_epoch = state_dict.get("best"), state_dict.get("best_epoch")
