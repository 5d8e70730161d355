"""`python -m survlab.bench` runs end to end on a tiny cohort (numbers are measured, never asserted)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from survlab.bench import main


def test_bench_runs_end_to_end(tmp_path: Path) -> None:
    main(
        [
            "--patients",
            "16",
            "--patches",
            "24",
            "--dim",
            "8",
            "--epochs",
            "1",
            "--models",
            "abmil",
            "--sizes",
            "12",
            "16",
            "--patch-caps",
            "8",
            "16",
            "--data",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    res = json.loads((tmp_path / "out/bench.json").read_text())
    runs = res["runs"]["abmil"]
    assert set(runs) == {
        "usual",
        "survlab",
        "survlab+bucketing",
        "survlab+packed+bucketing",
        "survlab+resident+bucketing",
        "floor",
    }
    for name, r in runs.items():
        if name != "floor":
            assert r["train_patients_per_s"] > 0 and 0 <= r["data_wait_share"] <= 1
            assert 0 <= r["test_cindex"] <= 1 or math.isnan(r["test_cindex"])
    # every loop starts from the seeded initial weights: the resident store trains on the same fp16 values in the
    # same batches as the RAM cache, so it ends at the same test C-index
    assert runs["survlab+resident+bucketing"]["test_cindex"] == runs["survlab+bucketing"]["test_cindex"]
    # 16 patients, 5 folds: the benchmark's training part; bytes = patches x dim x 2 (fp16)
    assert runs["floor"]["bytes_per_epoch"] > 0 and runs["floor"]["bytes_per_epoch"] % (8 * 2) == 0
    assert set(res["scaling"]["cohort_size"]) == {"12", "16"} and set(
        res["scaling"]["patches_per_patient"]
    ) == {"8", "16"}
    assert (tmp_path / "out/scaling.png").stat().st_size > 0
    assert "| abmil | usual |" in (tmp_path / "out/bench.md").read_text()
    # the cohort is written in the CLAM layout as fp16 .pt bags, once
    import torch

    pts = sorted((tmp_path / "data").glob("bench_p16_*/features/synthetic/pt_files/*.pt"))
    assert pts and torch.load(pts[0], weights_only=True).dtype == torch.float16


def test_bench_folds_give_mean_and_spread(tmp_path: Path) -> None:
    """--folds trains and tests every loop on each fold; the table reports the mean and the sd over folds."""
    import numpy as np

    main(
        [
            "--patients",
            "20",
            "--patches",
            "24",
            "--dim",
            "8",
            "--epochs",
            "1",
            "--models",
            "abmil",
            "--folds",
            "0",
            "1",
            "--only-variants",
            "--variants",
            "cap8=data.bucketing=true,data.max_patches=8",
            "--sizes",
            "--patch-caps",
            "--data",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    res = json.loads((tmp_path / "out/bench.json").read_text())
    runs = res["runs"]["abmil"]
    assert set(runs) == {"usual", "cap8", "floor"} and res["folds"] == [0, 1] and res["scaling"] == {}
    for name in ("usual", "cap8"):
        r = runs[name]
        assert [f["fold"] for f in r["per_fold"]] == [0, 1]
        ci = [f["test_cindex"] for f in r["per_fold"]]
        assert r["test_cindex"] == np.mean(ci) and r["test_cindex_sd"] == np.std(ci, ddof=1)
        assert r["peak_host_gb"] == max(f["peak_host_gb"] for f in r["per_fold"])
    assert "cap8" in runs and "data.max_patches=8" in runs["cap8"]["overrides"]
    md = (tmp_path / "out/bench.md").read_text()
    assert f"{runs['cap8']['test_cindex']:.3f} ± {runs['cap8']['test_cindex_sd']:.3f}" in md
    # the planted risk signal sits at x20 (what ABMIL reads) unless asked otherwise; the folder says which
    oracle = json.loads(next((tmp_path / "data").glob("bench_p20_*_sx20/oracle.json")).read_text())
    assert oracle["spec"]["signal_scale"] == "x20"
    # the ceiling: the planted truth's C-index on each test fold, from truth.csv joined by case_id
    assert set(res["oracle_cindex"]) == {"0", "1"}
    assert all(0.5 < o["all"] <= 1 and 0 <= o["wsi"] <= 1 for o in res["oracle_cindex"].values())
    assert "Planted truth on the test folds" in md
