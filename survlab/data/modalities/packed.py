"""Packed feature store: every slide bag of one cohort (one encoder, one scale) in ONE flat file plus offsets.

Layout of a store folder (survlab writes it; it never lives inside the user's data folders):
  features.bin  raw [total_patches, D] array in `dtype` (fp16 by default), slides back to back
  coords.bin    raw [total_patches, 2] float32, as survlab's loaders return them (only when every source has coords)
  index.json    cohort key, dim, dtype, and per slide: offset, n_patches, source file, its size and mtime_ns
  .survlab-cohort.json  ownership marker (survlab may rebuild / delete what carries it)

Why: reading a bag is then one positioned read (`pread`) of a contiguous byte range: no per-file open / unpickle /
h5 decode. The OS page cache holds the whole cohort when it fits, and a cohort larger than RAM still trains: the file
is read, not mapped into the process, so resident memory is bounded by the batch, not by the cohort (a kept memory
map would count every page an epoch touched in the process's RSS).

Validity: `open_packed` re-stats every source file (size + mtime_ns, no data read) and rebuilds a store whose sources
changed or was truncated; `verify` re-reads every source and compares the bags bit for bit (`survlab.cli.pack --verify`).
A store written for another cohort (another set of slides, encoder, scale or dim) is refused, never overwritten.

Bags stored in fp16 equal the source bits when the sources are fp16 (CLAM / TRIDENT write fp32 or fp16); fp32
sources are rounded to fp16 exactly like the RAM cache does (`cache_dtype`); `dtype: float32` keeps them exact.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from survlab.data.cohort.checks import DataFileError

log = logging.getLogger(__name__)

INDEX = "index.json"
MARKER = ".survlab-cohort.json"
FORMAT_VERSION = 1
_DTYPES = {"float16": np.float16, "float32": np.float32, "bfloat16": None}


def cohort_key(slide_ids: Sequence[str], encoder: str | None, scale: str | None, dim: int) -> str:
    """What a store was written for: sha256 of its sorted slide ids, encoder, scale and feature dim."""
    h = hashlib.sha256(json.dumps([sorted(slide_ids), encoder, scale, int(dim)]).encode())
    return h.hexdigest()


def _fingerprint(path: Path) -> tuple[int, int]:
    st = path.stat()
    return int(st.st_size), int(st.st_mtime_ns)


@dataclass
class _Slide:
    offset: int
    n: int
    source: str
    size: int
    mtime_ns: int


class PackedStore:
    """Read side of a packed store: `read(slide_id)` -> (features [N, D] in the store dtype, coords [N, 2] | None).

    The file is opened lazily in each process (DataLoader workers, DDP ranks); descriptors are never pickled.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        meta = json.loads((self.folder / INDEX).read_text())
        self.meta = meta
        self.dim, self.dtype = int(meta["dim"]), str(meta["dtype"])
        self.total = int(meta["total_patches"])
        self.has_coords = bool(meta["has_coords"])
        self.slides = {s: _Slide(**v) for s, v in meta["slides"].items()}
        self._feats: int | None = None  # file descriptors, opened lazily per process
        self._coords: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_feats"] = state["_coords"] = None
        return state

    def __del__(self) -> None:
        for fd in (self._feats, self._coords):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass

    @property
    def nbytes(self) -> int:
        return self.total * self.dim * np.dtype(_DTYPES[self.dtype]).itemsize

    def _fds(self) -> tuple[int, int | None]:
        if self._feats is None:
            self._feats = os.open(self.folder / "features.bin", os.O_RDONLY)
            if self.has_coords:
                self._coords = os.open(self.folder / "coords.bin", os.O_RDONLY)
        return self._feats, self._coords

    @staticmethod
    def _pread(fd: int, out: np.ndarray, offset: int, what: Path) -> None:
        """Fill `out` with the bytes of `fd` at `offset` (positioned reads: no file position shared by threads)."""
        view, done = memoryview(out).cast("B"), 0
        while done < out.nbytes:
            n = os.preadv(fd, [view[done:]], offset + done)
            if n <= 0:
                raise DataFileError(
                    f"{what}: shorter than its index (truncated?); delete the folder to rebuild it"
                )
            done += n

    def n_patches(self, slide_id: str) -> int:
        return self.slides[slide_id].n

    def read(self, slide_id: str) -> tuple[Tensor, Tensor | None]:
        """One slide's bag: features [N, D] (store dtype), coords [N, 2] float32 or None — read with positioned
        reads into fresh buffers, so host memory holds the batch, never the whole store (the OS page cache keeps
        what fits)."""
        s = self.slides[slide_id]
        fd, cfd = self._fds()
        feats = np.empty((s.n, self.dim), dtype=_DTYPES[self.dtype])
        self._pread(fd, feats, s.offset * self.dim * feats.itemsize, self.folder / "features.bin")
        coords = None
        if cfd is not None:
            coords = np.empty((s.n, 2), dtype=np.float32)
            self._pread(cfd, coords, s.offset * 2 * 4, self.folder / "coords.bin")
        return torch.from_numpy(feats), None if coords is None else torch.from_numpy(coords)

    def stale_sources(self) -> list[str]:
        """Source files whose size or mtime changed since the store was built (or that are gone)."""
        bad = []
        for s in self.slides.values():
            p = Path(s.source)
            if not p.is_file() or _fingerprint(p) != (s.size, s.mtime_ns):
                bad.append(s.source)
        return bad

    def truncated(self) -> bool:
        """True when features.bin / coords.bin are shorter or longer than the index says."""
        want = self.nbytes
        got = (
            (self.folder / "features.bin").stat().st_size if (self.folder / "features.bin").is_file() else -1
        )
        if got != want:
            return True
        if self.has_coords:
            c = self.folder / "coords.bin"
            return not c.is_file() or c.stat().st_size != self.total * 2 * 4
        return False


