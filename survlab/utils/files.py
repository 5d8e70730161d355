"""Small file helpers shared by the data layer and the job bookkeeping."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


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


class JSONFileError(ValueError):
    """A JSON file survlab cannot take as written (unparsable, or a key given twice in one object); the one-line
    message names the file, the key and the fix."""


class DuplicateKeyError(JSONFileError):
    """A key given twice in one JSON object (json.loads would keep the last value without a word)."""


def _refuse_duplicates(source: str) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """`object_pairs_hook` for json.loads that raises JSONFileError on a key given twice in one object (the json module
    would silently keep the last value)."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise DuplicateKeyError(
                    f"{source}: key {key!r} appears twice in one JSON object (values {out[key]!r:.60} and "
                    f"{value!r:.60}); JSON readers keep only the last one silently: keep one {key!r}"
                )
            out[key] = value
        return out

    return hook


def loads_json(text: str, source: str = "<string>") -> Any:
    """json.loads that refuses a key given twice in one object (JSONFileError naming `source` and the key)."""
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicates(source))
    except json.JSONDecodeError as err:
        raise JSONFileError(f"{source}: not valid JSON ({err}); fix or regenerate the file") from None


def read_json(path: str | os.PathLike) -> Any:
    """The JSON value in `path` (UTF-8); a key given twice in one object or a parse error is a one-line JSONFileError
    naming the file. For every JSON file a user may write or edit (prompts, preprocessing.json, split meta)."""
    path = Path(path)
    return loads_json(path.read_text(encoding="utf-8"), str(path))
