"""WSI patch-feature files (CLAM/TRIDENT layout): slide id <-> file name matching (`slide_key`, `WSI_EXTENSIONS`),
and reading one file's header (`read_header` -> `BagHeader`: rows, dim, coords) or values (`read_bag`:
features [N, D], coords [N, 2] or None) from .h5 or .pt (`weights_only=True`: nothing is unpickled); every bad
file is a one-line `DataFileError` naming it.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from survlab.data.cohort.checks import DataFileError

FORMAT_DIRS = {"h5": "h5_files", "pt": "pt_files"}


_FIX = "extract features with CLAM/TRIDENT or fix slide_id"


# Whole-slide image file extensions, compound ones before their suffix (.ome.tiff before .tiff). CLAM / MCAT /
# TRIDENT keep them in the CSV's slide_id ('X.svs') and drop them from feature file names ('X.h5'); some pipelines
# name the files after the whole slide file ('X.svs.h5'). A slide id and a file name match when equal without it.
WSI_EXTENSIONS: tuple[str, ...] = (
    ".ome.tiff",
    ".ome.tif",
    ".svslide",
    ".isyntax",
    ".qptiff",
    ".tiff",
    ".mrxs",
    ".ndpi",
    ".sdpc",
    ".svs",
    ".tif",
    ".scn",
    ".czi",
    ".vms",
    ".vmu",
    ".bif",
    ".dcm",
    ".kfb",
    ".ome",
)


def slide_key(name: str) -> str:
    """`name` without a trailing WSI extension (case-insensitive): 'X.svs' -> 'X', 'X.ome.tiff' -> 'X', 'X' -> 'X'."""
    low = name.lower()
    for ext in WSI_EXTENSIONS:
        if low.endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)]
    return name


@dataclass(frozen=True)
class BagHeader:
    """What a feature file declares, read without its values: the file, n_patches N, feature dim D and, when asked
    for, its first and last feature rows `edges` [2, D] (to compare two files of one slide cheaply)."""

    path: Path
    n_patches: int
    dim: int
    edges: Tensor | None = None
    dtype: str | None = None  # of the stored features, e.g. "float16" (torch / numpy name)


@dataclass
class _RawBag:
    """One feature file as stored: features shape / dtype, coords shape, and the tensors (.h5: only when values
    were read; .pt: always, memory-mapped when read without values)."""

    shape: tuple[int, ...]
    dtype: str
    numeric: bool
    coords_shape: tuple[int, ...] | None
    features: Tensor | None = None
    coords: Tensor | None = None
    edges: Tensor | None = None


def _edge_index(shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """Indices of the first and last feature row of an array of `shape` ([N, D] or [1, N, D]); None if empty."""
    if len(shape) not in (2, 3) or shape[-2] == 0:
        return None
    lead = (0,) * (len(shape) - 2)
    return (*lead, 0), (*lead, shape[-2] - 1)


def _read_h5(path: Path, values: bool, edges: bool = False) -> _RawBag:
    import h5py

    with h5py.File(path, "r") as f:
        ds = f.get("features")
        if not isinstance(ds, h5py.Dataset):
            raise DataFileError(f"{path}: no 'features' dataset (has {list(f.keys())}); re-extract features")
        c = f.get("coords")
        c = c if isinstance(c, h5py.Dataset) else None
        rows = _edge_index(ds.shape) if edges else None
        return _RawBag(
            tuple(ds.shape),
            str(ds.dtype),
            ds.dtype.kind in "fiu",
            None if c is None else tuple(c.shape),
            torch.from_numpy(np.asarray(ds[()])) if values else None,
            torch.from_numpy(np.asarray(c[()])) if values and c is not None else None,
            torch.from_numpy(np.stack([ds[r] for r in rows])).float() if rows else None,
        )


def _read_pt(path: Path, values: bool, edges: bool = False) -> _RawBag:
    """`torch.load(weights_only=True)`: nothing is unpickled; without `values` the tensors are memory-mapped (the
    header costs no read of the data), except for files in the legacy (non-zip) format."""
    try:
        obj = torch.load(path, weights_only=True, map_location="cpu", mmap=not values)
    except RuntimeError as err:
        if values or "mmap" not in str(err):
            raise
        obj = torch.load(path, weights_only=True, map_location="cpu")
    if isinstance(obj, dict):
        if "features" not in obj:
            raise DataFileError(f"{path}: dict without 'features' key (has {list(obj)}); re-extract features")
        feats, coords = obj["features"], obj.get("coords")
    else:
        feats, coords = obj, None
    if not isinstance(feats, Tensor):
        raise DataFileError(f"{path}: expected a tensor, got {type(feats).__name__}; re-extract features")
    coords = coords if isinstance(coords, Tensor) else None
    numeric = not feats.dtype.is_complex and feats.dtype != torch.bool
    rows = _edge_index(tuple(feats.shape)) if edges and numeric else None
    return _RawBag(
        tuple(feats.shape),
        str(feats.dtype).removeprefix("torch."),
        numeric,
        None if coords is None else tuple(coords.shape),
        feats,
        coords,
        torch.stack([feats[r] for r in rows]).float() if rows else None,
    )


def _read_raw(path: Path, values: bool, edges: bool = False) -> _RawBag:
    """Open a .h5 / .pt feature file (values or header only); any failure -> one-line DataFileError naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"feature file not found: {path}; {_FIX}")
    if path.stat().st_size == 0:
        raise DataFileError(
            f"{path}: 0-byte file (feature extraction interrupted?); delete it and re-extract features for this slide"
        )
    try:
        return (_read_h5 if path.suffix == ".h5" else _read_pt)(path, values, edges)
    except (DataFileError, FileNotFoundError):
        raise
    except pickle.UnpicklingError as err:
        found = re.search(
            r"GLOBAL ([\w.]+)", str(err)
        )  # weights_only refused a Python object: not corruption
        if found is None:
            raise DataFileError(
                f"{path}: corrupt or unreadable feature file (not a torch file); delete it and re-extract features "
                f"with CLAM/TRIDENT"
            ) from err
        raise DataFileError(
            f"{path}: corrupt or unreadable feature file: it holds a pickled Python object ({found.group(1)}), "
            f"which survlab never unpickles; re-save the features as a tensor: torch.save(torch.as_tensor(x), path)"
        ) from err
    except Exception as err:  # noqa: BLE001 - corrupt / truncated files
        detail = " ".join(str(err).split())[:120]
        raise DataFileError(
            f"{path}: corrupt or unreadable feature file ({type(err).__name__}: {detail}); "
            f"delete it and re-extract features with CLAM/TRIDENT"
        ) from err


