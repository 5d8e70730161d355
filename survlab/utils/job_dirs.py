"""Where a job runs: its dir name under a sweep (`job_tag` over the swept keys that `record_sweep_keys` wrote) and
the lock a live job holds on it (`JobLock`).

Sweep job dirs are named `<model>/<cohort>/fold<k>` plus the swept keys' values (`job_tag`), so `-m seed=0,1` or
`model.task.lr=1e-3,1e-4` get one dir per value. A live job holds `<dir>/.lock`.

    >>> job_tag("/nonexistent", ["model=abmil", "seed=1", "trainer.enable_progress_bar=false"])
    '/seed=1'
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from survlab.utils.files import atomic_write
from survlab.utils.jobs import LOCATION_KEYS, LOCK, SWEEP_KEYS, JobError, is_non_identity, override_key

_TAG_MAX = 80

__all__ = ["JobLock", "record_sweep_keys", "job_tag"]


class JobLock:
    """Exclusive lock on `<out_dir>/.lock` for the life of a job (released by the OS if the process dies).

    A second job started on the same dir raises JobError instead of writing into the first one's outputs."""

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.path = Path(out_dir) / LOCK
        self._fd: int | None = None

    def __enter__(self) -> JobLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise JobError(
                f"{self.path.parent} is in use by another running job ({holder}); wait for it or use another "
                f"hydra.run.dir / hydra.sweep.dir"
            ) from None
        self._fd = fd
        return self

    def claim(self) -> None:
        """Write this process as the holder into `.lock` (call it once the job is known to run here: a refused job
        leaves the dir's `.lock` as it was)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"pid {os.getpid()} on {os.uname().nodename}".encode(), 0)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None


def record_sweep_keys(
    sweep_dir: str | os.PathLike, overrides: Iterable[str], params: Iterable[str] = ()
) -> list[str]:
    """Write `<sweep_dir>/sweep_keys.json`: the keys a multirun sweeps (command-line sweeps such as `seed=0,1`,
    plus the sweeper's `params`), read by `job_tag` to name each job dir."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    keys = sorted({o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()} | set(params))
    out = Path(sweep_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / SWEEP_KEYS, json.dumps({"swept": keys}))
    return keys


def job_tag(sweep_dir: str, overrides: Sequence[str]) -> str:
    """The part of a sweep job's dir after `<model>/<cohort>/fold<k>`: '' or '/key=value,...' over the swept keys
    (other than model, data, fold) of this job's overrides; all of its result-changing overrides when the sweep's
    keys were not recorded. Long tags end in a hash, so distinct override sets never share a dir."""
    try:
        swept = set(json.loads((Path(sweep_dir) / SWEEP_KEYS).read_text())["swept"])
    except (OSError, ValueError, KeyError):
        swept = None
    items = []
    for o in overrides:
        key = override_key(str(o))
        if key in LOCATION_KEYS or is_non_identity(key) or (swept is not None and key not in swept):
            continue
        items.append(re.sub(r"[^\w.,=+\-\[\]]", "_", str(o).lstrip("+~")))
    if not items:
        return ""
    tag = ",".join(sorted(items))
    if len(tag) > _TAG_MAX:
        tag = f"{tag[: _TAG_MAX - 13]}..{hashlib.sha256(tag.encode()).hexdigest()[:10]}"
    return "/" + tag


#: in-place steps the job applies to its config before `identity_of` (survlab.run registers resolve_auto), applied
