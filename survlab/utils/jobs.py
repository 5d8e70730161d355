"""Job markers for resumable sweeps.

Every run (one model × cohort × fold job) ends by writing exactly one marker into its Hydra output dir:

- ``DONE``   (empty) — written LAST, after ``metrics.json``/``predictions.csv``; a re-run sweep skips the job.
- ``FAILED`` (text)  — the exception and its traceback; a re-run sweep runs the job again.

A job dir with ``.hydra/`` (Hydra wrote its config) but neither marker is *incomplete* (killed, still running).

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> job_is_complete(d)
    False
    >>> _ = (d / "metrics.json").write_text('{"test/cindex": 0.7}')
    >>> mark_done(d)
    >>> job_is_complete(d), read_job_metric(d, "test/cindex")
    (True, 0.7)
"""

from __future__ import annotations

import json
import math
import os
import traceback
from pathlib import Path

from survlab.utils.files import atomic_write

DONE = "DONE"
FAILED = "FAILED"
METRICS = "metrics.json"

__all__ = [
    "DONE",
    "FAILED",
    "METRICS",
    "job_is_complete",
    "job_status",
    "clear_markers",
    "mark_done",
    "mark_failed",
    "read_job_metric",
    "first_error_line",
]


def job_is_complete(out_dir: str | os.PathLike) -> bool:
    """True when the job in ``out_dir`` finished: ``DONE`` exists and ``metrics.json`` is readable."""
    out = Path(out_dir)
    if not (out / DONE).is_file():
        return False
    try:
        json.loads((out / METRICS).read_text())
    except (OSError, ValueError):
        return False  # DONE without readable metrics: treat as not complete, run it again
    return True


def job_status(out_dir: str | os.PathLike) -> str:
    """``"done"``, ``"failed"`` or ``"incomplete"`` (started but no marker)."""
    if job_is_complete(out_dir):
        return "done"
    if (Path(out_dir) / FAILED).is_file():
        return "failed"
    return "incomplete"


def clear_markers(out_dir: str | os.PathLike) -> None:
    """Remove ``DONE``/``FAILED`` before a (re-)run starts, so a job killed mid-way reads as incomplete."""
    out = Path(out_dir)
    for name in (DONE, FAILED):
        (out / name).unlink(missing_ok=True)


def mark_done(out_dir: str | os.PathLike) -> None:
    """Write the empty ``DONE`` marker (call it last) and remove a ``FAILED`` marker left by an earlier attempt."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / FAILED).unlink(missing_ok=True)
    atomic_write(out / DONE, "")


def mark_failed(out_dir: str | os.PathLike, exc: BaseException) -> None:
    """Write ``FAILED`` with the exception (first line) and its traceback; remove a stale ``DONE``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / DONE).unlink(missing_ok=True)
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    msg = str(exc).strip().splitlines()
    head = f"{type(exc).__name__}: {msg[0] if msg else ''}".strip()
    atomic_write(out / FAILED, f"{head}\n\n{tb}")


def read_job_metric(out_dir: str | os.PathLike, key: str) -> float:
    """``metrics.json[key]`` as float (NaN when missing, null or not a number)."""
    try:
        value = json.loads((Path(out_dir) / METRICS).read_text()).get(key)
        return float(value) if value is not None else math.nan
    except (OSError, ValueError, TypeError):
        return math.nan


def first_error_line(out_dir: str | os.PathLike) -> str:
    """First non-empty line of ``FAILED`` (``""`` when there is none)."""
    try:
        for line in (Path(out_dir) / FAILED).read_text().splitlines():
            if line.strip():
                return line.strip()
    except OSError:
        pass
    return ""
