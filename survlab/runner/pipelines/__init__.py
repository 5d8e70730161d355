"""Multi-stage recipes: one job chains several trainings and evaluations, each stage in its own subdir of the job
dir (`run_pipeline(cfg, out_dir, train)`, called by runner.train.run_job when `cfg.pipeline` is set)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig


def run_pipeline(cfg: DictConfig, out_dir: Path, train: Any) -> dict[str, Any]:
    """Dispatch on `cfg.pipeline.name` (pathgen)."""
    name = cfg.pipeline.get("name")
    if name == "pathgen":
        from survlab.runner.pipelines.pathgen import run_pipeline as run

        return run(cfg, out_dir, train)
    raise ValueError(f"pipeline.name={name!r} unknown; available: pathgen")