def build_packed(
    folder: str | Path,
    slide_paths: dict[str, Path],
    read: Any,
    key: str,
    dim: int,
    dtype: str = "float16",
    cohort: str = "",
) -> PackedStore:
    """Write a packed store for `slide_paths` (slide_id -> source file) into `folder` (atomically: a temp folder
    renamed into place). `read(slide_id)` -> (features [N, D] float, coords [N, 2] | None) reads one source bag
    with all of survlab's checks. Slides are written in sorted slide_id order."""
    if dtype not in _DTYPES or _DTYPES[dtype] is None:
        raise ValueError(f"wsi.packed_dtype must be float16 or float32, got {dtype!r}")
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # a fresh uniquely named folder (never an existing one): only it is removed if the build fails
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
    try:
        return _write_packed(tmp, folder, slide_paths, read, key, dim, dtype, cohort)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_packed(
    tmp: Path,
    folder: Path,
    slide_paths: dict[str, Path],
    read: Any,
    key: str,
    dim: int,
    dtype: str,
    cohort: str,
) -> PackedStore:
    """The body of `build_packed`: write everything into `tmp`, then rename it to `folder`."""
    np_dtype = _DTYPES[dtype]
    start, offset, slides, has_coords = time.perf_counter(), 0, {}, True
    coords_parts: list[np.ndarray] = []
    with open(tmp / "features.bin", "wb") as out:
        for sid in sorted(slide_paths):
            path = Path(slide_paths[sid])
            size, mtime = _fingerprint(path)
            feats, coords = read(sid)
            arr = feats.detach().cpu().numpy().astype(np_dtype, copy=False)
            out.write(np.ascontiguousarray(arr).tobytes())
            if coords is None:
                has_coords = False
            elif has_coords:
                coords_parts.append(coords.detach().cpu().float().numpy())
            slides[sid] = {
                "offset": offset,
                "n": int(arr.shape[0]),
                "source": str(path.resolve()),
                "size": size,
                "mtime_ns": mtime,
            }
            offset += int(arr.shape[0])
    if has_coords and coords_parts:
        np.concatenate(coords_parts).tofile(tmp / "coords.bin")
    meta = {
        "format_version": FORMAT_VERSION,
        "cohort": cohort,
        "cohort_key": key,
        "dim": int(dim),
        "dtype": dtype,
        "total_patches": offset,
        "has_coords": bool(has_coords and coords_parts),
        "slides": slides,
    }
    (tmp / INDEX).write_text(json.dumps(meta))
    (tmp / MARKER).write_text(json.dumps({"written_by": "survlab.data.modalities.packed", "cohort": cohort}))
    if folder.exists():
        _remove_own(folder)
    tmp.rename(folder)
    log.info(
        "packed %d slides (%d patches, %.2f GB) into %s in %.1fs",
        len(slides),
        offset,
        offset * dim * np.dtype(np_dtype).itemsize / 1e9,
        folder,
        time.perf_counter() - start,
    )
    return PackedStore(folder)


