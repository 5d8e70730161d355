"""Failing safely: typos fail before any data is read, errors are one line on the console (traceback in FAILED),
worker errors keep the file name, and a write failure leaves no truncated file under a final name."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from survlab.utils import jobs
from tests.helpers.cli import REPO, run_survlab, tiny_overrides
from tests.helpers.proc import run_group
from tests.helpers.runs import compose_config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("selection=bestval", "selection='bestval' is not one of best_val, last"),
        ("km_groups=tertile", "km_groups='tertile' is not one of median, tertiles"),
        (
            "optimized_metric=test/c_index",
            "optimized_metric='test/c_index' is not a metric a run reports; choose one of",
        ),
        ("+model.net.dimm=64", "model.net.dimm: unknown option of GGMF; allowed: attn_dropout, dim,"),
        ("model.task.loss=coxph", "model.task.loss='coxph' is not one of nll, cox"),
        (
            "model.task.optimizer={_target_:torch.optim.Adamm,_partial_:true}",
            "model.task.optimizer._target_=torch.optim.Adamm: cannot import it",
        ),
        (
            "monitor=val/grade/f1",
            "monitor='val/grade/f1' is not a validation metric; choose one of val/loss, val/cindex",
        ),
    ],
)
def test_a_typo_fails_in_one_line_before_any_data_is_read(
    tmp_path: Path, override: str, message: str
) -> None:
    proc = run_survlab(
        [*tiny_overrides(tmp_path, tmp_path / "data"), f"hydra.run.dir={tmp_path / 'run'}", override],
        env={"HYDRA_FULL_ERROR": "0"},
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(f"survlab: error: {message}"), proc.stderr[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "data").exists(), (
        "the synthetic cohort must not be generated for a config that cannot run"
    )


def test_progress_bar_can_be_switched_off(tmp_path: Path) -> None:
    """`trainer.enable_progress_bar=false` used to fail every job (Lightning refuses a progress-bar callback)."""
    import hydra

    from survlab.runner.build import build_callbacks

    cfg = compose_config(tmp_path / "out", ["trainer.enable_progress_bar=false"])
    callbacks = build_callbacks(cfg, tmp_path / "out")
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=False)
    assert trainer.progress_bar_callback is None


def test_logger_none_leaves_out_the_learning_rate_monitor(tmp_path: Path) -> None:
    """`logger=none` used to fail every job: Lightning refuses a LearningRateMonitor without a logger."""
    import hydra
    from lightning.pytorch.callbacks import LearningRateMonitor

    from survlab.runner.build import build_callbacks

    cfg = compose_config(tmp_path / "out", ["logger=none"])
    assert cfg.callbacks.lr_monitor is not None  # the default callbacks still ask for it
    callbacks = build_callbacks(cfg, tmp_path / "out", has_logger=False)
    assert not any(isinstance(c, LearningRateMonitor) for c in callbacks)
    hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=False)  # Lightning accepts the set
    with_logger = build_callbacks(cfg, tmp_path / "out")
    assert any(isinstance(c, LearningRateMonitor) for c in with_logger)


class _BadFile(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> torch.Tensor:
        raise ValueError("/data/h5_files/S1.h5: 3 patch(es) with NaN/Inf features; re-extract features")


def test_an_error_in_a_dataloader_worker_keeps_its_one_line() -> None:
    loader = torch.utils.data.DataLoader(_BadFile(), num_workers=1)
    with pytest.raises(ValueError) as info:
        next(iter(loader))
    assert str(info.value).startswith("Caught ValueError in DataLoader worker process 0")
    assert (
        jobs.error_line(info.value)
        == "/data/h5_files/S1.h5: 3 patch(es) with NaN/Inf features; re-extract features"
    )
    assert jobs.error_line(RuntimeError("boom\nmore")) == "RuntimeError: boom"


_FULL_DISK = """
import resource, runpy, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)          # writes past the limit fail with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
sys.argv = ["survlab.run", *sys.argv[1:]]
runpy.run_module("survlab.run", run_name="__main__")
"""


def test_a_failed_checkpoint_write_leaves_no_truncated_file_and_a_failed_marker(tmp_path: Path) -> None:
    """A checkpoint (~600 kB) larger than what the 'disk' takes (200 kB): the error names the checkpoint, nothing is
    left under a checkpoint's name, FAILED says what happened."""
    args = [*tiny_overrides(tmp_path, tmp_path / "data"), "model=abmil", f"hydra.run.dir={tmp_path / 'run'}"]
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    prep = run_group(
        [sys.executable, "-m", "survlab.run", *args, "trainer.max_epochs=0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )  # writes the cohort without the limit
    assert (tmp_path / "data").is_dir(), prep.stderr[-2000:]
    run = tmp_path / "run2"
    proc = run_group(
        [sys.executable, "-c", _FULL_DISK, *args[:-1], f"hydra.run.dir={run}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("survlab: error: [Errno 27] cannot write checkpoint ") and ".ckpt" in line, line
    failed = (run / "FAILED").read_text().splitlines()[0]
    assert failed.startswith("[Errno 27] cannot write checkpoint ") and str(run / "checkpoints") in failed
    assert not list((run / "checkpoints").glob("*.ckpt")) and not list((run / "checkpoints").glob(".*tmp"))
