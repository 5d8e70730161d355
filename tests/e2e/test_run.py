"""End to end: `python -m survlab.run` on tiny synthetic cohorts writes every output, reads real layouts,
resumes exactly, and fails at start-up with one line when the model and the cohort do not fit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from survlab.data.sources.synthetic import generate_cohort
from survlab.data.sources.synthetic_spec import SyntheticSpec
from survlab.metrics.survival import harrell_cindex
from tests.helpers.cli import TINY as TINY_COHORT
from tests.helpers.proc import run_group
from tests.helpers.runs import run_job

REPO = Path(__file__).resolve().parents[2]
TINY = [*TINY_COHORT]


def run_in_process(tmp: Path, overrides: list[str]) -> tuple[dict, Path]:
    out = tmp / "run"
    return run_job(out, [f"paths.data_dir={tmp / 'data'}", f"paths.log_dir={tmp / 'logs'}", *overrides]), out


def run_cli(tmp: Path, overrides: list[str], check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "survlab.run",
        f"paths.data_dir={tmp / 'data'}",
        f"paths.log_dir={tmp / 'logs'}",
        f"hydra.run.dir={tmp / 'run'}",
        *overrides,
    ]
    proc = run_group(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"survlab.run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def test_cli_writes_every_output(tmp_path: Path) -> None:
    proc = run_cli(tmp_path, ["model=abmil", *TINY, "fold=1"])
    out = tmp_path / "run"
    for name in (
        "metrics.json",
        "predictions.csv",
        "protocol.json",
        "km.png",
        "DONE",
        "attention/top_patches.csv",
    ):
        assert (out / name).is_file(), name
    assert "test C-index" in proc.stdout and "oracle C-index" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    preds = pd.read_csv(out / "predictions.csv")
    split = pd.read_csv(next((tmp_path / "data").rglob("splits_1.csv")))
    # exactly the fold's test patients, each once
    assert sorted(preds["case_id"]) == sorted(split.loc[split["split"] == "test", "case_id"])
    assert (preds["fold"] == 1).all()
    assert {"hazard_0", "hazard_3", "surv_0", "surv_3"} <= set(preds.columns)
    # test metrics are those of predictions.csv (gathered once, scored once)
    assert metrics["test/cindex"] == pytest.approx(
        harrell_cindex(
            preds["risk"].to_numpy(), preds["time"].to_numpy(), preds["event"].to_numpy().astype(bool)
        )
    )
    assert metrics["n_test"] == len(preds) and 0.0 <= metrics["oracle_cindex"] <= 1.0
    # the selected checkpoint is the best inner-validation one
    assert Path(metrics["checkpoint"]).name.startswith("best-epoch")
    protocol = json.loads((out / "protocol.json").read_text())
    assert protocol["fold"] == 1 and protocol["selection"] == "best_val" and protocol["seed"] == 0
    assert len(protocol["cohort"]["split_hash"]) == 64 and protocol["cohort"]["feature_dim"] == 8
    assert protocol["config"]["model"]["name"] == "abmil" and protocol["survlab_version"]
    assert (out / "km.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # KM risk groups cut at the training patients' median risk (survlab.report.km), one log line per epoch
    assert len(metrics["km_cutoffs"]) == 1 and np.isfinite(metrics["km_cutoffs"][0])
    # the HR on km.png / in metrics.json is lifelines' Cox fit of high vs low on the test patients
    from lifelines import CoxPHFitter

    high = (preds["risk"] > metrics["km_cutoffs"][0]).astype(float)
    cox = CoxPHFitter().fit(pd.DataFrame({"h": high, "T": preds["time"], "E": preds["event"]}), "T", "E")
    assert metrics["km_hr_high_vs_low"] == pytest.approx(float(np.exp(cox.params_["h"])), rel=1e-6)
    assert (out / "km.pdf").read_bytes()[:5] == b"%PDF-"
    log_text = "".join(p.read_text() for p in out.glob("*.log"))
    assert "epoch 1/2 | train/loss " in log_text and "epoch 2/2 | train/loss " in log_text


def test_real_layout_config_reads_files_through_real_loaders(tmp_path: Path) -> None:
    """data=tcga_luad pointed at synthetic files written in the CLAM/MCAT layout trains and tests."""
    spec = SyntheticSpec(n_patients=40, feature_dim=8, n_genes=60, n_pathways=8, patches_per_slide=(6, 20))
    cohort = generate_cohort(tmp_path / "data" / "tcga_luad", spec, encoder="resnet50_trunc")
    before = sorted(p.relative_to(cohort) for p in cohort.rglob("*"))
    metrics, out = run_in_process(
        tmp_path,
        [
            "model=late_fusion",
            "data=tcga_luad",
            *[o for o in TINY if not o.startswith(("data.synthetic", "+data.synthetic"))],
            "data.num_workers=0",
            "data.pin_memory=false",
            "data.wsi.format=pt",
            "data.batch_size=8",
        ],
    )
    assert metrics["cohort"] == "tcga_luad" and np.isfinite(metrics["test/cindex"])
    protocol = json.loads((out / "protocol.json").read_text())
    assert protocol["cohort"]["encoder"] == "resnet50_trunc"
    assert set(protocol["cohort"]["genomic_groups"]) == {f"PATHWAY_{i:02d}" for i in range(8)}
    assert sorted(p.relative_to(cohort) for p in cohort.rglob("*")) == before, (
        "survlab wrote into the data folder"
    )
    assert Path(protocol["cohort"]["split_file"]).is_relative_to(tmp_path / "logs" / "splits" / "tcga_luad")


def test_missing_real_cohort_names_the_path(tmp_path: Path) -> None:
    proc = run_cli(tmp_path, ["model=abmil", "data=tcga_brca", "debug=tiny"], check=False)
    assert proc.returncode != 0
    assert "expected MCAT/SurvPath clinical CSV at" in proc.stderr and "tcga_brca/clinical.csv" in proc.stderr


def test_model_needing_a_missing_modality_fails_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError,
        match=r"model needs genomics but data=synthetic_multiscale provides clinical\+scales\+wsi; cohorts with genomics: gse7390, synthetic,",
    ):
        run_in_process(tmp_path, ["model=snn", "data=synthetic_multiscale", "debug=tiny"])


def _val_history(run_dir: Path) -> pd.DataFrame:
    logs = pd.concat([pd.read_csv(f) for f in sorted(run_dir.glob("csv/**/metrics.csv"))])
    return (
        logs.dropna(subset=["val/loss"])
        .drop_duplicates("epoch", keep="last")
        .set_index("epoch")[["val/loss", "val/cindex"]]
    )


@pytest.mark.parametrize(
    ("selection", "epoch", "batch"), [("last", 2, 1), ("best_val", 3, 0), ("best_val", 1, 2)]
)
def test_resume_after_a_kill_repeats_the_uninterrupted_run(
    tmp_path: Path, selection: str, epoch: int, batch: int
) -> None:
    """Killed before batch `batch` of epoch `epoch` (nothing saved on the way out, as kill -9), then resumed from
    last.ckpt: every later epoch's validation metric, the selected checkpoint and the test predictions equal those
    of a run never killed (with weighted sampling and patch subsampling, which both draw random numbers)."""
    common = [
        "model=abmil",
        *TINY,
        "trainer.max_epochs=5",
        f"selection={selection}",
        "data.max_patches=8",
        "data.weighted_sampling=true",
        "model.task.lr=3e-3",
    ]
    full, full_out = run_in_process(tmp_path / "a", common)
    with pytest.raises(RuntimeError, match="simulated kill"):
        run_in_process(
            tmp_path / "b",
            [
                *common,
                "+callbacks.kill._target_=tests.helpers.runs.KillAtEpoch",
                f"+callbacks.kill.epoch={epoch}",
                f"+callbacks.kill.batch={batch}",
            ],
        )
    import torch

    ckpt = torch.load(
        tmp_path / "b" / "run" / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu"
    )
    assert ckpt["epoch"] == epoch - 1, "last.ckpt must hold the last finished epoch, not the best one"
    resumed, resumed_out = run_in_process(tmp_path / "b", [*common, "ckpt_path=last"])
    full_hist, resumed_hist = _val_history(full_out), _val_history(resumed_out)
    assert len(full_hist) == 5 and full_hist["val/loss"].nunique() == 5, (
        "the test needs a run whose val loss moves"
    )
    pd.testing.assert_frame_equal(full_hist.loc[epoch:], resumed_hist.loc[epoch:])
    assert Path(resumed["checkpoint"]).name == Path(full["checkpoint"]).name
    a = pd.read_csv(full_out / "predictions.csv")
    b = pd.read_csv(resumed_out / "predictions.csv")
    np.testing.assert_array_equal(a["risk"], b["risk"])
    assert resumed["test/cindex"] == full["test/cindex"]


def _weights(run_dir: Path) -> dict:
    import torch

    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    return ckpt["state_dict"]


def _assert_same_run(full_out: Path, resumed_out: Path) -> None:
    """Bit-identical final weights (last.ckpt) and test predictions; the message gives max |delta risk|."""
    import torch

    a, b = _weights(full_out), _weights(resumed_out)
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    ra = pd.read_csv(full_out / "predictions.csv").set_index("case_id")["risk"]
    rb = pd.read_csv(resumed_out / "predictions.csv").set_index("case_id")["risk"].loc[ra.index]
    delta = float(np.abs(ra.to_numpy() - rb.to_numpy()).max())
    assert not differ and delta == 0.0, (
        f"resumed run differs: max |delta risk| {delta:.3g}, weights {differ[:3]}"
    )


WORKERS = ["data.num_workers=2", "data.bucketing=true", "data.max_patches=8", "data.weighted_sampling=true"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("selection", "epoch", "batch", "extra"),
    [
        ("last", 2, 1, []),
        ("last", 1, 0, []),
        ("best_val", 2, 2, []),
        # checkpoints inside each epoch too: the resumed epoch skips the batches already trained on
        ("last", 2, 2, ["+trainer.val_check_interval=0.5"]),
    ],
)
def test_resume_with_workers_is_bit_identical(
    tmp_path: Path, selection: str, epoch: int, batch: int, extra: list[str]
) -> None:
    """With DataLoader workers and length bucketing, a run killed before batch `batch` of epoch `epoch` and resumed
    ends with the same weights and predictions, bit for bit, as a run never killed (the workers' first draws used
    to happen before Lightning restored the epoch, so the resumed epoch replayed epoch 0's batches)."""
    common = [
        "model=abmil",
        *TINY,
        *WORKERS,
        "trainer.max_epochs=4",
        f"selection={selection}",
        "model.task.lr=3e-3",
    ]
    common += extra
    _, full_out = run_in_process(tmp_path / "a", common)
    kill = [
        "+callbacks.kill._target_=tests.helpers.runs.KillAtEpoch",
        f"+callbacks.kill.epoch={epoch}",
        f"+callbacks.kill.batch={batch}",
    ]
    with pytest.raises(RuntimeError, match=f"simulated kill at epoch {epoch}, batch {batch}"):
        run_in_process(tmp_path / "b", [*common, *kill])
    _, resumed_out = run_in_process(tmp_path / "b", [*common, "ckpt_path=last"])
    _assert_same_run(full_out, resumed_out)


@pytest.mark.slow
def test_hard_kill_with_workers_then_cli_resume_is_bit_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same through the CLI: the process ends with os._exit mid-epoch (as kill -9, workers orphaned), then
    `resume=<run dir>` finishes it; weights and predictions equal an uninterrupted CLI run's."""
    common = ["model=abmil", *TINY, *WORKERS, "trainer.max_epochs=3", "selection=last"]
    run_cli(tmp_path / "a", common)
    kill = [
        "+callbacks.kill._target_=tests.helpers.runs.KillAtEpoch",
        "+callbacks.kill.epoch=1",
        "+callbacks.kill.batch=1",
        "+callbacks.kill.hard=true",
        "+callbacks.kill.env=SURVLAB_TEST_KILL",  # the resumed run (same overrides) is not killed
    ]
    monkeypatch.setenv("SURVLAB_TEST_KILL", "1")
    killed = run_cli(tmp_path / "b", [*common, *kill], check=False)
    monkeypatch.delenv("SURVLAB_TEST_KILL")
    assert killed.returncode == 137 and not (tmp_path / "b" / "run" / "DONE").exists()
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO)}
    resumed = run_group(
        [sys.executable, "-m", "survlab.run", f"resume={tmp_path / 'b' / 'run'}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_run(tmp_path / "a" / "run", tmp_path / "b" / "run")


def test_cox_model_gets_breslow_survival_and_integrated_brier(tmp_path: Path) -> None:
    metrics, out = run_in_process(
        tmp_path,
        ["model=clinical_mlp", "model.net.output=risk", "model.task.loss=cox", *TINY, "data.batch_size=16"],
    )
    assert 0.0 < metrics["test/ibs"] < 0.5  # the IBS needs S(t): Breslow baseline from TRAINING predictions
    preds = pd.read_csv(out / "predictions.csv")
    assert "hazard_0" not in preds.columns and preds["risk"].notna().all()


def test_ggmf_run_writes_key_pathways_and_top_patches(tmp_path: Path) -> None:
    metrics, out = run_in_process(tmp_path, ["model=ggmf", *TINY])
    pathways = pd.read_csv(out / "attention" / "top_pathways.csv")
    patches = pd.read_csv(out / "attention" / "top_patches.csv")
    preds = pd.read_csv(out / "predictions.csv")
    assert set(pathways["case_id"]) == set(preds["case_id"]) == set(patches["case_id"])
    assert pathways["pathway"].str.startswith("PATHWAY_").all()  # names from signatures_pathways.csv
    first = pathways[pathways["case_id"] == preds["case_id"].iloc[0]]
    assert first["rank"].tolist() == list(range(1, len(first) + 1))
    assert first["importance"].is_monotonic_decreasing
    assert all(
        slide.startswith(case) for slide, case in zip(patches["slide"], patches["case_id"], strict=True)
    )
    assert {"x", "y", "patch_index", "attention"} <= set(patches.columns)
