"""Survival times with tied values and a group effect, for the KM / log-rank tests (tests/metrics/test_km.py) and the
KM figure tests (tests/report/test_km_figure.py)."""

from __future__ import annotations

import numpy as np


def km_data(seed: int, n: int = 90) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(time [n], event [n] bool, group [n] in 0..2): integer times (many ties) shifted by 3 per group."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 3, n)
    time = rng.integers(1, 20, n).astype(float) + 3 * groups  # tied times, group effect
    event = rng.random(n) < 0.65
    return time, event, groups
