"""`OutcomeTask`: the LightningModule that trains any network returning a `Prediction` on a weighted set of
objectives (survival per endpoint, patient- or slide-level classification) plus the network's auxiliary losses.

Metrics: per-row predictions are collected in validation / test, gathered across DDP ranks, de-duplicated by row
index (the DistributedSampler pads with repeats) and scored once per objective, so DDP metrics equal single-process
metrics. Each objective logs `val/<objective>/<metric>` and `test/<objective>/<metric>`; the FIRST objective (the
primary one) also logs them without the objective name (`val/cindex`, `test/balanced_accuracy`), so a
one-objective run reads as before. `val/loss` is the weighted sum of the objectives' evaluation losses.

Weighting: `fixed` (each objective's `weight`) or `uncertainty` (Kendall et al. 2018: sum_i exp(-s_i) L_i + s_i with
a learnable s_i per objective).

Example (YAML, `model.task`):
    _target_: survlab.tasks.outcome.OutcomeTask
    objectives:
      subtype: {_target_: survlab.tasks.objectives.ClassificationObjective, label: subtype, label_smoothing: 0.1}
    optimizer: adam
    lr: 2.0e-4
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from lightning.fabric.utilities.seed import seed_everything
from torch import Tensor, nn
from torch.optim import Optimizer

from survlab.data.batch import Batch
from survlab.models.base import Prediction, SurvivalNet
from survlab.tasks.base import Task, target_class
from survlab.tasks.objective_base import Objective
from survlab.tasks.objective_survival import SurvivalObjective
from survlab.tasks.optim import (
    INTERVALS,
    OPTIMIZERS,
    SCHEDULES,
    build_optimizer,
    build_scheduler,
    describe_schedule,
    schedules_lr,
)

_log = logging.getLogger(__name__)

__all__ = ["OutcomeTask", "NonFiniteLossError"]


def _spec_name(spec: Any) -> Any:
    """A string option as is; a partial torch class as 'module.Class(key=value, ...)' (for hparams and logs)."""
    if spec is None or isinstance(spec, str):
        return spec
    func = getattr(spec, "func", spec)
    kwargs = ", ".join(f"{k}={v}" for k, v in getattr(spec, "keywords", {}).items())
    return f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', func)}({kwargs})"


class NonFiniteLossError(FloatingPointError):
    """Raised when a training loss is NaN/inf; the message names the batch's case_ids."""


