"""Small file helpers shared by the data layer and the job bookkeeping."""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write `data` to a temp file beside `path`, then rename it over `path` (readers never see half a file;
    concurrent writers of identical content are harmless)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(data, str):
        tmp.write_text(data)
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)
