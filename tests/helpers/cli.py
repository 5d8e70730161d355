"""Run `python -m survlab.run ...` in a subprocess on a tiny synthetic cohort (helper for the end-to-end tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.proc import run_group

REPO = Path(__file__).resolve().parents[2]
#: a 40-patient synthetic cohort at tiny widths (feature dim 8, 60 genes, 8 pathways, 6..20 patches), debug=tiny
TINY = [
    "debug=tiny",
    "data.synthetic.n_patients=40",
    "data.synthetic.feature_dim=8",
    "data.synthetic.n_genes=60",
    "data.synthetic.n_pathways=8",
    "data.wsi.feature_dim=8",
    "data.synthetic.patches_per_slide=[6,20]",
    "data.max_patches=64",
]

#: the learning tests' cohort widths (2 outer folds: 80+ test patients, C-index noise ~±0.04) and training settings
LEARNING_WIDTHS = [
    "data.synthetic.feature_dim=8",
    "data.wsi.feature_dim=8",
    "data.synthetic.n_genes=60",
    "data.synthetic.n_pathways=8",
    "data.synthetic.patches_per_slide=[8,24]",
    "data.splits.folds=2",
    "data.batch_size=16",
    "data.max_patches=64",
]
LEARNING_TRAIN = [
    "debug=tiny",
    "selection=last",
    "trainer.max_epochs=30",
    "model.task.lr=1e-3",
    "export_attention=false",
]


def tiny_overrides(tmp: Path, data_dir: Path) -> list[str]:
    """A 40-patient synthetic cohort, 1 epoch, CSV logger only, no attention export."""
    return [
        "debug=tiny",
        "data.synthetic.n_patients=40",
        f"paths.data_dir={data_dir}",
        f"paths.log_dir={tmp / 'logs'}",
        "trainer.max_epochs=1",
        "export_attention=false",
    ]


def run_survlab(
    args: list[str], timeout: int = 240, module: str = "survlab.run", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "WANDB_MODE": "disabled",
        "HF_HUB_OFFLINE": "1",
        "HYDRA_FULL_ERROR": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    return run_group(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def check(proc: subprocess.CompletedProcess) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out
