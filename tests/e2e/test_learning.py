"""Learning through the whole pipeline (synthetic files → real loaders → task → selected checkpoint → test fold):
each baseline finds a signal planted in its modality, and fusion models beat both unimodal ones when the risk is
split between WSI patches and pathways. 2 outer folds so the test fold has 80 patients (C-index noise ~±0.04)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import LEARNING_TRAIN, LEARNING_WIDTHS
from tests.helpers.runs import run_job

COHORT = ["data.synthetic.n_patients=160", *LEARNING_WIDTHS]
TRAIN = LEARNING_TRAIN


def fit(tmp: Path, model: str, weights: tuple[float, float, float]) -> dict:
    w = ",".join(str(x) for x in weights)
    return run_job(
        tmp / model,
        [
            f"paths.data_dir={tmp / 'data'}",
            f"paths.log_dir={tmp / 'logs'}",
            f"model={model}",
            *COHORT,
            f"+data.synthetic.weights=[{w}]",
            *TRAIN,
        ],
    )


@pytest.mark.parametrize(
    ("model", "weights"),
    [
        ("abmil", (2.0, 0.0, 0.0)),  # risk only in a fraction of WSI patches
        ("snn", (0.0, 2.0, 0.0)),  # risk only in 4 pathways' genes
        ("clinical_mlp", (0.0, 0.0, 2.0)),  # risk only in age / marker_level
    ],
)
def test_baseline_learns_signal_planted_in_its_modality(tmp_path: Path, model: str, weights: tuple) -> None:
    metrics = fit(tmp_path, model, weights)
    assert metrics["test/cindex"] > 0.65, metrics
    assert (
        metrics["oracle_cindex"] > metrics["test/cindex"] - 0.05
    )  # no model beats the truth by more than noise


def test_fusion_beats_unimodal_models_when_signal_is_split(tmp_path: Path) -> None:
    split = (1.5, 1.5, 0.0)  # half of the log-hazard in WSI patches, half in pathways
    runs = {m: fit(tmp_path, m, split) for m in ("abmil", "snn", "late_fusion", "ggmf", "mcat")}
    c = {m: r["test/cindex"] for m, r in runs.items()}
    best_unimodal = max(c["abmil"], c["snn"])
    # each modality alone carries only part of the risk: on this test fold the C-index of the true WSI / genomic
    # latent alone is 0.76 / 0.76 against 0.86 for the whole true risk (the oracle)
    assert 0.5 < best_unimodal < runs["snn"]["oracle_cindex"] - 0.1, c
    for fusion in ("late_fusion", "ggmf", "mcat"):
        assert c[fusion] > 0.68 and c[fusion] > best_unimodal + 0.05, (fusion, c)
