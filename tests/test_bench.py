"""`python -m survlab.bench` runs end to end on a tiny cohort (numbers are measured, never asserted)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from survlab.bench import main


def test_bench_runs_end_to_end(tmp_path: Path) -> None:
    main(["--patients", "16", "--patches", "24", "--dim", "8", "--epochs", "1", "--models", "abmil",
          "--sizes", "12", "16", "--patch-caps", "8", "16", "--data", str(tmp_path / "data"),
          "--out", str(tmp_path / "out")])
    res = json.loads((tmp_path / "out/bench.json").read_text())
    runs = res["runs"]["abmil"]
    assert set(runs) == {"usual", "survlab", "survlab+bucketing", "survlab+packed+bucketing", "floor"}
    for name, r in runs.items():
        if name != "floor":
            assert r["train_patients_per_s"] > 0 and 0 <= r["data_wait_share"] <= 1
            assert 0 <= r["test_cindex"] <= 1 or math.isnan(r["test_cindex"])
    # 16 patients, 5 folds: the benchmark's training part; bytes = patches x dim x 2 (fp16)
    assert runs["floor"]["bytes_per_epoch"] > 0 and runs["floor"]["bytes_per_epoch"] % (8 * 2) == 0
    assert set(res["scaling"]["cohort_size"]) == {"12", "16"} and set(res["scaling"]["patches_per_patient"]) == {"8", "16"}
    assert (tmp_path / "out/scaling.png").stat().st_size > 0
    assert "| abmil | usual |" in (tmp_path / "out/bench.md").read_text()
    # the cohort is written in the CLAM layout as fp16 .pt bags, once
    import torch

    pts = sorted((tmp_path / "data").glob("bench_p16_*/features/synthetic/pt_files/*.pt"))
    assert pts and torch.load(pts[0], weights_only=True).dtype == torch.float16
