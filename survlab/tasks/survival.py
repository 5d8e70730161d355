"""`SurvivalTask`: the LightningModule that trains any survival network returning a `Prediction`.

Loss: discrete-time NLL (MCAT form, `alpha`) on `hazard_logits`, or Cox partial likelihood on `risk`.
Metrics: per-patient predictions are collected in validation/test, gathered across DDP ranks, de-duplicated by
patient index (DistributedSampler pads with repeats) and scored once with `survlab.eval.metrics` —
so DDP metrics equal single-process metrics on the same predictions.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.seed import seed_everything
from torch import Tensor

from survlab.data.batch import Batch
from survlab.eval.metrics import breslow_survival, default_eval_times, survival_at_times, survival_metrics
from survlab.models.base import Prediction, SurvivalNet, risk_score
from survlab.tasks.losses import cox_partial_likelihood, nll_discrete_survival
from survlab.tasks.optim import (
    INTERVALS,
    OPTIMIZERS,
    SCHEDULES,
    build_optimizer,
    build_scheduler,
    schedules_lr,
)


class NonFiniteLossError(FloatingPointError):
    """Raised when a training loss is NaN/inf; the message names the batch's case_ids."""


class SurvivalTask(L.LightningModule):
    """Wraps `net` (a `SurvivalNet`) with a survival loss, optimiser and metrics.

    After `set_reference(...)` (bin edges and training outcomes, needed for IPCW metrics and survival curves),
    `test_results` holds the per-patient test predictions after `trainer.test`.
    """

    #: metrics logged as val/<name> and test/<name> (config_check validates `monitor` / `optimized_metric` with it)
    METRICS = ("cindex", "cindex_uno", "auc_td", "ibs")
    #: choice-valued constructor options (checked before any data is read)
    CHOICES = {"loss": ("nll", "cox"), "optimizer": tuple(OPTIMIZERS), "scheduler": SCHEDULES,
               "scheduler_interval": INTERVALS}

    def __init__(
        self,
        net: SurvivalNet,
        loss: str = "nll",
        alpha: float = 0.0,
        eval_alpha: float = 0.0,
        lr: float = 2e-4,
        weight_decay: float = 1e-5,
        optimizer: str = "adam",
        scheduler: str = "cosine",
        warmup_epochs: int = 0,
        eta_min: float = 1e-6,
        restart_epochs: int | None = None,
        scheduler_interval: str = "epoch",
        max_epochs: int = 20,
        seed: int = 0,
        aux_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if loss not in ("nll", "cox"):
            raise ValueError(f"model.task.loss must be 'nll' or 'cox', got {loss!r}")
        self.save_hyperparameters(ignore=["net"])
        self.net = net
        self.bin_edges: np.ndarray | None = None
        self.train_time: np.ndarray | None = None
        self.train_event: np.ndarray | None = None
        self.train_risk: np.ndarray | None = None  # Cox models: training risks for a Breslow baseline
        self._outputs: dict[str, list[dict[str, Tensor]]] = {"val": [], "test": []}
        self.test_results: dict[str, np.ndarray] | None = None
        self.test_metrics: dict[str, float] = {}

    # ----------------------------------------------------------------- references
    def set_reference(self, bin_edges: np.ndarray, train_time: np.ndarray, train_event: np.ndarray) -> None:
        """Training-patient quantities used by metrics (IPCW censoring KM, survival curve times)."""
        self.bin_edges = np.asarray(bin_edges, dtype=np.float64)
        self.train_time = np.asarray(train_time, dtype=np.float64)
        self.train_event = np.asarray(train_event, dtype=bool)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["survlab_reference"] = {
            "bin_edges": None if self.bin_edges is None else self.bin_edges.tolist(),
            "train_time": None if self.train_time is None else self.train_time.tolist(),
            "train_event": None if self.train_event is None else self.train_event.astype(int).tolist(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        ref = checkpoint.get("survlab_reference")
        if ref and ref["bin_edges"] is not None and self.bin_edges is None:
            self.set_reference(np.array(ref["bin_edges"]), np.array(ref["train_time"]), np.array(ref["train_event"]))

    # ----------------------------------------------------------------- forward / loss
    def forward(self, batch: Batch) -> Prediction:
        return self.net(batch)

    def compute_loss(self, pred: Prediction, batch: Batch, alpha: float) -> Tensor:
        """Survival loss (+ the network's auxiliary losses, weighted by `aux_weight`)."""
        if self.hparams.loss == "nll":
            if pred.hazard_logits is None:
                raise ValueError(f"{type(self.net).__name__} returns no hazard_logits; use model.task.loss=cox")
            loss = nll_discrete_survival(pred.hazard_logits, batch.time_bin, batch.event, alpha=alpha)
        else:
            loss = cox_partial_likelihood(risk_score(pred), batch.time, batch.event)
        for aux in pred.aux_losses.values():
            loss = loss + self.hparams.aux_weight * aux
        return loss

    def on_train_epoch_start(self) -> None:
        # Re-seed every epoch from (seed, epoch): sampler order, patch sampling and dropout of epoch e are then
        # identical whether the run was uninterrupted or resumed from the checkpoint of epoch e-1.
        seed_everything(self.hparams.seed * 10_007 + self.current_epoch, workers=True, verbose=False)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        pred = self(batch)
        loss = self.compute_loss(pred, batch, self.hparams.alpha)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite training loss ({loss.item()}) at epoch {self.current_epoch}, batch {batch_idx}, "
                f"case_ids {batch.case_ids}; check these patients' inputs, lower model.task.lr, or use trainer.precision=32"
            )
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(batch), sync_dist=True)
        return loss

    # ----------------------------------------------------------------- evaluation
    def _eval_step(self, batch: Batch, stage: str) -> None:
        pred = self(batch)
        if self.hparams.loss == "nll" and pred.hazard_logits is not None:
            self.log(f"{stage}/loss", self.compute_loss(pred, batch, self.hparams.eval_alpha),
                     on_epoch=True, batch_size=len(batch), sync_dist=True)
        out = {"index": batch.index, "risk": risk_score(pred).float(), "time": batch.time, "event": batch.event}
        if pred.hazard_logits is not None:
            out["hazard_logits"] = pred.hazard_logits.float()
        self._outputs[stage].append({k: v.detach() for k, v in out.items()})

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _gather(self, stage: str) -> dict[str, np.ndarray]:
        """Concatenate this rank's outputs, gather all ranks, drop DistributedSampler duplicates; sorted by index."""
        outs = self._outputs[stage]
        self._outputs[stage] = []
        local = {k: torch.cat([o[k] for o in outs]) for k in outs[0]} if outs else {}
        if self.trainer is not None and self.trainer.world_size > 1:
            local = {k: v.to(self.device) for k, v in local.items()}
            gathered = self.all_gather(local)  # each [world, n_local, ...]
            local = {k: v.reshape(-1, *v.shape[2:]) for k, v in gathered.items()}
        arrays = {k: v.cpu().numpy() for k, v in local.items()}
        _, first = np.unique(arrays["index"], return_index=True)
        return {k: v[first] for k, v in arrays.items()}

    def _score(self, res: dict[str, np.ndarray]) -> dict[str, float]:
        surv = None
        if self.train_time is None:
            raise RuntimeError("SurvivalTask.set_reference(...) was not called; run.py sets it from the data module")
        eval_times = default_eval_times(res["time"], res["event"], self.train_time, self.train_event)
        if eval_times is not None and len(eval_times):
            if "hazard_logits" in res and self.bin_edges is not None:
                surv = survival_at_times(res["hazard_logits"], self.bin_edges, eval_times)
            elif self.train_risk is not None:
                surv = breslow_survival(self.train_risk, self.train_time, self.train_event, res["risk"], eval_times)
        return survival_metrics(res["risk"], res["time"], res["event"], self.train_time, self.train_event,
                                surv_at_times=surv, eval_times=eval_times)

    def on_test_epoch_start(self) -> None:
        # Cox models have no survival curve of their own: fit a Breslow baseline on the TRAINING patients'
        # predictions of the selected model (needed for the integrated Brier score).
        if self.hparams.loss == "cox" and self.trainer is not None:
            dm = getattr(self.trainer, "datamodule", None)
            if dm is not None and hasattr(dm, "train_eval_dataloader"):
                risks, order = [], []
                with torch.no_grad():
                    for batch in dm.train_eval_dataloader():
                        batch = batch.to(self.device)
                        risks.append(risk_score(self(batch)).float().cpu())
                        order.append(batch.index.cpu())
                index = torch.cat(order).numpy()
                train_ids = np.argsort(index)
                self.train_risk = torch.cat(risks).numpy()[train_ids]
                rows = dm.cohort.rows([dm.full_cohort.case_ids[i] for i in index[train_ids]])
                self.train_time = rows["time"].to_numpy(float)
                self.train_event = rows["event"].to_numpy(bool)

    def on_validation_epoch_end(self) -> None:
        if not self._outputs["val"]:
            return
        res = self._gather("val")
        metrics = self._score(res)
        for key in ("cindex", "cindex_uno", "auc_td", "ibs"):
            value = metrics.get(key, math.nan)
            # NaN would poison checkpoint selection; an undefined C-index counts as chance level
            if key == "cindex" and not math.isfinite(value):
                value = 0.5
            self.log(f"val/{key}", float(value), sync_dist=False, rank_zero_only=False)

    def on_test_epoch_end(self) -> None:
        res = self._gather("test")
        self.test_results = res
        self.test_metrics = self._score(res)
        for key, value in self.test_metrics.items():
            self.log(f"test/{key}", float(value), sync_dist=False)

    # ----------------------------------------------------------------- optimisation
    def optimizer_steps_per_epoch(self) -> int:
        """Optimiser steps the trainer runs per training epoch: ceil(train batches / accumulate_grad_batches), with
        the trainer's limits (limit_train_batches, fast_dev_run) applied; loads the train dataloader if needed."""
        trainer = self.trainer
        if trainer.train_dataloader is None:
            trainer.fit_loop.setup_data()  # what trainer.estimated_stepping_batches does before counting
        batches = trainer.num_training_batches
        if not math.isfinite(batches):
            raise ValueError("model.task.scheduler / warmup_epochs need a train dataloader with a length "
                             "(an epoch of known size); use scheduler=none and warmup_epochs=0 for an iterable one")
        return max(1, math.ceil(batches / trainer.accumulate_grad_batches))

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        opt = build_optimizer(self.parameters(), hp.optimizer, hp.lr, hp.weight_decay)
        if not schedules_lr(hp.scheduler, hp.warmup_epochs):
            return opt
        max_epochs = self.trainer.max_epochs if (self.trainer.max_epochs or 0) > 0 else hp.max_epochs
        sched = build_scheduler(opt, hp.scheduler, max_epochs, hp.warmup_epochs, hp.eta_min,
                                steps_per_epoch=self.optimizer_steps_per_epoch(), restart_epochs=hp.restart_epochs,
                                interval=hp.scheduler_interval)
        # stepped after every optimiser step: lr_factor itself holds the decay per epoch when interval == "epoch"
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
