"""The one prediction pass of a run's selected model: the network runs ONCE per patient of each set it is needed on,
and every writer (predictions.csv, KM cutoffs, attention CSV / h5, subgroups, sites, external cohorts) reads the
rows (`survlab.report.rows.PatientRows`) instead of running it again.

- `run_test_pass(task, trainer, datamodule=dm, ckpt_path=ckpt, attention=spec)`: `trainer.test` of the selected weights.
  Its own forward calls give the test rows (gathered per patient across DDP ranks by the task) and, when asked, the
  attention top-k records and every slide's patch attention (`PredictionPass`, a callback reading what `test_step`
  returns). Before the test batches the same callback runs the fold's training patients once (inner-train and
  inner-validation, survival tasks only): their rows give the Cox Breslow baseline (inner-train rows, needed by the
  test IBS) and the KM risk-group cutoffs (both parts).
- `predict(task, loaders)`: the same pass outside a trainer (a cohort scored for predictions only, a pipeline
  stage's calibration and test patients; `targets=True` keeps what the batches carried, per patient).

    parts = run_test_pass(task, trainer, datamodule=dm, ckpt_path=ckpt, attention=attention_spec(cfg, dm))
    parts["test"].objectives["survival"]["risk"], parts["train"], parts["test"].attention["patches"]
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from survlab.data.batch import Batch
from survlab.models.base import Prediction
from survlab.models.precision import at_least_fp32
from survlab.report.attention import attention_records
from survlab.report.attention_h5 import slide_attention
from survlab.report.rows import ATTENTION_TABLES, PatientRows, SlideAttention
from survlab.tasks.objective_base import Objective
from survlab.tasks.objective_classification import ClassificationObjective
from survlab.tasks.objective_horizon import HorizonObjective
from survlab.tasks.objective_survival import SurvivalObjective

log = logging.getLogger("survlab.run")

__all__ = ["AttentionSpec", "PredictionPass", "attention_spec", "predict", "run_test_pass"]


@dataclass
class AttentionSpec:
    """What attention a pass keeps: top-k tables (`top_k`; None: none) and every slide's full patch attention (`h5`),
    with the cohort facts the records name (gene-group names, slide ids per case, patches per slide file)."""

    top_k: int | None
    h5: bool
    gene_names: tuple[str, ...] | None
    slides_of: dict[str, Sequence[str]]
    n_patches: dict[str, int] | None

    @classmethod
    def of(cls, datamodule: Any, top_k: int | None = 10, h5: bool = False) -> AttentionSpec | None:
        """For the scored part of `datamodule` (None when neither is asked for)."""
        if top_k is None and not h5:
            return None
        slides_of: dict[str, Sequence[str]] = {}
        # the FILTERED cohort: batch.slide_index counts the slides that have features, not those the CSV lists
        cohort = getattr(datamodule, "cohort", None)
        if cohort is not None and "slide_ids" in cohort.table:
            slides_of = dict(zip(cohort.table["case_id"], cohort.table["slide_ids"], strict=True))
        return cls(
            top_k=top_k,
            h5=h5,
            gene_names=getattr(getattr(datamodule, "dims", None), "genomic_names", None),
            slides_of=slides_of,
            n_patches=getattr(datamodule, "slide_patches", None),
        )


def attention_spec(cfg: Any, datamodule: Any) -> AttentionSpec | None:
    """The attention a job's config asks for: `export_attention` (top-k tables, `attention_top_k`, default on) and
    `export_attention_h5` (per-slide heatmap files, default off)."""
    top_k = int(cfg.get("attention_top_k", 10)) if cfg.get("export_attention", True) else None
    return AttentionSpec.of(datamodule, top_k=top_k, h5=bool(cfg.get("export_attention_h5", False)))


def _outputs_only(objective: Objective, pred: Prediction, batch: Batch) -> dict[str, Tensor] | None:
    """An objective's outputs for EVERY patient of the batch, without targets (a cohort without outcomes): risk
    (+ hazard_logits), horizon probs, patient-level class probs; None for slide-level classification."""
    if isinstance(objective, SurvivalObjective):
        hz, risk = objective._outputs(pred)
        out = {"index": batch.index, "risk": objective._risk(hz, risk).float()}
        if hz is not None:
            out["hazard_logits"] = hz.float()
        return out
    if isinstance(objective, HorizonObjective):
        return {"index": batch.index, "probs": objective.probabilities(objective._logits(pred)).float()}
    if isinstance(objective, ClassificationObjective) and objective.level == "patient":
        logits = pred.class_logits[str(objective.label)]  # resolved by fit_reference
        return {"index": batch.index, "probs": torch.softmax(at_least_fp32(logits), dim=-1)}
    return None


class _Rows:
    """The rows of one pass, batch by batch: per objective (`collect`, or `_outputs_only`) and attention."""

    def __init__(
        self,
        objectives: Mapping[str, Objective] | None,
        spec: AttentionSpec | None,
        outcomes: bool = True,
        targets: bool = False,
    ) -> None:
        self.objectives, self.spec, self.outcomes = dict(objectives or {}), spec, outcomes
        self.parts: dict[str, list[dict[str, np.ndarray]]] = {n: [] for n in self.objectives}
        self.targets: list[dict[str, np.ndarray]] | None = [] if targets else None
        # per batch: (its case ids, {table: records}, slide attention); de-duplicated by case across DDP ranks
        self.chunks: list[tuple[list[str], dict[str, list[dict]], list[SlideAttention]]] = []

    def add(self, pred: Prediction, batch: Batch) -> None:
        for name, objective in self.objectives.items():
            out = objective.collect(pred, batch) if self.outcomes else _outputs_only(objective, pred, batch)
            if out is not None:
                self.parts[name].append({k: v.detach().cpu().numpy() for k, v in out.items()})
        if self.targets is not None:
            fields = {
                "index": batch.index,
                "time": batch.time,
                "event": batch.event,
                "time_bin": batch.time_bin,
            }
            fields.update({f"label:{k}": v for k, v in batch.labels.items()})
            self.targets.append(
                {"case_id": np.asarray(batch.case_ids, dtype=object)}
                | {k: v.detach().cpu().numpy() for k, v in fields.items()}
            )
        self.add_attention(pred, batch)

    def add_attention(self, pred: Prediction, batch: Batch) -> None:
        spec = self.spec
        if spec is None or not pred.attention:
            return
        host = batch.to("cpu")
        attention = {k: v.detach().float().cpu() for k, v in pred.attention.items() if torch.is_tensor(v)}
        tables = (
            attention_records(host, attention, spec.top_k, spec.gene_names, spec.slides_of.get)
            if spec.top_k is not None
            else {}
        )
        slides = slide_attention(host, attention, spec.slides_of, spec.n_patches) if spec.h5 else []
        self.chunks.append((list(batch.case_ids), tables, slides))

    def objective_rows(self) -> dict[str, dict[str, np.ndarray]]:
        """Per objective: the batches' rows, each row index once, sorted by index (as `OutcomeTask._gather`)."""
        out: dict[str, dict[str, np.ndarray]] = {}
        for name, parts in self.parts.items():
            if not parts:
                out[name] = {}
                continue
            arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            _, first = np.unique(arrays["index"], return_index=True)
            out[name] = {k: v[first] for k, v in arrays.items()}
        return out

    def attention(self, trainer: L.Trainer | None) -> tuple[dict[str, list[dict]], list[SlideAttention]]:
        """The attention of the pass, each patient once, in pass order; under DDP every rank's (the sampler's
        padded repeats dropped)."""
        chunks = self.chunks
        if trainer is not None and trainer.world_size > 1 and torch.distributed.is_initialized():
            everyone: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(everyone, chunks)
            chunks = [chunk for rank in everyone for chunk in rank]
        tables: dict[str, list[dict]] = {t: [] for t in ATTENTION_TABLES}
        slides: list[SlideAttention] = []
        seen_cases: set[str] = set()
        seen_slides: set[str] = set()
        for cases, chunk, slide_rows in chunks:
            new = set(cases) - seen_cases
            for table, records in chunk.items():
                tables[table] += [r for r in records if r["case_id"] in new]
            slides += [s for s in slide_rows if s[0] not in seen_slides]  # a slide belongs to one patient
            seen_cases |= new
            seen_slides |= {s[0] for s in slide_rows}
        return {t: r for t, r in tables.items() if r}, slides

    def finish(self, trainer: L.Trainer | None = None) -> PatientRows:
        tables, slides = self.attention(trainer)
        targets = (
            {k: np.concatenate([t[k] for t in self.targets]) for k in self.targets[0]} if self.targets else {}
        )
        return PatientRows(self.objective_rows(), tables, slides, targets)


