"""The README's commands as written: the default paths resolve before a multirun's first job (fast), and every
`survlab ...` / `python -m survlab...` line of the README's bash blocks either runs at a tiny size from a fresh
working directory with no `paths.*` override, or is listed in SKIP with the reason it cannot run here (slow)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from survlab.runner.hydra_callbacks import SweepKeysCallback
from survlab.utils.confdirs import PACKAGE_CONF_DIR

REPO = Path(__file__).resolve().parents[1]


def test_multirun_sweep_dir_resolves_before_any_job_with_the_default_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A multirun resolves `hydra.sweep.dir` (and the sweep-keys callback writes into it) before any job sets
    HydraConfig: with the default `paths` (no paths.* / hydra.sweep.dir override) it lands under ./logs/multiruns."""
    monkeypatch.chdir(tmp_path)
    for var in ("SURVLAB_ROOT", "SURVLAB_LOGS", "SURVLAB_DATA"):
        monkeypatch.delenv(var, raising=False)
    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None  # as in the launching process of `survlab train -m ...`
    try:
        with initialize_config_dir(config_dir=str(PACKAGE_CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=["model=abmil", "fold=1"], return_hydra_config=True)
        assert not HydraConfig.initialized()
        sweep_dir = Path(str(cfg.hydra.sweep.dir))  # was: InterpolationResolutionError 'HydraConfig was not set'
        assert sweep_dir.parent == tmp_path / "logs" / "multiruns"
        assert Path(str(cfg.paths.data_dir)) == tmp_path / "data"
        SweepKeysCallback().on_multirun_start(cfg)
        assert json.loads((sweep_dir / "sweep_keys.json").read_text()) == {"swept": []}
    finally:
        GlobalHydra.instance().clear()
