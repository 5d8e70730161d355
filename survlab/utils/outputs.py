"""Files a run writes into its output dir: predictions.csv, metrics.json, protocol.json, attention/."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import survlab
from survlab.models.base import survival_from_hazard_logits
from survlab.utils.files import atomic_write


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON with NaN/inf as null (strict JSON readers choke on NaN)."""
    atomic_write(path, json.dumps(_json_safe(payload), indent=2, sort_keys=False) + "\n")


def predictions_frame(results: dict[str, np.ndarray], case_ids: list[str], fold: int) -> pd.DataFrame:
    """One row per test patient: case_id, fold, risk, time, event, hazard_k, surv_k (discrete-time models)."""
    frame = pd.DataFrame({
        "case_id": [case_ids[i] for i in results["index"]],
        "fold": fold,
        "risk": results["risk"].astype(float),
        "time": results["time"].astype(float),
        "event": results["event"].astype(int),
    })
    if "hazard_logits" in results:
        import torch

        logits = torch.as_tensor(results["hazard_logits"])
        hazards = torch.sigmoid(logits).numpy()
        surv = survival_from_hazard_logits(logits).numpy()
        for k in range(hazards.shape[1]):
            frame[f"hazard_{k}"] = hazards[:, k]
        for k in range(surv.shape[1]):
            frame[f"surv_{k}"] = surv[:, k]
    return frame


def git_commit(cwd: Path | None = None) -> str | None:
    """Current git commit of the survlab checkout, or None when not in a git checkout."""
    try:
        root = Path(survlab.__file__).resolve().parent.parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd or root,
                               capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
