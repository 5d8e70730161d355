"""Small file helpers shared by the data layer and the job bookkeeping."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write `data` to a temp file beside `path`, then rename it over `path` (readers never see half a file;
    concurrent writers of identical content are harmless)."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`, on failure delete it and re-raise
    (an OSError names `path`). For writers that take a path: `with atomic_path(p) as t: df.to_csv(t)`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OSError(err.errno, f"cannot write {path} ({err.strerror or err})") from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_writable(path: str | os.PathLike) -> None:
    """Raise OSError ("cannot write <path> (<reason>)") unless a file can be created in `path`, or, when `path` does
    not exist yet, in its nearest existing ancestor (where it would be created). Leaves nothing behind."""
    path = Path(path)
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        with tempfile.TemporaryFile(dir=probe, prefix=".survlab-write-check-"):
            pass
    except OSError as err:
        raise OSError(err.errno, f"cannot write {path} ({err.strerror or err})") from err
