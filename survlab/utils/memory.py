"""Host memory this process may still fill: the lower of the machine's available memory and its cgroup's headroom.

`cache: auto` sizes the RAM cache with it: a cap in the config (`cache_max_gb`) larger than what a SLURM job or a
container may use otherwise ends in a silent OOM kill during setup.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "meminfo").write_text("MemTotal: 8000000 kB\\nMemAvailable: 6000000 kB\\n")
    >>> available_bytes(meminfo=d / "meminfo", dirs=[])
    6144000000
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

NO_LIMIT = 1 << 60  # cgroup v1 writes ~2^63 for "no limit"


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
        return None if text in ("", "max") else int(text)
    except (OSError, ValueError):
        return None


def _stat(path: Path) -> dict[str, int]:
    try:
        return {
            k: int(v) for k, v in (line.split() for line in path.read_text().splitlines() if line.strip())
        }
    except (OSError, ValueError):
        return {}


def mem_available(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None where there is none, e.g. not Linux)."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cgroup_dirs(
    proc_cgroup: Path = Path("/proc/self/cgroup"), mount: Path = Path("/sys/fs/cgroup")
) -> list[Path]:
    """The memory cgroup folders of this process and their ancestors (v2 unified, or v1 `memory` controller), most
    specific first."""
    out: list[Path] = []
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        base = (
            mount if controllers == "" else mount / "memory" if "memory" in controllers.split(",") else None
        )
        if base is None:
            continue
        # the process's folder and every ancestor up to the mount: SLURM limits job_<id>/ while its tasks run in
        # job_<id>/step_0/user/task_0/ (memory.max "max"); inside a container the path is often the mount's root
        parts = [p for p in rel.split("/") if p]
        for k in range(len(parts), -1, -1):
            d = base.joinpath(*parts[:k])
            if d.is_dir() and d not in out:
                out.append(d)
    return out


def cgroup_headroom(d: Path) -> int | None:
    """Limit minus the non-reclaimable use (anonymous memory) of one cgroup folder; None without a limit."""
    limit = _read_int(d / "memory.max")  # v2
    if limit is not None:
        used = _stat(d / "memory.stat").get("anon")
    else:
        limit = _read_int(d / "memory.limit_in_bytes")  # v1
        stat = _stat(d / "memory.stat")
        used = stat.get("total_rss", stat.get("rss"))
    if limit is None or limit >= NO_LIMIT:
        return None
    return max(0, limit - (used or 0))


def available_bytes(meminfo: Path = Path("/proc/meminfo"), dirs: Sequence[Path] | None = None) -> int | None:
    """Bytes this process may still fill (None where unknown): min(MemAvailable, every cgroup's headroom)."""
    values = [
        mem_available(meminfo),
        *(cgroup_headroom(d) for d in (cgroup_dirs() if dirs is None else dirs)),
    ]
    known = [v for v in values if v is not None]
    return min(known) if known else None
