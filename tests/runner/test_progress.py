"""The progress bar shows train/loss and the monitored validation metric; one log line per epoch."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import lightning as L
import pytest
import torch

from survlab.models.abmil import ABMIL
from survlab.runner.progress import EpochLog, MetricsProgressBar, epoch_line
from survlab.tasks.survival import SurvivalTask


def test_epoch_line_format() -> None:
    line = epoch_line(3, 20, {"train/loss": 1.23456, "val/cindex": 0.65}, "val/cindex", 0.7, 2, 4.06)
    assert (
        line
        == "epoch 3/20 | train/loss 1.2346 | val/cindex 0.6500 | best val/cindex 0.7000 (epoch 2) | 4.06 s"
    )
    assert epoch_line(1, -1, {}, "val/cindex", None, None, 0.0) == "epoch 1 | 0.00 s"


def test_epoch_log_mode_is_checked() -> None:
    with pytest.raises(ValueError, match="mode must be 'max' or 'min'"):
        EpochLog(mode="maximum")


def test_fit_logs_one_line_per_epoch_and_the_bar_shows_loss_and_metric(
    make_datamodule: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    dm = make_datamodule()
    torch.manual_seed(0)
    task = SurvivalTask(ABMIL(dm.dims), scheduler="none", max_epochs=3)
    task.fit_references(dm.fitted)
    bar = MetricsProgressBar(monitor="val/cindex")
    epochs = EpochLog(monitor="val/loss", mode="min", extra=("val/cindex",))
    trainer = L.Trainer(
        max_epochs=3,
        callbacks=[bar, epochs],
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
    )
    with caplog.at_level(logging.INFO, logger="survlab"):
        trainer.fit(task, datamodule=dm)
    lines = [
        r.getMessage() for r in caplog.records if r.name == "survlab" and r.getMessage().startswith("epoch ")
    ]
    assert [line.split(" | ")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    pattern = re.compile(
        r"train/loss ([\d.]+) \| val/loss ([\d.]+) \| val/cindex ([\d.]+) \| best val/loss ([\d.]+)"
    )
    values = [tuple(float(x) for x in pattern.search(line).groups()) for line in lines]  # type: ignore[union-attr]
    val_losses = [v[1] for v in values]
    assert [v[3] for v in values] == [min(val_losses[: i + 1]) for i in range(3)]  # best so far (min mode)
    last = trainer.callback_metrics
    assert values[-1][0] == pytest.approx(float(last["train/loss"]), abs=6e-5)
    assert values[-1][2] == pytest.approx(float(last["val/cindex"]), abs=6e-5)
    shown = bar.get_metrics(trainer, task)
    assert shown["train/loss"] == f"{float(last['train/loss']):.4f}"
    assert shown["val/cindex"] == f"{float(last['val/cindex']):.4f}"