class OutcomeTask(Task):
    """Wraps `net` with `objectives` ({name: Objective}, the first is the primary one), optimiser and metrics.

    After `fit_references(fitted)`, `test_results` (the primary objective's rows) / `test_rows` (per objective)
    and `test_metrics` ({metric: value} of the primary objective plus {"<objective>/<metric>": value} of all) hold
    the test predictions after `trainer.test`. A Cox objective's Breslow baseline (its test IBS) comes from a saved
    one (`fit_references`) or from `set_cox_baseline` (the training patients' rows of survlab.runner.predict's pass).
    """

    REPORTER = "survlab.report.outputs.write_run_outputs"
    FITTED_PREPROCESSING = True

    #: choice-valued constructor options (checked by config_check before any data is read)
    CHOICES = {
        "optimizer": tuple(OPTIMIZERS),
        "scheduler": SCHEDULES,
        "scheduler_interval": INTERVALS,
        "weighting": ("fixed", "uncertainty"),
    }

    def __init__(
        self,
        net: SurvivalNet,
        objectives: dict[str, Objective] | None = None,
        weighting: str = "fixed",
        aux_weight: float = 1.0,
        lr: float = 2e-4,
        weight_decay: float = 1e-5,
        optimizer: str | Callable[..., Optimizer] = "adam",
        scheduler: str | Callable[..., Any] | None = "cosine",
        warmup_epochs: int = 0,
        eta_min: float = 1e-6,
        restart_epochs: int | None = None,
        scheduler_interval: str = "epoch",
        scheduler_monitor: str = "val/loss",
        max_epochs: int = 20,
        seed: int = 0,
        compile: bool | dict[str, Any] = False,
    ) -> None:
        super().__init__()
        if not objectives:
            raise ValueError(
                "model.task.objectives is empty; give at least one objective (survival or classification)"
            )
        if weighting not in self.CHOICES["weighting"]:
            raise ValueError(f"model.task.weighting must be fixed or uncertainty, got {weighting!r}")
        # a partial torch optimiser / scheduler (Hydra `_partial_: true`) is kept as an object, its name in hparams
        # (checkpoints hold only plain values: they load with weights_only=True)
        self.optimizer_spec, self.scheduler_spec = optimizer, scheduler
        self.save_hyperparameters(ignore=["net", "objectives", "optimizer", "scheduler"])
        self.hparams.update(optimizer=_spec_name(optimizer), scheduler=_spec_name(scheduler))
        self.net = net
        self.objectives = nn.ModuleDict(dict(objectives))
        for name, objective in self.objectives.items():
            objective.name = name
        self.log_vars = nn.ParameterDict(
            {n: nn.Parameter(torch.zeros(())) for n in self.objectives} if weighting == "uncertainty" else {}
        )
        self._outputs: dict[str, list[dict[str, dict[str, Tensor]]]] = {"val": [], "test": []}
        self.test_rows: dict[str, dict[str, np.ndarray]] = {}
        self.test_results: dict[str, np.ndarray] | None = None
        self.test_metrics: dict[str, float] = {}
        self.test_notes: dict[str, str] = {}  # {metric key of test_metrics: why it is NaN}

    @staticmethod
    def _objective_classes(options: Mapping[str, Any]) -> list[tuple[str, Any, type]]:
        """(name, config node, class) of each objective of a `model.task` node, in order (the first is primary)."""
        objectives = options.get("objectives") or {}
        return [
            (str(name), node, target_class(node.get("_target_"), f"model.task.objectives.{name}"))
            for name, node in objectives.items()
        ]

    @classmethod
    def config_metric_names(cls, options: Mapping[str, Any]) -> list[str]:
        """The loss, the primary objective's metrics, then "<objective>/<metric>" of every objective (an objective's
        names may depend on its options, e.g. auc_<h> per horizon)."""
        names = ["loss"]
        for i, (name, node, objective) in enumerate(cls._objective_classes(options)):
            try:
                metrics = list(objective.config_metric_names(node))
            except ValueError as err:
                raise ValueError(f"model.task.objectives.{name}: {err}") from None
            names += (metrics if i == 0 else []) + [f"{name}/{m}" for m in metrics]
        return names

    @classmethod
    def config_primary_metric(cls, options: Mapping[str, Any]) -> str:
        """The primary objective's headline metric: cindex (survival), balanced_accuracy (classification)."""
        classes = cls._objective_classes(options)  # none: the constructor says so, with the fix
        return classes[0][2].primary_metric if classes else "cindex"

    @classmethod
    def config_metric_mode(cls, options: Mapping[str, Any], metric: str) -> str:
        """The direction of `metric` ("<objective>/<leaf>", or a bare leaf of the primary objective) from the
        objective class's `mode`."""
        head, _, leaf = metric.rpartition("/")
        if leaf == "loss":
            return "min"
        for i, (name, _, objective) in enumerate(cls._objective_classes(options)):
            if head == name or (not head and i == 0):
                return objective.mode(leaf)
        return "max"

    @property
    def primary(self) -> Objective:
        return next(iter(self.objectives.values()))

    def metric_names(self) -> list[str]:
        """Every validation metric this task logs (for `monitor`)."""
        names = ["loss", *self.primary.metric_names]
        for name, objective in self.objectives.items():
            names += [f"{name}/{m}" for m in objective.metric_names]
        return names

    def fit_references(self, fitted: Any) -> None:
        """Training-fold quantities every objective needs (bin edges, training outcomes, class counts, a saved Cox
        baseline) from the fold's `FoldPreprocessing` (survlab.data.fitted; `dm.fitted` or a run's
        preprocessing.json), never from the data module."""
        for name, objective in self.objectives.items():
            objective.fit_reference(fitted)
            saved = (getattr(fitted, "cox_baseline", None) or {}).get(name)
            if saved and isinstance(objective, SurvivalObjective) and objective.kind == "cox":
                objective.set_baseline(saved["train_risk"], saved["train_time"], saved["train_event"])

    # ----------------------------------------------------------------- loss
    def forward(self, batch: Batch) -> Prediction:
        """The network's prediction; with `compile` (true, or torch.compile kwargs such as {mode: max-autotune}, plus
        `same_random: false` to let inductor draw its own dropout masks), through `torch.compile(net, dynamic=True)`
        built on first use. The compiled wrapper is kept outside the
        module tree, so checkpoints hold the plain network's weights either way."""
        if not self.hparams.get("compile"):
            return self.net(batch)
        compiled = self.__dict__.get("_compiled_net")
        if compiled is None:
            spec = dict(self.hparams["compile"]) if isinstance(self.hparams["compile"], Mapping) else {}
            # inductor draws dropout masks from its own generator: a compiled run would train on other random
            # masks than the eager run of the same seed (different results, not just float noise).
            # same_random (default true) makes it draw eager's numbers (inductor's fallback_random).
            self.__dict__["_compile_same_random"] = bool(spec.pop("same_random", True))
            compiled = torch.compile(self.net, **{"dynamic": True, **spec})
            self.__dict__["_compiled_net"] = compiled
        if self.__dict__["_compile_same_random"]:
            import torch._inductor.config as inductor_config

            with inductor_config.patch(fallback_random=True):
                return compiled(batch)
        return compiled(batch)

    def compute_loss(self, pred: Prediction, batch: Batch, eval_mode: bool = False) -> Tensor:
        """Weighted objective losses (objectives without a labelled row in the batch add nothing) + aux losses."""
        total: Tensor | None = None
        for name, objective in self.objectives.items():
            loss = objective.loss(pred, batch, eval_mode)
            if loss is None:
                continue
            if name in self.log_vars:
                loss = torch.exp(-self.log_vars[name]) * loss + self.log_vars[name]
            else:
                loss = objective.weight * loss if objective.weight != 1.0 else loss
            total = loss if total is None else total + loss
        if total is None:  # no labelled row for any objective: a zero that keeps the graph
            total = sum(p.sum() for p in self.net.parameters()) * 0.0
        for aux in pred.aux_losses.values():
            total = total + self.hparams.aux_weight * aux
        return total

    def on_train_epoch_start(self) -> None:
        # Re-seed every epoch from (seed, epoch): dropout of epoch e is then identical whether the run was
        # uninterrupted or resumed from the checkpoint of epoch e-1 (sampler and patch subsets seed themselves).
        seed_everything(self.hparams.seed * 10_007 + self.current_epoch, workers=True, verbose=False)

    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        # A run resumed from a checkpoint written inside an epoch (e.g. trainer.val_check_interval < 1) starts at
        # batch k > 0 of it without on_train_epoch_start: continue the RNG stream the checkpoint recorded, so the
        # dropout of batches k.. is the uninterrupted run's.
        state, self._resume_rng = getattr(self, "_resume_rng", None), None
        if state is not None and batch_idx > 0:
            torch.set_rng_state(state["cpu"])
            if state.get("cuda") and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda"])

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        pred = self(batch)
        loss = self.compute_loss(pred, batch)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite training loss ({loss.item()}) at epoch {self.current_epoch}, batch {batch_idx}, "
                f"case_ids {batch.case_ids}; check these patients' inputs, lower model.task.lr, or use trainer.precision=32"
            )
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(batch), sync_dist=True)
        return loss

    # ----------------------------------------------------------------- evaluation
    def _log_eval_loss(self, pred: Prediction, batch: Batch, stage: str) -> None:
        if any(isinstance(o, SurvivalObjective) and o.kind == "cox" for o in self.objectives.values()):
            return  # the Cox likelihood of an evaluation batch depends on how patients were batched
        if isinstance(self.primary, SurvivalObjective) and self.primary._outputs(pred)[0] is None:
            return  # a Cox-only primary: no hazard logits, no per-patient evaluation loss
        self.log(
            f"{stage}/loss",
            self.compute_loss(pred, batch, eval_mode=True),
            on_epoch=True,
            batch_size=len(batch),
            sync_dist=True,
        )

    def _eval_step(self, batch: Batch, stage: str) -> Prediction:
        pred = self(batch)
        self._log_eval_loss(pred, batch, stage)
        self._outputs[stage].append(
            {
                name: {k: v.detach() for k, v in objective.collect(pred, batch).items()}
                for name, objective in self.objectives.items()
            }
        )
        return pred

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> Prediction:  # type: ignore[override]
        """The batch's rows (gathered in on_test_epoch_end); the Prediction goes to the callbacks'
        on_test_batch_end (survlab.runner.predict keeps the attention of this same forward call)."""
        return self._eval_step(batch, "test")

    def _gather(self, stage: str) -> dict[str, dict[str, np.ndarray]]:
        """Per objective: concatenate this rank's rows, gather all ranks, drop DistributedSampler duplicates; sorted
        by row index."""
        outs, self._outputs[stage] = self._outputs[stage], []
        rows = {}
        for name in self.objectives:
            local = {k: torch.cat([o[name][k] for o in outs]) for k in outs[0][name]} if outs else {}
            if self.trainer is not None and self.trainer.world_size > 1:
                local = self._all_gather_rows(local)
            arrays = {k: v.cpu().numpy() for k, v in local.items()}
            if arrays:
                _, first = np.unique(arrays["index"], return_index=True)
                arrays = {k: v[first] for k, v in arrays.items()}
            rows[name] = arrays
        return rows

    def _all_gather_rows(self, local: dict[str, Tensor]) -> dict[str, Tensor]:
        """all_gather of rows whose count may differ between ranks (slide rows, masked labels): pad to the max."""
        n = torch.tensor([len(local["index"])], device=self.device)
        n_max = int(self.all_gather(n).max())
        padded = {}
        for k, v in local.items():
            v = v.to(self.device)
            pad = torch.full(
                (n_max - len(v), *v.shape[1:]), -1 if k == "index" else 0, dtype=v.dtype, device=v.device
            )
            padded[k] = torch.cat([v, pad])
        gathered = self.all_gather(padded)  # each [world, n_max, ...]
        flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in gathered.items()}
        keep = flat["index"] >= 0
        return {k: v[keep] for k, v in flat.items()}

    def score_rows(self, rows: dict[str, dict[str, np.ndarray]]) -> dict[str, float]:
        """{metric: value} of the primary objective and {"<objective>/<metric>": value} of every objective."""
        out: dict[str, float] = {}
        for i, (name, objective) in enumerate(self.objectives.items()):
            metrics = objective.score(rows[name]) if len(rows[name].get("index", ())) else {}
            if i == 0:
                out.update(metrics)
            out.update({f"{name}/{k}": v for k, v in metrics.items()})
        return out

    def metric_notes(
        self, rows: dict[str, dict[str, np.ndarray]], metrics: dict[str, float]
    ) -> dict[str, str]:
        """{key of `metrics` (= score_rows(rows)): why it is NaN}, same keys as `_score` (primary unprefixed too)."""
        out: dict[str, str] = {}
        for i, (name, objective) in enumerate(self.objectives.items()):
            mine = {k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith(f"{name}/")}
            if len(rows[name].get("index", ())):
                notes = objective.notes(rows[name], mine)
            else:
                notes = {k: "not computable: no patient of this part has this target" for k in mine}
            if i == 0:
                out.update(notes)
            out.update({f"{name}/{k}": v for k, v in notes.items()})
        return out

    def on_validation_epoch_end(self) -> None:
        if not self._outputs["val"]:
            return
        metrics = self.score_rows(self._gather("val"))
        for name, objective in self.objectives.items():
            keys = [f"{name}/{m}" for m in objective.metric_names]
            if objective is self.primary:
                keys = [*objective.metric_names, *keys]
            for key in keys:
                value = metrics.get(key, math.nan)
                # NaN would poison checkpoint selection: an undefined primary metric counts as chance level
                if key.rsplit("/", 1)[-1] == objective.primary_metric and not math.isfinite(value):
                    value = objective.undefined_value
                self.log(f"val/{key}", float(value), sync_dist=False, rank_zero_only=False)

    # ----------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["survlab_rng"] = {
            "cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        }
        checkpoint["survlab_reference"] = {
            name: {
                "bin_edges": o.bin_edges.tolist(),
                "train_time": o.train_time.tolist(),
                "train_event": o.train_event.astype(int).tolist(),
            }
            for name, o in self.objectives.items()
            if isinstance(o, SurvivalObjective) and o.bin_edges is not None and o.train_time is not None
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._resume_rng = checkpoint.get("survlab_rng")  # used only when training resumes inside an epoch
        for name, ref in (checkpoint.get("survlab_reference") or {}).items():
            objective = self.objectives[name] if name in self.objectives else None
            if (
                isinstance(objective, SurvivalObjective)
                and objective.train_time is None
                and isinstance(ref, dict)
            ):
                objective.set_reference(
                    np.array(ref["bin_edges"]), np.array(ref["train_time"]), np.array(ref["train_event"])
                )

    def set_cox_baseline(self, rows: Mapping[str, dict[str, np.ndarray]]) -> None:
        """Cox objectives have no survival curve of their own: their Breslow baseline (needed by the integrated Brier
        score) is the TRAINING patients' risks of the selected model with their outcomes. `rows`: those patients'
        rows of the run's one prediction pass (survlab.runner.predict, before the test batches), per objective as
        `Objective.collect` gives them; nothing here runs the network."""
        for name, objective in self.objectives.items():
            r = rows.get(name) or {}
            if not (isinstance(objective, SurvivalObjective) and objective.kind == "cox") or not len(
                r.get("index", ())
            ):
                continue
            order = np.argsort(r["index"])
            # outcomes as the batches carry them (float64: the cohort table's exact values; NaN = lacks the endpoint)
            ok = np.isfinite(r["time"][order])
            objective.set_baseline(
                r["risk"][order][ok], r["time"][order][ok].astype(float), r["event"][order][ok].astype(bool)
            )

    def on_test_epoch_start(self) -> None:
        missing = [
            n
            for n, o in self.objectives.items()
            if isinstance(o, SurvivalObjective) and o.kind == "cox" and o.train_risk is None
        ]
        if missing:
            _log.warning(
                "Cox objective(s) %s have no Breslow baseline (the training patients' risks): their test IBS is NaN; "
                "test through survlab.runner.predict.run_test_pass, which sets it",
                ", ".join(missing),
            )

    def on_test_epoch_end(self) -> None:
        self.test_rows = self._gather("test")
        self.test_results = self.test_rows[next(iter(self.objectives))]
        self.test_metrics = self.score_rows(self.test_rows)
        self.test_notes = self.metric_notes(self.test_rows, self.test_metrics)
        for key, note in self.test_notes.items():
            _log.warning("test %s is NaN: %s", key, note)
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
            raise ValueError(
                "model.task.scheduler / warmup_epochs need a train dataloader with a length "
                "(an epoch of known size); use scheduler=none and warmup_epochs=0 for an iterable one"
            )
        return max(1, math.ceil(batches / trainer.accumulate_grad_batches))

    def configure_optimizers(self) -> Any:
        """String options use survlab's factories (warm-up + cosine / restarts, per optimiser step); a partial torch
        optimiser (`{_target_: torch.optim.AdamW, _partial_: true, lr: ...}`) gets the parameters, a partial torch
        scheduler the optimiser (stepped every `scheduler_interval`, ReduceLROnPlateau on `scheduler_monitor`)."""
        hp = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        spec = self.optimizer_spec
        opt = spec(params) if callable(spec) else build_optimizer(params, spec, hp.lr, hp.weight_decay)
        if callable(self.scheduler_spec):
            sched = self.scheduler_spec(optimizer=opt)
            return {
                "optimizer": opt,
                "lr_scheduler": {
                    "scheduler": sched,
                    "interval": hp.scheduler_interval,
                    "monitor": hp.scheduler_monitor,
                },
            }
        max_epochs = self.trainer.max_epochs if (self.trainer.max_epochs or 0) > 0 else hp.max_epochs
        if not schedules_lr(self.scheduler_spec, hp.warmup_epochs):
            _log.info("%s", describe_schedule("none", opt.param_groups[0]["lr"], max_epochs))
            return opt
        # scaled to this run: warm-up over its own steps per epoch, the cosine over its max_epochs (survlab.tasks.optim)
        schedule = dict(
            name=self.scheduler_spec,
            max_epochs=max_epochs,
            warmup_epochs=hp.warmup_epochs,
            eta_min=hp.eta_min,
            steps_per_epoch=self.optimizer_steps_per_epoch(),
            restart_epochs=hp.restart_epochs,
            interval=hp.scheduler_interval,
        )
        sched = build_scheduler(opt, **schedule)
        _log.info("%s", describe_schedule(base_lr=opt.param_groups[0]["lr"], **schedule))
        # stepped after every optimiser step: lr_factor itself holds the decay per epoch when interval == "epoch"
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
