"""DDP simulated on CPU (2 gloo processes), DDP inside a multirun, mixed precision on CPU."""

from __future__ import annotations

import fcntl
import json
import math
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from survlab.utils import ddp
from tests.helpers.cli import check, run_survlab, tiny_overrides


@pytest.fixture
def one_ddp_run_at_a_time(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The DDP runs of this module never overlap across xdist workers: each rank 0 takes a free port from the OS
    for its rendezvous, and two runs that drew the same port at once could join each other's process group and
    wait for ever (an exclusive lock on a file every worker sees)."""
    lock = tmp_path_factory.getbasetemp().parent / "survlab-ddp-tests.lock"
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ddp_data")


def _recomputed_cindex(run_dir: Path) -> tuple[float, pd.DataFrame]:
    from survlab.metrics.survival import harrell_cindex

    preds = pd.read_csv(run_dir / "predictions.csv")
    return harrell_cindex(preds.risk, preds.time, preds.event.astype(bool)), preds


@pytest.mark.usefixtures("one_ddp_run_at_a_time")
def test_ddp_sim_gathered_metrics_equal_predictions(tmp_path: Path, data_dir: Path) -> None:
    # 45 patients -> 9 test patients: DistributedSampler pads rank 1 with a duplicate that must be dropped
    run_dir = tmp_path / "run"
    args = [
        "trainer=ddp_sim",
        "model=abmil",
        *tiny_overrides(tmp_path, data_dir),
        "data.synthetic.n_patients=45",
        f"hydra.run.dir={run_dir}",
        "export_attention=true",  # the attention of the test pass is gathered from both ranks (survlab.runner.predict)
        "export_attention_h5=true",
    ]
    check(run_survlab(args))
    assert (run_dir / "DONE").is_file() and (run_dir / "train_ddp_process_1.log").is_file(), (
        "rank 1 did not run"
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    cindex, preds = _recomputed_cindex(run_dir)
    split = next((data_dir / "synthetic").rglob("splits_0.csv"))
    test_ids = set(pd.read_csv(split).query("split == 'test'").case_id)
    assert len(preds) == metrics["n_test"] == len(test_ids) and set(preds.case_id) == test_ids
    assert not preds.case_id.duplicated().any()
    assert metrics["test/cindex"] == pytest.approx(cindex, abs=1e-12)
    patches = pd.read_csv(run_dir / "attention" / "top_patches.csv")
    assert set(patches.case_id) == test_ids  # every test patient once: the padded duplicate dropped
    assert not patches.duplicated(["case_id", "scale", "rank"]).any()
    h5 = {p.stem for p in (run_dir / "attention" / "h5").glob("*.h5")}
    assert {s.rsplit("-DX", 1)[0] for s in h5} == test_ids  # synthetic slide ids: <case_id>-DX<k>


@pytest.mark.usefixtures("one_ddp_run_at_a_time")
def test_ddp_sim_in_multirun_runs_each_job_once(tmp_path: Path, data_dir: Path) -> None:
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        "trainer=ddp_sim",
        "model=abmil",
        "fold=0,1",
        *tiny_overrides(tmp_path, data_dir),
        f"hydra.sweep.dir={sweep}",
    ]
    out = check(run_survlab(args, timeout=400))
    # upstream bug: the child rank re-ran the whole command line, i.e. the sweep ("Launching 2 jobs" again)
    assert out.count("Launching 2 jobs locally") == 1, out[-3000:]
    assert "relaunched for THIS job only" in out
    jobs = sorted(p.parent.name for p in sweep.rglob("DONE"))
    assert jobs == ["fold0", "fold1"]
    for f in (0, 1):
        job = sweep / "abmil" / "synthetic" / f"fold{f}"
        assert (job / "train_ddp_process_1.log").is_file()
        cindex, _ = _recomputed_cindex(job)
        assert json.loads((job / "metrics.json").read_text())["test/cindex"] == pytest.approx(
            cindex, abs=1e-12
        )
    assert not (tmp_path / "logs" / "multiruns").exists(), "a child rank started a sweep of its own"


def test_bf16_mixed_on_cpu(tmp_path: Path, data_dir: Path) -> None:
    run_dir = tmp_path / "run"
    check(
        run_survlab(
            ["trainer=bf16", "model=abmil", *tiny_overrides(tmp_path, data_dir), f"hydra.run.dir={run_dir}"]
        )
    )
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert cfg.trainer.precision == "bf16-mixed"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert math.isfinite(metrics["test/cindex"]) and (run_dir / "DONE").is_file()


# ----------------------------------------------------------------------------------------- unit: the guard
def _cfg(**trainer) -> OmegaConf:
    return OmegaConf.create({"trainer": {"accelerator": "cpu", "devices": 1, **trainer}})


def test_num_processes_and_strategy_name() -> None:
    assert ddp.num_processes(_cfg(devices=2).trainer) == 2
    assert ddp.num_processes(_cfg(devices=[0, 1, 2], num_nodes=2).trainer) == 6
    assert ddp.num_processes(_cfg(devices="0,1").trainer) == 2
    assert ddp.num_processes(_cfg(devices="auto").trainer) == 1
    assert ddp.strategy_name(_cfg(strategy="DDP_Spawn").trainer) == "ddp_spawn"
    assert (
        ddp.strategy_name(
            _cfg(
                strategy={"_target_": "lightning.pytorch.strategies.DDPStrategy", "start_method": "spawn"}
            ).trainer
        )
        == "ddp_spawn"
    )


def test_guard_single_process_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ddp, "_install_job_relaunch", lambda: pytest.fail("must not patch for 1 process"))
    ddp.check_multirun_strategy(_cfg(devices=1, strategy="ddp"))
    ddp.check_multirun_strategy(_cfg())


def test_guard_refuses_spawn_and_parallel_launchers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    with pytest.raises(ddp.DDPMultirunError, match="trainer=ddp_sim"):
        ddp.check_multirun_strategy(_cfg(devices=2, strategy="ddp_spawn"))
    monkeypatch.setattr(
        ddp, "_launcher_target", lambda: "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    )
    with pytest.raises(ddp.DDPMultirunError, match="JoblibLauncher"):
        ddp.check_multirun_strategy(_cfg(devices=2, strategy="ddp"))
    # ranks created by SLURM (srun, tasks_per_node = GPUs): nothing to fix, nothing refused
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_JOB_NAME", "survlab")
    ddp.check_multirun_strategy(_cfg(devices=2, strategy="ddp"))


@pytest.mark.usefixtures("one_ddp_run_at_a_time")
def test_ddp_sim_classification_metrics_equal_predictions(tmp_path: Path, data_dir: Path) -> None:
    """Classification rows (a variable number per rank once missing labels are masked) are gathered, de-duplicated
    and scored once: the logged balanced accuracy equals the one recomputed from predictions.csv."""
    from sklearn.metrics import balanced_accuracy_score

    run_dir = tmp_path / "run"
    args = [
        "trainer=ddp_sim",
        "model=abmil_cls",
        "data=synthetic_classification",
        *tiny_overrides(tmp_path, data_dir),
        "data.synthetic.n_patients=47",
        f"hydra.run.dir={run_dir}",
    ]
    check(run_survlab(args))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    preds = pd.read_csv(run_dir / "predictions.csv")
    split = next((data_dir / "synthetic" / "classification").rglob("splits_0.csv"))
    test_ids = set(pd.read_csv(split).query("split == 'test'").case_id)
    assert set(preds.case_id) == test_ids and not preds.case_id.duplicated().any()
    assert metrics["test/balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(preds.label, preds.label_pred)
    )
    assert metrics["test/label/n"] == len(test_ids)
