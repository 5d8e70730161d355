"""A run's console: survlab's per-epoch lines, the progress bar, warnings that need action and the result — no W&B
chatter, no Lightning banners or tips, no deprecation warnings of the libraries (survlab.utils.quiet)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from survlab.utils.quiet import offline_run_line, quiet_console
from tests.helpers.proc import run_group

REPO = Path(__file__).resolve().parents[2]
#: library lines a default run printed before (W&B's ~35 lines, Lightning's banners and tips, the test-metric box)
NOISE = (
    "wandb:",
    "FutureWarning",
    "LeafSpec",
    "Tip:",
    "GPU available",
    "TPU available",
    "Seed set to",
    "Test metric",
)


def _survlab(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "SURVLAB_"))
    }  # W&B as a user has it
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", COLUMNS="120")
    return run_group(
        [sys.executable, "-m", "survlab", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )


@pytest.mark.slow
def test_default_run_and_eval_consoles_fit_on_one_screen(tmp_path: Path) -> None:
    """`survlab train` with the default loggers (CSV + W&B offline) at a tiny size, then `survlab eval` of it."""
    proc = _survlab(["train", "trainer.max_epochs=2", "data.synthetic.n_patients=40"], tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    lines = out.splitlines()
    assert [n for n in NOISE if n in out] == [], out
    assert len(lines) <= 30, out
    assert sum("| epoch 1/2 |" in ln or "epoch 1/2 |" in ln for ln in lines) == 1
    assert any(ln.startswith("survlab: ggmf on synthetic fold 0: test C-index") for ln in lines)
    wb = [ln for ln in lines if ln.startswith("W&B offline run: ")]
    assert len(wb) == 1 and (tmp_path / "logs" / "runs") in Path(wb[0].split()[3]).parents
    run_dir = Path(next(ln for ln in lines if ln.startswith("outputs: ")).split(" ", 1)[1])

    proc = _survlab(["eval", f"run={run_dir}"], tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert [n for n in NOISE if n in out] == [], out
    assert len(out.splitlines()) <= 20, out


def test_quiet_console_silences_library_info_and_listed_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SURVLAB_VERBOSE", raising=False)
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert quiet_console() is True
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
        warnings.warn(
            "The number of training batches (2) is smaller than the logging interval",
            UserWarning,
            stacklevel=1,
        )
        warnings.warn("a warning that needs action", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["a warning that needs action"]
    logging.getLogger("lightning.pytorch").setLevel(logging.INFO)  # what importing Lightning does
    assert not logging.getLogger("lightning.pytorch.utilities.rank_zero").isEnabledFor(logging.INFO)
    assert os.environ["WANDB_SILENT"] == "true"
    monkeypatch.setenv("SURVLAB_VERBOSE", "1")
    assert quiet_console() is False


def test_offline_run_line_names_the_run_folder(tmp_path: Path) -> None:
    run = tmp_path / "wandb" / "offline-run-20260101_000000-abc"
    assert offline_run_line(run / "files") == f"W&B offline run: {run} (upload: wandb sync {run})"
    assert (
        offline_run_line(tmp_path / "wandb" / "run-20260101_000000-abc" / "files") is None
    )  # online: no line
    assert offline_run_line(None) is None