def _remove_own(folder: Path) -> None:
    """Delete a packed store folder survlab wrote (marker present); refuse anything else."""
    if not (folder / MARKER).is_file():
        raise DataFileError(
            f"{folder}: exists but is not a survlab packed store (no {MARKER}); survlab never deletes it: set "
            f"data.wsi.packed_dir to an empty or new folder"
        )
    shutil.rmtree(folder)


def open_packed(
    folder: str | Path,
    slide_paths: dict[str, Path],
    read: Any,
    key: str,
    dim: int,
    dtype: str = "float16",
    cohort: str = "",
) -> PackedStore:
    """The packed store at `folder` for exactly these slides: built if absent, rebuilt if a source changed or the
    store is truncated, refused (one-line DataFileError) if it was written for another cohort."""
    folder = Path(folder)
    if (folder / INDEX).is_file():
        store = PackedStore(folder)
        if store.meta.get("cohort_key") != key:
            raise DataFileError(
                f"{folder}: packed store written for another cohort ({store.meta.get('cohort') or '?'}, "
                f"{len(store.slides)} slides) than data={cohort} ({len(slide_paths)} slides); set data.wsi.packed_dir "
                f"to a folder of its own, or delete {folder} to rebuild it"
            )
        if store.dtype != dtype:
            log.warning("packed store %s holds %s, config asks %s: rebuilding", folder, store.dtype, dtype)
        elif store.truncated():
            log.warning("packed store %s is truncated: rebuilding", folder)
        else:
            stale = store.stale_sources()
            if not stale:
                return store
            log.warning(
                "packed store %s: %d source file(s) changed since it was built (e.g. %s): rebuilding",
                folder,
                len(stale),
                stale[0],
            )
    elif folder.exists() and any(folder.iterdir()):
        _remove_own(folder)  # raises unless it is ours (e.g. an interrupted build left only the marker)
    return build_packed(folder, slide_paths, read, key, dim, dtype, cohort)


def verify(store: PackedStore, read: Any) -> list[str]:
    """Re-read every source bag and compare it with the packed one, bit for bit after the cast to the store dtype.
    -> slide ids that differ (empty: the store is exact)."""
    np_dtype = _DTYPES[store.dtype]
    bad = []
    for sid in sorted(store.slides):
        feats, coords = read(sid)
        got_f, got_c = store.read(sid)
        want = torch.from_numpy(feats.numpy().astype(np_dtype))
        same = torch.equal(
            got_f.view(torch.int16 if np_dtype == np.float16 else torch.int32),
            want.view(torch.int16 if np_dtype == np.float16 else torch.int32),
        )
        if coords is not None and got_c is not None:
            same = same and torch.equal(got_c, coords.float())
        if not same:
            bad.append(sid)
    return bad
