"""`TimeBins`: discrete-time survival bins fitted on the training patients' event times (quantile edges), with
`transform` (time -> bin) and their JSON form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from survlab.utils.files import read_json


@dataclass
class TimeBins:
    """Discrete-time bins for hazard models, fitted on TRAINING patients only.

    Convention (MCAT-like): inner edges are the quantiles of the training EVENT times (uncensored), the outer
    edges are 0 and +inf, so every time (also test times beyond the training range) falls in a bin.
    Bin k holds edges[k] <= t < edges[k+1]; `edges` has n_bins + 1 entries. Tied quantiles give empty bins
    (n_bins is kept fixed because the network output size depends on it).
    """

    edges: np.ndarray

    @classmethod
    def fit(cls, times: np.ndarray, events: np.ndarray, n_bins: int = 4) -> TimeBins:
        """times [N] (months), events [N] (bool) -> TimeBins with n_bins + 1 edges."""
        times, events = np.asarray(times, float), np.asarray(events, bool)
        if n_bins < 1:
            raise ValueError(f"n_bins must be >= 1, got {n_bins}")
        event_times = times[events]
        if event_times.size == 0:
            raise ValueError("TimeBins.fit: no events among the training patients; cannot place bin edges")
        inner = np.quantile(event_times, np.linspace(0, 1, n_bins + 1)[1:-1]) if n_bins > 1 else np.array([])
        return cls(np.concatenate([[0.0], inner, [np.inf]]))

    @property
    def n_bins(self) -> int:
        return len(self.edges) - 1

    def transform(self, times: np.ndarray) -> np.ndarray:
        """times [N] -> bin indices [N] (int64, in 0..n_bins-1)."""
        idx = np.searchsorted(self.edges[1:-1], np.asarray(times, float), side="right")
        return idx.astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: +inf is written as the string 'inf'."""
        return {
            "edges": [e if np.isfinite(e) else "inf" for e in self.edges.tolist()],
            "convention": "quantile",
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TimeBins:
        return cls(np.array([float(e) for e in d["edges"]], dtype=float))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> TimeBins:
        return cls.from_dict(read_json(path))
