"""The README's headline table is regenerated from experiments/ (and is in sync with it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from results_table import END, START, collect, main, render, replace_block

REPO = Path(__file__).resolve().parents[2]


def test_readme_block_is_in_sync_with_experiments() -> None:
    text = (REPO / "README.md").read_text()
    block = render(*collect(REPO / "experiments"))
    assert replace_block(text, block) == text, (
        "README results table out of date: python scripts/results_table.py"
    )
    # and it carries the studies' own numbers: the GSE7390 SNN row equals its sweep summary
    summary = pd.read_csv(REPO / "experiments/gse7390/sweep/summary.csv").iloc[0]
    mean, std = summary["test/cindex_mean"], summary["test/cindex_std"]
    assert f"| gse7390/sweep | `snn` | gse7390 | cindex | {mean:.3f} ± {std:.3f} | 5 |" in text


def _study(tmp_path: Path) -> Path:
    exp = tmp_path / "experiments"
    (exp / "a_sweep" / "sweep").mkdir(parents=True)
    pd.DataFrame(
        {
            "variant": ["m1", "m2"],
            "model": ["m1", "m2"],
            "cohort": ["c", "c"],
            "n_folds": [5, 5],
            "n_failed": [0, 1],
            "test/cindex_mean": [0.61, 0.72],
            "test/cindex_std": [0.05, 0.02],
            "test/cindex_n": [5, 4],
            "pooled_cindex": [0.6, 0.7],
            "oracle_cindex_mean": [0.8, 0.8],
        }
    ).to_csv(exp / "a_sweep" / "sweep" / "summary.csv", index=False)
    values = {"v1": [0.7, 0.8, 0.9], "v2": [0.5, 0.6, 0.55]}
    for variant, vals in values.items():  # listing order must not matter: written in reverse
        for fold, v in reversed(list(enumerate(vals))):
            d = exp / "b_jobs" / "results" / variant / f"fold{fold}"
            d.mkdir(parents=True)
            (d / "metrics.json").write_text(
                json.dumps(
                    {
                        "model": "x",
                        "cohort": "k",
                        "fold": fold,
                        "status": "ok",
                        "test/balanced_accuracy": v,
                        "bayes_accuracy": 0.9,
                    }
                )
            )
    (exp / "c_speed").mkdir()
    (exp / "c_speed" / "README.md").write_text("timings")
    return exp


def test_collect_reads_summaries_and_per_fold_metrics(tmp_path: Path) -> None:
    frame, untabulated = collect(_study(tmp_path))
    assert untabulated == ["c_speed"]
    assert frame["variant"].tolist() == ["m2", "m1", "v1", "v2"]  # by study, cohort, best mean first
    m2 = frame.iloc[0]
    assert (m2["mean"], m2["std"], m2["folds"], m2["failed"], m2["pooled_cindex"], m2["reference"]) == (
        0.72,
        0.02,
        4,
        1,
        0.7,
        0.8,
    )
    v1 = frame.set_index("variant").loc["v1"]
    assert v1["metric"] == "test/balanced_accuracy" and v1["folds"] == 3
    assert v1["mean"] == pytest.approx(0.8) and v1["std"] == pytest.approx(np.std([0.7, 0.8, 0.9], ddof=1))
    assert v1["reference"] == pytest.approx(0.9)
    text = render(frame, untabulated)
    assert "| a_sweep | `m2` | c | cindex | 0.720 ± 0.020 | 4 (1 failed) | 0.700 | 0.800 |" in text
    assert "| b_jobs | `v2` | k | balanced_accuracy | 0.550 ± 0.050 | 3 | – | 0.900 |" in text
    assert "`experiments/c_speed/`" in text


def test_main_rewrites_only_the_block_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = _study(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n{START}\nstale\n{END}\nafter\n")
    args = ["--experiments", str(exp), "--readme", str(readme)]
    assert main([*args, "--check"]) == 1
    assert main(args) == 0
    text = readme.read_text()
    assert text.startswith("# title\n\nbefore\n" + START) and text.endswith(END + "\nafter\n")
    assert "stale" not in text and "0.720 ± 0.020" in text
    assert main([*args, "--check"]) == 0 and main(args) == 0 and readme.read_text() == text  # idempotent
    readme.write_text("no markers\n")
    assert main(args) == 2
    assert "README.md: needs exactly one '<!-- results:start -->'" in capsys.readouterr().err
    assert readme.read_text() == "no markers\n"