@torch.no_grad()
def _run(task: Any, loaders: Iterable[Any], rows: _Rows, trainer: Any = None) -> None:
    """The network once per batch of each loader, in evaluation mode (restored after), on the task's device, in
    `trainer`'s test precision when given (as trainer.test's own pass: bf16 rows match the test rows)."""
    was_training = task.training
    task.eval()
    device = next(task.parameters()).device
    context = (
        trainer.precision_plugin.test_step_context() if trainer is not None else contextlib.nullcontext()
    )
    try:
        with context:
            for loader in loaders:
                for batch in loader:
                    batch = batch.to(device)
                    rows.add(task(batch), batch)
    finally:
        task.train(was_training)


def predict(
    task: Any,
    loaders: Iterable[Any],
    attention: AttentionSpec | None = None,
    outcomes: bool = True,
    targets: bool = False,
    trainer: Any = None,
) -> PatientRows:
    """One pass of `task` (an OutcomeTask: network + objectives; a bare network gives attention only) over the
    patients of `loaders` -> their rows. `outcomes=False`: every patient's outputs without targets (a cohort without
    outcomes); `targets`: also what the batches carried per patient (`PatientRows.targets`); `trainer`: run in its
    test precision."""
    rows = _Rows(getattr(task, "objectives", None), attention, outcomes, targets)
    _run(task, loaders, rows, trainer)
    return rows.finish()


