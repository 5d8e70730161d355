"""Test utilities that must be importable by Hydra `_target_` (e.g. to simulate a killed run)."""

from __future__ import annotations

import lightning as L


class KillAtEpoch(L.Callback):
    """Raise at the start of training epoch `epoch` (after the previous epoch's checkpoint was written),
    simulating a job killed mid-run: `+callbacks.kill._target_=survlab.utils.testing.KillAtEpoch +callbacks.kill.epoch=2`."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError(f"simulated kill at the start of epoch {self.epoch}")
