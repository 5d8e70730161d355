"""OutcomeTask: objectives compose (classification + survival), missing labels are masked out of losses and metrics,
metrics equal the reference implementations on the collected rows, a planted class signal is learned."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from survlab.data.batch import PatientItem, collate
from survlab.data.cohort.targets import LabelSpec
from survlab.data.cohort.time_bins import TimeBins
from survlab.data.fitted import FoldPreprocessing
from survlab.metrics.classification import classification_metrics
from survlab.metrics.survival import harrell_cindex
from survlab.models.base import ModalityDims, Prediction, SurvivalNet
from survlab.tasks.objective_classification import ClassificationObjective
from survlab.tasks.objective_survival import SurvivalObjective
from survlab.tasks.outcome import OutcomeTask

C = 6


class TwoHeadNet(SurvivalNet):
    """Linear class logits (3 classes of `grade`) and hazard logits from clinical columns."""

    modalities = ("clinical",)

    def __init__(self, dims: ModalityDims) -> None:
        super().__init__(dims)
        self.cls = torch.nn.Linear(C, 3)
        self.hz = torch.nn.Linear(C, dims.n_bins)

    def forward(self, batch) -> Prediction:
        return Prediction(
            hazard_logits=self.hz(batch.clinical), class_logits={"grade": self.cls(batch.clinical)}
        )


def _items(n: int, seed: int, missing_every: int = 5) -> list[PatientItem]:
    """Grade = argmax of the first 3 clinical columns (a planted signal); every 5th label missing; risk in column 3."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, C, generator=g)
    items = []
    for i in range(n):
        label = int(x[i, :3].argmax()) if i % missing_every else -1
        t = float(torch.exp(-x[i, 3]) * 10 + 0.1)
        items.append(
            PatientItem(
                case_id=f"c{seed}-{i}",
                index=i,
                time=t,
                event=bool(i % 3),
                time_bin=min(3, int(t // 5)),
                clinical=x[i],
                labels={"grade": label},
            )
        )
    return items


class _DS(Dataset):
    def __init__(self, items: list[PatientItem]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> PatientItem:
        return self.items[i]


class _DM(L.LightningDataModule):
    def __init__(self) -> None:
        super().__init__()
        self.parts = {"train": _items(160, 0), "val": _items(60, 1), "test": _items(80, 2)}
        train = self.parts["train"]
        labels = np.array([it.labels["grade"] for it in train])
        # what the fold fitted on its training patients (the task reads it, never the data module)
        self.fitted = FoldPreprocessing(
            "fake",
            0,
            "hash",
            ("clinical",),
            endpoint_bins={"os": TimeBins(np.array([0.0, 5.0, 10.0, 15.0, np.inf]))},
            train_outcomes={
                "os": (np.array([it.time for it in train]), np.array([it.event for it in train]))
            },
            label_specs={"grade": LabelSpec("grade", "grade")},
            classes={"grade": ("0", "1", "2")},
            label_counts={"grade": np.bincount(labels[labels >= 0], minlength=3)},
            primary_label="grade",
        )

    def _loader(self, part: str, shuffle: bool = False) -> DataLoader:
        return DataLoader(_DS(self.parts[part]), batch_size=16, shuffle=shuffle, collate_fn=collate)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")


def _task(weighting: str = "fixed", class_weights: str | None = None) -> OutcomeTask:
    net = TwoHeadNet(ModalityDims(clinical_dim=C, n_bins=4, n_classes={"grade": 3}))
    objectives = {
        "grade": ClassificationObjective("grade", class_weights=class_weights, label_smoothing=0.05),
        "os": SurvivalObjective(loss="nll"),
    }
    return OutcomeTask(
        net, objectives=objectives, weighting=weighting, lr=3e-2, scheduler="none", max_epochs=15
    )


def test_missing_labels_contribute_nothing_to_loss_or_metrics() -> None:
    task = _task()
    items = _items(16, 3, missing_every=2)  # half the labels missing
    batch = collate(items)
    pred = task(batch)
    labelled = batch.labels["grade"] >= 0
    loss = task.objectives["grade"].loss(pred, batch)
    ref = torch.nn.functional.cross_entropy(
        pred.class_logits["grade"][labelled], batch.labels["grade"][labelled], label_smoothing=0.05
    )
    assert loss.item() == pytest.approx(ref.item())
    loss.backward()
    # a masked patient's input gets no gradient through the classification head
    grads = torch.autograd.grad(task.objectives["grade"].loss(task(batch), batch), task.net.cls.weight)[0]
    only_labelled = collate([it for it in items if it.labels["grade"] >= 0])
    ref_grad = torch.autograd.grad(
        task.objectives["grade"].loss(task(only_labelled), only_labelled), task.net.cls.weight
    )[0]
    torch.testing.assert_close(grads, ref_grad)
    rows = task.objectives["grade"].collect(pred, batch)
    assert len(rows["label"]) == int(labelled.sum()) and bool((rows["label"] >= 0).all())
    nothing = collate([it for it in items if it.labels["grade"] < 0])
    assert task.objectives["grade"].loss(task(nothing), nothing) is None


@pytest.mark.parametrize("weighting", ["fixed", "uncertainty"])
def test_two_objectives_learn_and_report_metrics_equal_to_the_references(weighting: str, tmp_path) -> None:
    torch.manual_seed(0)
    dm, task = _DM(), _task(weighting, class_weights="balanced")
    task.fit_references(dm.fitted)
    assert task.objectives["grade"].class_weight is not None
    trainer = L.Trainer(
        max_epochs=15,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(task, datamodule=dm)
    logged = trainer.callback_metrics
    for key in ("val/balanced_accuracy", "val/grade/balanced_accuracy", "val/os/cindex", "val/loss"):
        assert key in logged, sorted(logged)
    if weighting == "uncertainty":
        opt_params = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
        assert all(id(p) in opt_params for p in task.log_vars.values())
        assert any(abs(float(p)) > 1e-4 for p in task.log_vars.values()), "the weights must be learned"
    trainer.test(task, datamodule=dm)
    rows = task.test_rows
    ref = classification_metrics(rows["grade"]["probs"], rows["grade"]["label"])
    for k, v in ref.items():
        assert task.test_metrics[f"grade/{k}"] == pytest.approx(v)
        assert task.test_metrics[k] == pytest.approx(v)  # primary objective, unprefixed
    assert len(rows["grade"]["label"]) == sum(1 for it in dm.parts["test"] if it.labels["grade"] >= 0)
    assert task.test_metrics["balanced_accuracy"] > 0.8, task.test_metrics  # planted: argmax of 3 columns
    assert task.test_metrics["os/cindex"] == pytest.approx(
        harrell_cindex(rows["os"]["risk"], rows["os"]["time"], rows["os"]["event"])
    )
    assert task.test_metrics["os/cindex"] > 0.6


def test_any_torch_optimiser_and_scheduler_as_partial_configs(tmp_path) -> None:
    """`model.task.optimizer` / `scheduler` as `_partial_` torch configs: no code names them; the steps use them;
    checkpoints still load with weights_only=True (hparams keep only their names)."""
    import json

    from tests.helpers.runs import run_job

    steps = tmp_path / "steps.json"
    run_job(
        tmp_path / "run",
        [
            f"paths.data_dir={tmp_path / 'data'}",
            f"paths.log_dir={tmp_path / 'logs'}",
            "model=snn",
            "debug=tiny",
            "data.synthetic.n_patients=40",
            "trainer.max_epochs=3",
            "selection=last",
            "export_attention=false",
            "model.task.optimizer={_target_:torch.optim.SGD,_partial_:true,lr:0.05,momentum:0.5}",
            "model.task.scheduler={_target_:torch.optim.lr_scheduler.StepLR,_partial_:true,step_size:1,gamma:0.5}",
            "+callbacks.steps._target_=tests.helpers.runs.OptimizerStepRecorder",
            f"+callbacks.steps.path={steps}",
        ],
    )
    lrs = {}
    for step in json.loads(steps.read_text()):
        lrs.setdefault(step["epoch"], set()).add(round(step["lr"], 12))
    assert lrs == {0: {0.05}, 1: {0.025}, 2: {0.0125}}
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert ckpt["hyper_parameters"]["optimizer"].startswith("torch.optim.sgd.SGD(lr=0.05, momentum=0.5")
    assert ckpt["optimizer_states"][0]["param_groups"][0]["momentum"] == 0.5
