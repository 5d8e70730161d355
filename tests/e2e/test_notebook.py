"""notebooks/sweep_outputs.ipynb runs headless on a sweep dir and reports the sweep's own numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sksurv.metrics import concordance_index_censored

from survlab.metrics.km import logrank_test
from survlab.report.sweep import summarize_sweep
from tests.helpers.pooled import within_fold_cindex

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "sweep_outputs.ipynb"


def _sweep(root: Path) -> tuple[Path, dict[str, list[float]]]:
    """2 models x 3 folds of a 60-patient cohort in the sweep layout; `good` carries a planted risk signal, `noise`
    none; `good` records training cutoffs (km_cutoffs), `noise` does not (older runs: the test median is used)."""
    rng = np.random.default_rng(0)
    n = 60
    true_risk = rng.normal(size=n)
    time = rng.exponential(np.exp(-true_risk)) * 24.0
    event = rng.random(n) < 0.75
    fold_of = np.arange(n) % 3
    scores: dict[str, list[float]] = {"good": [], "noise": []}
    for model in ("good", "noise"):
        for fold in range(3):
            idx = np.flatnonzero(fold_of == fold)
            risk = (
                true_risk[idx] + rng.normal(scale=0.3, size=len(idx))
                if model == "good"
                else rng.normal(size=len(idx))
            )
            job = root / model / "tiny" / f"fold{fold}"
            job.mkdir(parents=True)
            pd.DataFrame(
                {
                    "case_id": [f"p{i:02d}" for i in idx],
                    "fold": fold,
                    "risk": risk,
                    "time": time[idx],
                    "event": event[idx].astype(int),
                }
            ).to_csv(job / "predictions.csv", index=False)
            c = concordance_index_censored(event[idx], time[idx], risk)[0]
            scores[model].append(float(c))
            metrics = {
                "model": model,
                "cohort": "tiny",
                "fold": fold,
                "seed": 0,
                "status": "ok",
                "test/cindex": c,
            }
            if model == "good":
                metrics["km_cutoffs"] = [0.1 * fold]
            (job / "metrics.json").write_text(json.dumps(metrics))
            (job / "DONE").write_text("")
    summarize_sweep(root, plot=False)
    return root, scores


def test_notebook_runs_on_a_sweep_and_reports_its_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient

    sweep, scores = _sweep(tmp_path / "sweep")
    monkeypatch.setenv("SWEEP_DIR", str(sweep))
    monkeypatch.setenv("REFERENCE", "noise")
    monkeypatch.setenv("OUT_DIR", str(tmp_path / "figs"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for cell in nb.cells for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2  # pooled KM + paired comparison
    assert (tmp_path / "figs" / "pooled_km.png").is_file() and (tmp_path / "figs" / "paired.png").is_file()
    line = next(t for o in outputs for t in o.get("text", "").splitlines() if t.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert result["metric"] == "test/cindex" and result["reference"] == "noise" and result["cohort"] == "tiny"
    # paired: mean over folds of (good - noise), from the per-fold metrics.json
    assert result["mean_diff"]["good"] == pytest.approx(np.mean(np.subtract(scores["good"], scores["noise"])))
    # pooled out-of-fold C-index = sksurv's counts per fold, summed (pairs within a fold) = summary.csv's pooled C
    summary = pd.read_csv(sweep / "summary.csv").set_index("model")
    for model in ("good", "noise"):
        preds = pd.concat(pd.read_csv(f) for f in sorted((sweep / model).rglob("predictions.csv")))
        ref = within_fold_cindex(preds)
        assert result["pooled"][model]["pooled_cindex"] == pytest.approx(ref, abs=1e-9)
        assert result["pooled"][model]["pooled_cindex"] == pytest.approx(summary.loc[model, "pooled_cindex"])
        assert result["pooled"][model]["n"] == 60
    assert (
        result["pooled"]["good"]["pooled_cindex"] > 0.65 and result["pooled"]["noise"]["pooled_cindex"] < 0.6
    )
    # KM groups: each fold cut at its recorded training cutoff (good) or its test median (noise), then pooled
    good = [pd.read_csv(sweep / "good" / "tiny" / f"fold{k}" / "predictions.csv") for k in range(3)]
    groups = np.concatenate([(g["risk"] > 0.1 * k).astype(int) for k, g in enumerate(good)])
    frame = pd.concat(good)
    _, p = logrank_test(frame["time"].to_numpy(), frame["event"].to_numpy(bool), groups)
    assert result["pooled"]["good"]["logrank_p"] == pytest.approx(p, rel=1e-6)
    assert result["cutoffs"] == ["test median", "training median"]
