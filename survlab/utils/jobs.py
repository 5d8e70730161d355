"""A job dir's files: the markers a run ends with, the multirun's outcomes, the job record, and the keys that are not
part of a job's identity.

Every run (one model × cohort × fold job) ends by writing exactly one marker into its Hydra output dir:

- ``DONE``   (empty) — written LAST, after ``metrics.json``/``predictions.csv``; a re-run sweep skips the job.
- ``FAILED`` (text)  — the exception and its traceback; a re-run sweep runs the job again.

A job dir with ``.hydra/`` (Hydra wrote its config) but neither marker is *incomplete* (killed, still running).

A job of a multirun that did not complete also appends one line to ``<sweep dir>/outcomes.jsonl`` (emptied when the
multirun starts): ``failed`` (it ran and raised: ``FAILED`` is in its dir) or ``refused`` (it never ran: its dir
holds another configuration's job or a live job, or the config is bad; the dir is left untouched, so its markers
still describe the earlier job). The sweep summary counts refusals apart from completions and the multirun exits
non-zero.

The job's identity (`job.json`) is computed and checked in survlab.utils.job_identity, its dir name and lock are in
survlab.utils.job_dirs, and the Hydra resolvers that keep a refused job from writing are in survlab.utils.job_hydra.

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
import re
import traceback
from pathlib import Path
from typing import Any

from survlab.utils.files import atomic_write

DONE = "DONE"
FAILED = "FAILED"
METRICS = "metrics.json"
RECORD = "job.json"
LOCK = ".lock"
SWEEP_KEYS = "sweep_keys.json"
OUTCOMES = "outcomes.jsonl"

#: config keys (dotted) that cannot change a job's results: left out of its identity and of its dir name
NON_IDENTITY = (
    "paths",
    "hydra",
    "skip_completed",
    "ckpt_path",
    "resume",
    "logger",
    "tags",
    "optimized_metric",
    "export_attention",
    "export_attention_h5",
    "attention_top_k",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
    "callbacks.rich_progress_bar",
    "callbacks.lr_monitor",
    "pipeline.rerun",
    "data.time_unit",
    "callbacks.epoch_log",
    # DataLoader workers / pinning never change a batch (draws are seeded by seed, epoch, patient), and `auto`
    # resolves differently per machine
    "data.num_workers",
    "data.pin_memory",
    "data.persistent_workers",
)
#: keys already in the job dir path <model>/<cohort>/fold<k>
LOCATION_KEYS = ("model", "data", "fold")


class JobError(RuntimeError):
    """A job dir cannot be used: another configuration's results, or another live job, are in it."""


__all__ = [
    "JobError",
    "DONE",
    "FAILED",
    "METRICS",
    "RECORD",
    "LOCK",
    "SWEEP_KEYS",
    "OUTCOMES",
    "NON_IDENTITY",
    "LOCATION_KEYS",
    "job_is_complete",
    "job_status",
    "clear_markers",
    "mark_done",
    "mark_failed",
    "read_job_metric",
    "first_error_line",
    "error_line",
    "start_outcomes",
    "record_outcome",
    "read_outcomes",
    "read_record",
    "override_key",
    "is_non_identity",
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


def error_line(exc: BaseException) -> str:
    """The one line that says what went wrong. survlab's own errors (bad input, bad config, a job dir in use) are
    their message; other exceptions get their type in front. An error raised in a DataLoader worker arrives wrapped
    ("Caught ValueError in DataLoader worker process 0. Original Traceback ..."): its last line is the original."""
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if lines and lines[0].startswith("Caught ") and "DataLoader worker" in lines[0] and len(lines) > 1:
        return re.sub(r"^(ValueError|FileNotFoundError|KeyError): ", "", lines[-1])
    own = (ValueError, FileNotFoundError, KeyError, JobError, OSError)
    first = lines[0] if lines else ""
    if isinstance(exc, own) and first:
        if isinstance(exc, OSError) and getattr(exc, "filename", None) and str(exc.filename) not in first:
            first = f"{first}: {exc.filename}"
        return first
    return f"{type(exc).__name__}: {first}".strip().rstrip(":")


def mark_failed(out_dir: str | os.PathLike, exc: BaseException) -> None:
    """Write ``FAILED``: the one-line error (`error_line`), then the traceback; remove a stale ``DONE``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / DONE).unlink(missing_ok=True)
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    atomic_write(out / FAILED, f"{error_line(exc)}\n\n{tb}")


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


def start_outcomes(sweep_dir: str | os.PathLike) -> None:
    """Empty `<sweep_dir>/outcomes.jsonl` at the start of a multirun (it lists this multirun's jobs only)."""
    out = Path(sweep_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / OUTCOMES, "")


def record_outcome(sweep_dir: str | os.PathLike, job_dir: str | os.PathLike, outcome: str, line: str) -> None:
    """Append {"dir", "outcome" (failed | refused), "error"} for a job of this multirun that did not complete (one
    short O_APPEND write, so jobs in parallel processes do not interleave)."""
    record = json.dumps({"dir": str(Path(job_dir).resolve()), "outcome": outcome, "error": line}) + "\n"
    fd = os.open(Path(sweep_dir) / OUTCOMES, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, record.encode())
    finally:
        os.close(fd)


def read_outcomes(sweep_dir: str | os.PathLike) -> dict[str, dict[str, str]]:
    """The latest multirun's failed / refused jobs: resolved job dir -> {"outcome", "error"} ({} when none)."""
    try:
        text = (Path(sweep_dir) / OUTCOMES).read_text()
    except OSError:
        return {}
    out: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash: skip it
        out[str(rec["dir"])] = {"outcome": str(rec["outcome"]), "error": str(rec.get("error", ""))}
    return out


def read_record(out_dir: str | os.PathLike) -> dict[str, Any]:
    """`job.json` of a job dir ({} when absent or unreadable)."""
    try:
        return json.loads((Path(out_dir) / RECORD).read_text())
    except (OSError, ValueError):
        return {}


def override_key(override: str) -> str:
    """'+model.task.lr=1e-3' -> 'model.task.lr'."""
    return override.split("=", 1)[0].lstrip("+~")


def is_non_identity(key: str) -> bool:
    """True for keys (dotted, or config groups like `logger`) that cannot change a job's results."""
    return any(key == k or key.startswith(k + ".") or key.startswith(k + "/") for k in NON_IDENTITY)