def _training_loaders(datamodule: Any) -> dict[str, Callable[[], Any]]:
    """The evaluation loaders of the fold's training parts: inner-train, inner-validation (when not empty)."""
    datasets = getattr(datamodule, "datasets", None) or {}
    out: dict[str, Callable[[], Any]] = {}
    if "train" in datasets and hasattr(datamodule, "train_eval_dataloader"):
        out["train"] = datamodule.train_eval_dataloader
        if "val" in datasets and len(datasets["val"]):
            out["val"] = datamodule.val_dataloader
    return out


class PredictionPass(Callback):
    """Attached to one `trainer.test` call: the training patients' rows before the test batches, and the attention
    of the test batches' own forward calls (`OutcomeTask.test_step` returns its Prediction)."""

    def __init__(self, training: Mapping[str, Callable[[], Any]], attention: AttentionSpec | None) -> None:
        self.training, self.spec = dict(training), attention
        self.parts: dict[str, PatientRows] = {}
        self._test = _Rows(None, attention)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        objectives = getattr(pl_module, "objectives", {})
        survival = [o for o in objectives.values() if isinstance(o, SurvivalObjective)]
        cox = any(o.kind == "cox" for o in survival)
        for part, loader in self.training.items():
            # inner-train: the Cox baseline (every rank scores the test metrics) and the KM cutoffs (rank 0 writes
            # them); inner-validation: the KM cutoffs only
            if (part == "train" and cox) or (survival and trainer.global_rank == 0):
                self.parts[part] = predict(pl_module, [loader()])
        if cox and "train" in self.parts:
            pl_module.set_cox_baseline(self.parts["train"].objectives)

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.spec is not None and isinstance(outputs, Prediction):
            self._test.add_attention(outputs, batch)

    def test_rows(self, task: Any, trainer: L.Trainer) -> PatientRows:
        """The test part: the task's gathered per-patient rows + this pass's attention (all ranks)."""
        tables, slides = self._test.attention(trainer)
        return PatientRows(dict(task.test_rows), tables, slides)


def run_test_pass(
    task: Any,
    trainer: L.Trainer,
    datamodule: Any = None,
    dataloaders: Any = None,
    ckpt_path: str | None = None,
    attention: AttentionSpec | None = None,
) -> dict[str, PatientRows]:
    """`trainer.test` of `task` (an OutcomeTask; `ckpt_path`'s weights when given) on `datamodule`'s test part or on
    `dataloaders`, as the run's one prediction pass -> {"test": rows (+ attention), "train" / "val": the fold's
    training patients' rows (survival tasks whose data module has a training part)}. The test metrics are in
    `task.test_metrics`."""
    training = _training_loaders(datamodule) if dataloaders is None and datamodule is not None else {}
    collector = PredictionPass(training, attention)
    callbacks = cast(Any, trainer).callbacks  # Lightning sets the list at run time
    callbacks.append(collector)
    try:
        kwargs: dict[str, Any] = (
            {"datamodule": datamodule} if dataloaders is None else {"dataloaders": dataloaders}
        )
        if ckpt_path is not None:
            kwargs.update(ckpt_path=ckpt_path, weights_only=True)
        trainer.test(task, verbose=False, **kwargs)
    finally:
        callbacks.remove(collector)
    return {**collector.parts, "test": collector.test_rows(task, trainer)}
