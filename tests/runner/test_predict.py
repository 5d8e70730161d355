"""The one prediction pass (survlab.runner.predict): after selection the network runs once per patient of each set
it is needed on (test; inner-train + inner-validation for survival tasks), and the rows it returns are what the
writers read: the same numbers as the network, the Cox baseline, the attention of the test forward calls."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from survlab.models.abmil import ABMIL
from survlab.report.attention import write_attention
from survlab.report.predictions import predictions_table
from survlab.runner.predict import AttentionSpec, predict, run_test_pass
from survlab.tasks.survival import SurvivalTask

KW: dict[str, Any] = dict(
    genomics=None,
    clinical=None,
    modalities=("wsi",),
    eval_max_patches=None,
    wsi={"encoder": "synthetic", "feature_dim": 8, "cache": False},
)


def _trainer() -> L.Trainer:
    return L.Trainer(
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )


def _counted(net: torch.nn.Module) -> Counter:
    """case_id -> how many times `net` was called on that patient."""
    seen: Counter = Counter()
    net.register_forward_hook(lambda mod, args, out: seen.update(args[0].case_ids))
    return seen


@pytest.mark.parametrize("loss", ["nll", "cox"])
def test_each_needed_patient_goes_through_the_network_once(
    make_datamodule: Callable[..., Any], loss: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With attention top-k AND h5 asked for, a Cox objective (Breslow baseline) and KM cutoffs (training patients):
    each test and training patient is run exactly once (the old writers ran test 3x, training 2x)."""
    dm = make_datamodule(**KW)
    torch.manual_seed(0)
    net = ABMIL(dm.dims, hidden_dim=8, **({"output": "risk"} if loss == "cox" else {}))
    task = SurvivalTask(net, loss=loss, scheduler="none")
    task.fit_references(dm.fitted)
    seen = _counted(net)
    parts = run_test_pass(task, _trainer(), datamodule=dm, attention=AttentionSpec.of(dm, top_k=3, h5=True))
    expected = set(dm.split.part("train")) | set(dm.split.part("val")) | set(dm.split.part("test"))
    assert set(seen) == expected and set(seen.values()) == {1}
    assert sorted(parts) == ["test", "train", "val"]
    assert {r["case_id"] for r in parts["test"].attention["patches"]} == set(dm.split.part("test"))
    assert len(parts["test"].slide_attention) == sum(
        len(s)
        for c, s in zip(dm.cohort.case_ids, dm.cohort.table["slide_ids"], strict=True)
        if c in dm.split.test
    )
    if loss == "cox":  # the Breslow baseline is the training patients' risks of this same pass
        objective = task.objectives["survival"]
        train = parts["train"].objectives["survival"]
        np.testing.assert_array_equal(objective.train_risk, train["risk"].astype(float))
        assert np.isfinite(task.test_metrics["ibs"]) and "no Breslow baseline" not in caplog.text
        # a bare trainer.test no longer runs the training patients itself: it says where the baseline comes from
        objective.train_risk = None
        _trainer().test(task, datamodule=dm, verbose=False)
        assert "no Breslow baseline" in caplog.text and np.isnan(task.test_metrics.get("ibs", np.nan))


def test_a_classification_task_runs_the_test_patients_only(make_datamodule: Callable[..., Any]) -> None:
    from survlab.tasks.objective_classification import ClassificationObjective
    from survlab.tasks.outcome import OutcomeTask

    dm = make_datamodule(**KW)
    torch.manual_seed(0)
    net = ABMIL(dm.dims, hidden_dim=8, targets=["label"], survival=False)
    task = OutcomeTask(net, objectives={"label": ClassificationObjective(label="label")}, scheduler="none")
    task.fit_references(dm.fitted)
    seen = _counted(net)
    parts = run_test_pass(task, _trainer(), datamodule=dm)
    assert set(seen) == set(dm.split.part("test")) and set(seen.values()) == {1}
    assert list(parts) == ["test"]


def test_test_pass_attention_equals_a_separate_pass_and_rows_equal_the_network(
    make_datamodule: Callable[..., Any], tmp_path: Path
) -> None:
    """The top-k records kept from trainer.test's own forward calls are those of an independent pass (the file the
    old export wrote), and predictions.csv's risks are the network's, patient by patient."""
    dm = make_datamodule(**KW)
    torch.manual_seed(0)
    task = SurvivalTask(ABMIL(dm.dims, hidden_dim=8), scheduler="none")
    task.fit_references(dm.fitted)
    spec = AttentionSpec.of(dm, top_k=4)
    parts = run_test_pass(task, _trainer(), datamodule=dm, attention=spec)
    alone = predict(task.net, [dm.test_dataloader()], spec)
    a = pd.read_csv(write_attention(parts["test"].attention, tmp_path / "a")["patches"])
    b = pd.read_csv(write_attention(alone.attention, tmp_path / "b")["patches"])
    pd.testing.assert_frame_equal(a, b)
    assert (a.groupby("case_id").size() == 4).all()
    table = predictions_table(task.objectives, parts["test"].objectives, dm, fold=0)
    task.eval()
    with torch.no_grad():
        expected = {
            c: float(r)
            for batch in dm.test_dataloader()
            for c, r in zip(
                batch.case_ids, task.objectives["survival"].collect(task(batch), batch)["risk"], strict=True
            )
        }
    np.testing.assert_allclose(table["risk"], [expected[c] for c in table["case_id"]], rtol=1e-6)
    assert sorted(table["case_id"]) == sorted(dm.split.part("test"))


@pytest.mark.slow
def test_a_default_job_runs_the_network_once_per_patient_after_selection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One tiny `model=abmil data=synthetic` job with attention top-k and h5 on: after fitting, every test,
    inner-train and inner-validation patient goes through the network exactly once (before the one pass: test 3x,
    training patients 1x more for the KM cutoffs), and the job's files are written from those rows."""
    import survlab.runner.train as train_module
    from tests.helpers.cli import TINY
    from tests.helpers.runs import run_job

    seen: dict[str, Counter] = {"fit": Counter(), "after": Counter()}
    phase = ["fit"]
    build_net = train_module.build_net

    def counting(cfg: Any, dims: Any) -> torch.nn.Module:
        net = build_net(cfg, dims)
        net.register_forward_hook(lambda mod, args, out: seen[phase[0]].update(args[0].case_ids))
        return net

    fit = L.Trainer.fit

    def fit_then_mark(self: L.Trainer, *args: Any, **kwargs: Any) -> Any:
        out = fit(self, *args, **kwargs)
        phase[0] = "after"
        return out

    monkeypatch.setattr(train_module, "build_net", counting)
    monkeypatch.setattr(L.Trainer, "fit", fit_then_mark)
    overrides = [
        "model=abmil",
        *TINY,
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        "export_attention=true",
        "export_attention_h5=true",
    ]
    metrics = run_job(tmp_path / "run", overrides)
    preds = pd.read_csv(tmp_path / "run" / "predictions.csv", dtype={"case_id": str})
    patches = pd.read_csv(tmp_path / "run" / "attention" / "top_patches.csv", dtype={"case_id": str})
    assert set(seen["after"].values()) == {1}, seen["after"]
    n_training = len(seen["after"]) - len(preds)
    assert n_training > 0 and set(preds["case_id"]) <= set(seen["after"])
    assert set(patches["case_id"]) == set(preds["case_id"]) and metrics["n_test"] == len(preds)
    assert len(list((tmp_path / "run" / "attention" / "h5").glob("*.h5"))) >= len(preds)
    assert metrics["km_cutoffs"] is not None
