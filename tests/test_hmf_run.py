"""HMF end to end: `python -m survlab.run experiment=hmf_synthetic` trains through the real loaders (text prompts
from the shipped file, the offline MiniLM encoder), learns the planted slide signal at slide AND patient level,
writes one prediction column set per head, slide predictions and the hierarchical attention exports; a frozen filter
starts from a CLAM checkpoint given on the command line, and a mismatched checkpoint stops the run before training."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score

from survlab.data.checks import DataFileError
from survlab.runner.testing import run_job

COHORT = [
    "data.synthetic.n_patients=120",
    "data.synthetic.feature_dim=8",
    "data.wsi.feature_dim=8",
    "data.synthetic.patches_per_slide=[10,30]",
    "data.synthetic.seed=3",
    "data.splits.folds=3",
]
QUIET = [
    "logger=csv",
    "callbacks.rich_progress_bar=null",
    "callbacks.lr_monitor=null",
    "trainer.enable_progress_bar=false",
]


def _run(tmp: Path, name: str, extra: list[str], cohort: list[str] = COHORT) -> tuple[dict, Path]:
    out = tmp / name
    metrics = run_job(
        out,
        [
            f"paths.data_dir={tmp / 'data'}",
            f"paths.log_dir={tmp / 'logs'}",
            "experiment=hmf_synthetic",
            *cohort,
            *QUIET,
            *extra,
        ],
    )
    return metrics, out


@pytest.mark.slow
def test_hmf_synthetic_recipe_learns_slide_and_patient_labels(tmp_path: Path) -> None:
    """The recipe as shipped (200 patients, fold 0; ~40 s on one CPU core)."""
    metrics, out = _run(tmp_path, "hmf", [], cohort=[])
    assert metrics["test/balanced_accuracy"] > 0.7, metrics  # patient label, chance 0.5
    assert metrics["test/slide_ce/balanced_accuracy"] > 0.7, metrics  # slide label, chance 0.5
    preds = pd.read_csv(out / "predictions.csv")
    assert list(preds.columns) == [
        "case_id",
        "fold",
        "label",
        "label_pred",
        "label_prob_negative",
        "label_prob_positive",
    ]  # CE and focal objectives share one head: one column set
    assert metrics["test/balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(preds.label, preds.label_pred)
    )
    slides = pd.read_csv(out / "slide_predictions.csv")
    ce = slides[slides.objective == "slide_ce"]
    assert metrics["test/slide_ce/balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(ce.label, ce.pred)
    )
    weights = pd.read_csv(out / "attention" / "top_slides.csv")
    assert weights.groupby("case_id").weight.sum().round(5).eq(1).all()
    assert set(weights.case_id) == set(preds.case_id)
    top = pd.read_csv(out / "attention" / "top_slide_patches.csv")
    assert (top.slide.str.rsplit("-", n=1).str[0] == top.case_id).all()  # each patient's own slides
    assert top.groupby(["case_id", "slide"]).size().max() <= 10
    protocol = json.loads((out / "protocol.json").read_text())
    assert protocol["config"]["model"]["net"]["text_encoder"]["path"] is None  # the offline default encoder


def _clam_checkpoint(path: Path, in_dim: int, hidden: int = 64, attn: int = 32) -> Path:
    """A mahmoodlab/CLAM CLAM_SB state dict (attention_net.*) for `in_dim` features."""
    g = torch.Generator().manual_seed(0)
    shapes = {
        "attention_net.0": (hidden, in_dim),
        "attention_net.3.attention_a.0": (attn, hidden),
        "attention_net.3.attention_b.0": (attn, hidden),
        "attention_net.3.attention_c": (1, attn),
        "classifiers": (2, hidden),
    }
    state = {
        f"{n}.{p}": torch.randn(*(s if p == "weight" else s[:1]), generator=g)
        for n, s in shapes.items()
        for p in ("weight", "bias")
    }
    torch.save(state, path)
    return path


def test_frozen_filter_from_a_clam_checkpoint_on_the_command_line(tmp_path: Path) -> None:
    ckpt = _clam_checkpoint(tmp_path / "s_0_checkpoint.pt", in_dim=8)
    fast = ["debug=fast_dev_run", "export_attention=false", "data.synthetic.n_patients=40"]
    metrics, _ = _run(
        tmp_path, "frozen", [*fast, "model.net.filter=frozen", f"model.filter_checkpoint={ckpt}"]
    )
    assert metrics["n_test"] > 0 and 0.0 <= metrics["test/balanced_accuracy"] <= 1.0
    bad = _clam_checkpoint(tmp_path / "uni.pt", in_dim=1536)
    with pytest.raises(
        DataFileError,
        match=r"uni.pt: patch_fc.0.weight has shape \(64, 1536\) but the filter needs "
        r"\(64, 8\)",
    ):
        _run(tmp_path, "mismatch", [*fast, "model.net.filter=frozen", f"model.filter_checkpoint={bad}"])