def _bag_shape(path: Path, raw: _RawBag, feature_dim: int | None) -> tuple[int, int]:
    """(N, D) of a stored bag after the checks every reader shares (shape, dtype, dim, coords)."""
    shape = raw.shape[1:] if len(raw.shape) == 3 and raw.shape[0] == 1 else raw.shape  # some save [1, N, D]
    if len(shape) in (1, 2) and shape[0] == 0:  # TRIDENT writes shape (0,) for a slide without tissue patches
        raise DataFileError(
            f"{path}: empty bag (0 patches); re-extract features or remove the slide from the CSV"
        )
    if len(shape) != 2 or shape[1] == 0:
        raise DataFileError(
            f"{path}: features must be 2-D [N, D], got shape {tuple(raw.shape)}; re-extract features"
        )
    if not raw.numeric:
        raise DataFileError(f"{path}: features dtype {raw.dtype} is not numeric; re-extract features")
    n, d = int(shape[0]), int(shape[1])
    if feature_dim is not None and d != feature_dim:
        raise DataFileError(
            f"{path}: feature dim {d} != configured feature_dim {feature_dim}; set wsi.feature_dim "
            f"or use the matching encoder"
        )
    if raw.coords_shape is not None:
        cs = (
            raw.coords_shape[1:]
            if len(raw.coords_shape) == 3 and raw.coords_shape[0] == 1
            else raw.coords_shape
        )
        if tuple(cs) != (n, 2):
            raise DataFileError(
                f"{path}: coords shape {tuple(cs)} does not match the features ({n} patches); features and coords "
                f"come from different extractions: re-extract features for this slide"
            )
    return n, d


def read_header(path: str | Path, feature_dim: int | None = None, edges: bool = False) -> BagHeader:
    """Check a feature file without reading its values (h5 header; .pt memory-mapped): readable, 2-D, non-empty,
    numeric, dim = `feature_dim` (if given), coords [N, 2]. One-line DataFileError naming the file otherwise.
    `edges`: also read the first and last feature rows."""
    path = Path(path)
    raw = _read_raw(path, values=False, edges=edges)
    n, d = _bag_shape(path, raw, feature_dim)
    return BagHeader(path, n, d, raw.edges, raw.dtype)


def read_bag(path: str | Path, feature_dim: int | None = None) -> tuple[Tensor, Tensor | None]:
    """Read one slide bag -> (features [N, D] float32, coords [N, 2] or None). Errors name the file and the fix."""
    path = Path(path)
    raw = _read_raw(path, values=True)
    n, d = _bag_shape(path, raw, feature_dim)
    feats = raw.features.reshape(n, d).float()
    if not torch.isfinite(feats).all():
        n_bad = int((~torch.isfinite(feats)).any(dim=1).sum())
        raise DataFileError(
            f"{path}: {n_bad} patch(es) with NaN/Inf features; re-extract features for this slide"
        )
    return feats, None if raw.coords is None else raw.coords.reshape(n, 2)


def _check_twin(kept: BagHeader, twin: BagHeader) -> None:
    """An .h5 and a .pt of one slide must hold the same bag (shape, first and last rows): else one is stale."""
    same = (kept.n_patches, kept.dim) == (twin.n_patches, twin.dim) and torch.allclose(
        kept.edges, twin.edges, rtol=1e-3, atol=1e-3
    )
    if not same:
        raise DataFileError(
            f"{kept.path}: holds other features than {twin.path}; delete the stale one of the two or set "
            f"data.wsi.format to the one to read (shapes [{kept.n_patches}, {kept.dim}] and "
            f"[{twin.n_patches}, {twin.dim}])"
        )
