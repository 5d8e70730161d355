"""`python benchmarks/bench.py` runs end to end on a tiny cohort (numbers are measured, never asserted)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench import main


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


def _header_count(root: Path, case_ids: list[str], caps: dict[str, int], bytes_per: dict[str, int]) -> int:
    """Independent count: every scale folder's .pt files of these patients (patient -> slides from clinical.csv),
    each patient's patches capped per scale, x the stored dim x `bytes_per[scale]` (or the file's own dtype)."""
    import pandas as pd
    import torch

    slides = pd.read_csv(root / "clinical.csv").groupby("case_id")["slide_id"].apply(list)
    total = 0
    for scale, cap in caps.items():
        for case in case_ids:
            shapes = [
                torch.load(root / f"features/synthetic/{scale}/pt_files/{s}.pt", weights_only=True, mmap=True)
                for s in slides[case]
            ]
            n, dim = sum(t.shape[0] for t in shapes), shapes[0].shape[1]
            total += min(n, cap) * dim * bytes_per.get(scale, shapes[0].element_size())
    return total


def test_feature_bytes_counts_every_scale_and_the_store_dtype(tmp_path: Path) -> None:
    """The bandwidth floor of a multi-scale model (CrossFusion) counts x5, x10 and x20, each after its own training
    cap, at the bytes per value of what the store serves: fp32 source files read as they are, the fp16 RAM cache,
    the fp16 packed store — equal to a count from the files themselves."""
    import argparse

    from bench import build, cohort_spec, compose, feature_bytes
    from hydra.core.global_hydra import GlobalHydra

    from survlab.data.sources.synthetic import generate_cohort
    from survlab.data.sources.synthetic_spec import SyntheticSpec

    args = argparse.Namespace(patients=20, patches=24, dim=8, signal_scale="x20", signal_strength=3.0)
    spec = {**cohort_spec(args), "storage_dtype": "float32"}
    root = tmp_path / "cohort"
    generate_cohort(
        root, SyntheticSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})
    )
    caps = {"x5": 2, "x10": 3, "x20": 10}  # each binds for some patients (x20 ~24 patches, x10 ~6, x5 ~2-4)
    ov = ["++data.max_patches_per_scale={x5: 2, x10: 3, x20: 10}", "data.max_patches=10"]
    try:
        for extra, bytes_per in (
            (["++data.wsi.cache=false"], {}),  # the fp32 source files
            (["++data.wsi.cache=true"], dict.fromkeys(caps, 2)),  # the fp16 RAM cache
            (["++data.wsi.packed=true", "++data.wsi.cache=false"], dict.fromkeys(caps, 2)),  # fp16 packed
        ):
            dm, _, _ = build(compose("crossfusion", root, spec, [*ov, *extra]))
            train = list(dm.datasets["train"].case_ids)
            assert feature_bytes(dm) == _header_count(root, train, caps, bytes_per) > 0
            # evaluation: no cap (eval_max_patches null): the full bags of the test patients
            test = list(dm.datasets["test"].case_ids)
            assert feature_bytes(dm, train=False) == _header_count(
                root, test, dict.fromkeys(caps, 10**9), bytes_per
            )
        # single-scale ABMIL: x20 only, after max_patches
        dm, _, _ = build(compose("abmil", root, spec, ["data.max_patches=10", "++data.wsi.cache=false"]))
        single = _header_count(root, list(dm.datasets["train"].case_ids), {"x20": 10}, {})
    finally:
        GlobalHydra.instance().clear()
    # the single-scale bags are the x20 bags (features/synthetic/pt_files == x20/pt_files in the synthetic layout)
    assert feature_bytes(dm) == single
