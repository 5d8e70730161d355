"""A generated cohort folder, built once and atomically (`atomic_cohort`): written into a temporary sibling and renamed
into place with an ownership marker listing its files, returned untouched when its cache key is current, and never
written over a folder that holds files survlab did not create. Used by the synthetic and public cohort writers.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

OWNER_MARKER = (
    ".survlab-cohort.json"  # written by `atomic_cohort` into every folder it creates: proof of ownership
)
_SPLIT_FILE_NAMES = ("meta.json", "splits_")  # what `ensure_splits` writes under <root>/splits/


def _files_under(root: Path) -> list[str]:
    """Every file (or symlink) below `root` as a sorted relative POSIX path."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink())


def _foreign_files(root: Path) -> list[str]:
    """Files under `root` that survlab did not create there: all of them unless `root/OWNER_MARKER` lists the
    files `atomic_cohort` wrote; survlab's own split files (splits/**/meta.json, splits_<k>.csv) are its too."""
    try:
        owned = set(json.loads((root / OWNER_MARKER).read_text())["files"]) | {OWNER_MARKER}
    except (OSError, ValueError, KeyError, TypeError):
        owned = set()
    return [
        f
        for f in _files_under(root)
        if f not in owned
        and not (owned and f.startswith("splits/") and Path(f).name.startswith(_SPLIT_FILE_NAMES))
    ]


def atomic_cohort(
    root: str | Path, key: dict[str, Any], marker: str, write: Callable[[Path], None], what: str = "synthetic"
) -> Path:
    """Build a generated cohort folder once; never delete or overwrite a file survlab did not create.

    If ``root/marker`` (or the ownership marker) holds ``"cache_key": key``, return ``root`` untouched. Otherwise
    ``write(tmp_dir)`` into a sibling temp folder, record what it wrote in ``root/.survlab-cohort.json`` and rename it
    into place, so a half-written cohort is never visible and concurrent builders of the same cohort are harmless.
    ``root`` may be absent, empty, or a stale cohort that this function created (its split files included); a
    folder holding anything else -> one-line ValueError naming a foreign file (``what`` names the config setting).
    """
    root = Path(root)

    def is_current() -> bool:
        for name in (OWNER_MARKER, marker):
            try:
                if json.loads((root / name).read_text()).get("cache_key") == key:
                    return True
            except (OSError, ValueError, AttributeError):
                pass
        return False

    def check_replaceable() -> None:
        if root.is_symlink() or (root.exists() and not root.is_dir()):
            raise ValueError(
                f"{what}: {root} is a {'symlink' if root.is_symlink() else 'file'}, not a folder survlab created; "
                f"point root at a new folder"
            )
        foreign = _foreign_files(root) if root.is_dir() else []
        if foreign:
            raise ValueError(
                f"{what}: {root} holds files survlab did not create (e.g. {foreign[0]}; {len(foreign)} in all); "
                f"survlab never deletes or overwrites them: point root at a new folder, or remove the '{what}:' "
                f"setting to read your own files there"
            )

    if is_current():
        return root
    check_replaceable()  # before the (slow) write: fail in a second
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        write(tmp)
        owner = {"created_by": "survlab", "cache_key": key, "files": _files_under(tmp)}
        (tmp / OWNER_MARKER).write_text(json.dumps(owner, indent=1, sort_keys=True) + "\n")
        if (
            root.exists() and not is_current()
        ):  # stale cohort survlab created (or an empty dir): move it aside
            check_replaceable()
            stale = root.parent / f".{root.name}.stale-{uuid.uuid4().hex[:8]}"
            try:
                root.rename(stale)
                shutil.rmtree(stale, ignore_errors=True)
            except FileNotFoundError:
                pass
        try:
            tmp.rename(root)
        except OSError:  # another worker won the race
            if not is_current():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
