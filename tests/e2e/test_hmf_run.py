"""HMF end to end: `python -m survlab.run experiment=hmf_synthetic` trains through the real loaders (text prompts
from the shipped file, the offline MiniLM encoder), learns the planted slide signal at slide AND patient level,
writes one prediction column set per head, slide predictions and the hierarchical attention exports; a frozen filter
starts from a CLAM checkpoint given on the command line, and a mismatched checkpoint stops the run before training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score

from survlab.data.cohort.checks import DataFileError
from tests.helpers.runs import run_job

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
    metrics, out = _run(
        tmp_path, "frozen", [*fast, "model.net.filter=frozen", f"model.filter_checkpoint={ckpt}"]
    )
    preds = pd.read_csv(out / "predictions.csv")  # the run's metric is scikit-learn's on its own predictions
    assert metrics["n_test"] == len(preds) > 0
    assert metrics["test/balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(preds.label, preds.label_pred)
    )
    bad = _clam_checkpoint(tmp_path / "uni.pt", in_dim=1536)
    with pytest.raises(
        DataFileError,
        match=r"uni.pt: patch_fc.0.weight has shape \(64, 1536\) but the filter needs "
        r"\(64, 8\)",
    ):
        _run(tmp_path, "mismatch", [*fast, "model.net.filter=frozen", f"model.filter_checkpoint={bad}"])


@pytest.mark.slow
def test_hmf_camelyon17_reports_the_rule_based_pn_beside_the_patient_head(tmp_path: Path) -> None:
    """experiment=hmf_camelyon17 (small widths, 2 epochs, ~1 min) on a CAMELYON17-layout cohort: metrics.json has the
    rule-based pN (challenge's rule on the PREDICTED slide stages) beside the patient head, both scored with
    scikit-learn's quadratic kappa; checkpoints follow val/kappa; protocol.json states the validation size."""
    from sklearn.metrics import cohen_kappa_score

    from survlab.metrics.pn_stage import PN_STAGES, pn_stage

    root = tmp_path / "data" / "camelyon17"
    (root / "features" / "resnet50_trunc" / "pt_files").mkdir(parents=True)
    rng = np.random.default_rng(0)
    stages, rows = ["negative", "itc", "micro", "macro"], ["case_id,slide_id,stage,pN"]
    for p in range(40):
        nodes = list(rng.choice(stages, 5, p=[0.6, 0.1, 0.15, 0.15]))
        for n, s in enumerate(nodes):
            rows.append(f"patient_{p:03d},patient_{p:03d}_node_{n},{s},{pn_stage(nodes)}")
            x = torch.randn(6, 1024, generator=torch.Generator().manual_seed(p * 5 + n))
            x[:2, stages.index(s)] += 3.0
            torch.save(x, root / "features" / "resnet50_trunc" / "pt_files" / f"patient_{p:03d}_node_{n}.pt")
    (root / "clinical.csv").write_text("\n".join(rows) + "\n")
    small = [
        "model.net.dim=16",
        "model.net.heads=2",
        "model.net.slide_dim=16",
        "model.net.slide_ff=16",
        "model.net.patient_ff=16",
        "model.net.patient_heads=2",
        "model.net.slide_heads=2",
        "model.net.filter_hidden=16",
        "model.net.filter_attn=8",
        "model.net.pool_hidden=[16,8]",
        "model.net.bottleneck=8",
        "model.net.head_hidden=8",
    ]
    out = tmp_path / "job"
    metrics = run_job(
        out,
        [
            "experiment=hmf_camelyon17",
            f"paths.data_dir={tmp_path / 'data'}",
            f"paths.log_dir={tmp_path / 'logs'}",
            "data.splits.folds=3",
            "data.num_workers=0",
            "data.pin_memory=false",
            "trainer.max_epochs=2",
            "trainer.accumulate_grad_batches=1",
            "export_attention=false",
            *small,
            *QUIET,
        ],
    )
    table = pd.read_csv(out / "pn_rule.csv")
    slides = pd.read_csv(out / "slide_predictions.csv")
    ce = slides[slides.objective == "slide_ce"]
    rule = ce.groupby("case_id")["pred"].apply(lambda s: pn_stage(list(s)))
    assert table.set_index("case_id")["pn_rule"].to_dict() == rule.to_dict()
    idx = {s: i for i, s in enumerate(PN_STAGES)}

    def kappa(column: str) -> float:
        return cohen_kappa_score(
            table.pn_stage.map(idx), table[column].map(idx), weights="quadratic", labels=list(range(5))
        )

    assert metrics["test/pn_rule/kappa"] == pytest.approx(kappa("pn_rule"))
    assert metrics["test/pn_head/kappa"] == pytest.approx(kappa("pn_stage_pred"))
    assert metrics["test/kappa"] == pytest.approx(
        metrics["test/pn_head/kappa"]
    )  # the head's own (ordinal) kappa
    protocol = json.loads((out / "protocol.json").read_text())
    split = pd.read_csv(protocol["cohort"]["split_file"])
    assert protocol["validation"] == {"monitor": "val/kappa", "n_patients": int((split.split == "val").sum())}
