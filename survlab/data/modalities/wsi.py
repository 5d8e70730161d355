"""WSI patch-feature bags (CLAM/TRIDENT layout) and per-patient bag stores.

Layout: `<features_dir>/<encoder>/{h5_files,pt_files}/<slide_id>.{h5,pt}`; multi-scale:
`<features_dir>/<encoder>/<scale>/{h5_files,pt_files}/...`. `.pt` files are loaded with `weights_only=True`
(nothing is unpickled); `.h5` files hold `features` [N, D] and optionally `coords` [N, 2]. A slide_id matches its
file with or without the slide file's extension ('X.svs' -> X.h5, as CLAM/MCAT/TRIDENT write; or X.svs.h5).

Checks before training (`check_availability`, `BagStore.check_headers`, `BagStore.fill_cache`) read every file's
header (and, when the cohort fits the RAM cache, its values); every bad file is a one-line `DataFileError` naming it.

A patient's slides are concatenated into ONE bag: features [N, D], slide_index [N] (which of its slides),
coords [N, 2] (or None), patch_index [N] (row in the concatenated bag).
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from survlab.data.cohort.checks import DataFileError
from survlab.data.cohort.table import Cohort, _first_ids
from survlab.data.modalities.packed import INDEX as PACKED_INDEX
from survlab.data.modalities.packed import PackedStore, cohort_key, open_packed
from survlab.data.modalities.resident import ResidentBags

log = logging.getLogger(__name__)

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


@dataclass
class PatientBag:
    """All slides of one patient concatenated: features [N, D], slide_index [N], coords [N, 2] | None."""

    features: Tensor
    slide_index: Tensor
    coords: Tensor | None

    @property
    def nbytes(self) -> int:
        n = self.features.element_size() * self.features.nelement() + 8 * self.slide_index.nelement()
        return n + (self.coords.element_size() * self.coords.nelement() if self.coords is not None else 0)

    def take(self, index: Tensor | None = None) -> PatientBag:
        """fp32 bag of the rows `index` (all rows if None). Index BEFORE converting, so a training step copies
        only its `max_patches` rows of a cached fp16 bag, not the whole bag."""
        if index is None:
            return PatientBag(self.features.float(), self.slide_index, self.coords)
        coords = None if self.coords is None else self.coords[index]
        return PatientBag(self.features[index].float(), self.slide_index[index], coords)


@dataclass
class DropReport:
    """What was dropped while checking feature availability, and why."""

    dropped_slides: dict[str, str] = field(default_factory=dict)  # slide_id -> reason
    dropped_patients: list[str] = field(default_factory=list)
    kept_without: list[str] = field(default_factory=list)  # data.missing=keep: patients kept with no slide

    def summary(self) -> str:
        if not self.dropped_slides and not self.dropped_patients and not self.kept_without:
            return "no slides dropped"
        example = next(iter(self.dropped_slides.items()), ("-", "-"))
        left = (
            f"{len(self.kept_without)} patient(s) kept without slides ({_first_ids(self.kept_without)})"
            if self.kept_without
            else f"{len(self.dropped_patients)} patient(s) left without slides ({_first_ids(self.dropped_patients)})"
        )
        return f"dropped {len(self.dropped_slides)} slide(s) (e.g. {example[0]}: {example[1]}) and {left}"

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "n_slides_dropped": len(self.dropped_slides),
            "n_patients_dropped": len(self.dropped_patients),
            "slides": dict(self.dropped_slides),
            "patients": list(self.dropped_patients),
        }
        if self.kept_without:  # only with data.missing=keep: older protocol cards keep their keys
            out["n_patients_kept_without"] = len(self.kept_without)
            out["patients_kept_without"] = list(self.kept_without)
        return out


class BagStore:
    """Resolve + read slide bags of one encoder (and optionally one scale), with an optional in-RAM patient cache.

    format: "h5" | "pt" | "auto" (prefer h5 when both exist). feature_dim: required D, or None = inferred by
    `check_headers` (the dim of the slides) and enforced across slides. Slide ids match file names with or without
    a WSI extension (`slide_key`). cache: keep patient bags in RAM (as `cache_dtype`) up to `cache_max_bytes`;
    `fill_cache` fills it before DataLoader workers start (they inherit it), else each worker fills its own.
    folder: read `<folder>/<slide_id>.h5` (.pt with format=pt) instead of the CLAM layout (TRIDENT's
    `features_<encoder>/`, see survlab.data.modalities.trident); `encoder` then only names the store (packed-store key).
    """

    def __init__(
        self,
        features_dir: str | Path,
        encoder: str | None = None,
        format: str = "auto",
        feature_dim: int | None = None,
        scale: str | None = None,
        cache: bool = False,
        cache_max_bytes: int = 2 * 1024**3,
        cache_dtype: str = "float16",
        folder: str | Path | None = None,
    ) -> None:
        if format not in ("h5", "pt", "auto"):
            raise ValueError(f"wsi.format must be h5, pt or auto, got {format!r}")
        self.features_dir, self.encoder = Path(features_dir), encoder
        self.base = self.features_dir / (encoder or "") / (scale or "")
        self.format, self.feature_dim, self.scale = format, feature_dim, scale
        self.cache_enabled, self.cache_max_bytes = cache, int(cache_max_bytes)
        self.cache_dtype = getattr(torch, cache_dtype)
        self._cache: OrderedDict[tuple[str, ...], PatientBag] = OrderedDict()
        self._cache_bytes = 0
        self._index: dict[Path, dict[str, list[str]]] = {}
        self.packed: PackedStore | None = None  # set by `use_packed`: bags come from one packed file
        self.resident: ResidentBags | None = (
            None  # set for data.wsi.cache=device (survlab.data.modalities.resident)
        )
        self.round_values = False  # values in cache_dtype even with the cache off (data.wsi.cache=auto)
        # a flat folder of <slide>.h5 (or .pt with format=pt) files, e.g. TRIDENT's features_<encoder>/
        self.folder = None if folder is None else Path(folder)

    def __getstate__(self) -> dict[str, object]:
        """Pickled (spawned DataLoader workers, ddp_spawn): without the RAM cache, which each process refills as
        it reads (forked workers inherit the cache that `fill_cache` filled, without pickling it)."""
        state = self.__dict__.copy()
        state["_cache"], state["_cache_bytes"] = OrderedDict(), 0
        return state

    @property
    def search_dirs(self) -> list[Path]:
        if self.folder is not None:
            return [self.folder]
        fmts = ["h5", "pt"] if self.format == "auto" else [self.format]
        return [self.base / FORMAT_DIRS[f] for f in fmts]

    def check_layout(self) -> None:
        """One-line FileNotFoundError when no folder this store reads exists, naming the setting to change
        (wsi.format, wsi.scales, wsi.encoder / wsi.features_dir) and what exists instead."""
        if any(d.is_dir() for d in self.search_dirs):
            return
        if self.folder is not None:
            raise FileNotFoundError(f"feature folder {self.folder} does not exist; check data.wsi.trident")
        other = [f for f, sub in FORMAT_DIRS.items() if (self.base / sub).is_dir()]
        if other:
            raise FileNotFoundError(
                f"{self.search_dirs[0]} does not exist but {self.base / FORMAT_DIRS[other[0]]} does; set "
                f"data.wsi.format={other[0]} or auto"
            )
        parent, what, setting = (
            (self.base.parent, "scales", "data.wsi.scales")
            if self.scale and self.base.parent.is_dir()
            else (self.features_dir, "encoders", "data.wsi.encoder (and data.wsi.features_dir)")
        )
        found = sorted(p.name for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []
        raise FileNotFoundError(
            f"{self.base} has no h5_files/ or pt_files/ folder; {what} found under {parent}: "
            f"{', '.join(found) or 'none'}; set {setting}"
        )

    def _files(self, folder: Path) -> dict[str, list[str]]:
        """slide_key -> sorted file names in `folder` (listed once; a missing folder is empty)."""
        if folder not in self._index:
            flat = "pt" if self.format == "pt" else "h5"
            suffix = "." + (flat if self.folder is not None else "h5" if folder.name == "h5_files" else "pt")
            index: dict[str, list[str]] = {}
            names = (
                sorted(e.name for e in os.scandir(folder) if e.name.endswith(suffix))
                if folder.is_dir()
                else []
            )
            for name in names:
                index.setdefault(slide_key(name[: -len(suffix)]), []).append(name)
            self._index[folder] = index
        return self._index[folder]

    def paths_of(self, slide_id: str) -> list[Path]:
        """The bag file of `slide_id` in each searched folder that has one (preferred format first)."""
        found = []
        for d in self.search_dirs:
            names = [n for n in self._files(d).get(slide_key(slide_id), []) if (d / n).is_file()]
            if len(names) > 1:
                raise DataFileError(
                    f"{d}: slide {slide_id} matches {len(names)} feature files ({', '.join(names)}); delete the stale "
                    f"one (CLAM/TRIDENT name files without the slide extension: X.svs -> X.h5)"
                )
            found += [d / n for n in names]
        return found

    def path_of(self, slide_id: str) -> Path | None:
        """The bag file of `slide_id` or None if absent ('X.svs' finds X.h5 or X.svs.h5; two such files: error)."""
        found = self.paths_of(slide_id)
        return found[0] if found else None

    def missing_message(self, slide_id: str) -> str:
        dirs = ", ".join(str(d) for d in self.search_dirs)
        return f"no feature file for slide {slide_id} (searched {dirs}); {_FIX}"

    def use_packed(
        self, folder: str | Path, slide_ids: Sequence[str], dtype: str = "float16", cohort: str = ""
    ) -> None:
        """Read bags from the packed store at `folder` (built / rebuilt from this store's files when absent or stale;
        a store written for another cohort is refused). Call after `check_headers` (feature_dim known)."""
        if self.feature_dim is None:
            raise ValueError("use_packed needs the feature dim: call check_headers first")
        paths = {s: self.path_of(s) for s in slide_ids}
        key = cohort_key(list(paths), self.encoder, self.scale, self.feature_dim)
        self.packed = open_packed(folder, paths, self.read_slide, key, self.feature_dim, dtype, cohort)

    def reuse_packed(self, folder: str | Path, slide_ids: Sequence[str], dtype: str = "float16") -> bool:
        """Use an existing packed store at `folder` if it was built for exactly these slides (and this encoder,
        scale and dim), in `dtype`, is complete and no source changed: then no source file is opened at all."""
        folder = Path(folder)
        if not (folder / PACKED_INDEX).is_file():
            return False
        store = PackedStore(folder)
        dim = self.feature_dim or store.dim
        fresh = (
            store.meta.get("cohort_key") == cohort_key(list(slide_ids), self.encoder, self.scale, dim)
            and store.dtype == dtype
            and not store.truncated()
            and not store.stale_sources()
        )
        if fresh:
            self.packed, self.feature_dim = store, store.dim
        return fresh

    def n_patches(self, slide_id: str) -> int | None:
        """Patches of a slide from the packed index (None without a packed store)."""
        return self.packed.n_patches(slide_id) if self.packed is not None else None

    def read_slide(self, slide_id: str) -> tuple[Tensor, Tensor | None]:
        path = self.path_of(slide_id)
        if path is None:
            raise FileNotFoundError(self.missing_message(slide_id))
        feats, coords = read_bag(path, self.feature_dim)
        if self.feature_dim is None:
            self.feature_dim = int(feats.shape[1])
        return feats, coords

    def check_headers(self, slide_ids: Sequence[str]) -> dict[str, BagHeader]:
        """Check the file of every slide without reading its values (see `read_header`): one feature dim for all
        (configured, else the most common one, which `feature_dim` is then set to); with format=auto an .h5 and a
        .pt of the same slide must hold the same bag (shape, first and last rows). -> slide_id -> BagHeader."""
        headers: dict[str, BagHeader] = {}
        for s in slide_ids:
            paths = self.paths_of(s)
            if not paths:
                raise FileNotFoundError(self.missing_message(s))
            twins = len(paths) > 1
            headers[s] = read_header(paths[0], self.feature_dim, edges=twins)
            for twin in paths[1:]:
                _check_twin(headers[s], read_header(twin, self.feature_dim, edges=True))
        dims = Counter(h.dim for h in headers.values())
        if len(dims) > 1:
            common = dims.most_common(1)[0][0]
            odd = next(h for h in headers.values() if h.dim != common)
            example = next(h for h in headers.values() if h.dim == common)
            raise DataFileError(
                f"{odd.path}: feature dim {odd.dim} differs from dim {common} of the other slides (e.g. "
                f"{example.path}); re-extract all slides with one encoder, or set wsi.feature_dim"
            )
        if self.feature_dim is None and dims:
            self.feature_dim = next(iter(dims))
        return headers

    def fill_cache(self, patients: Sequence[Sequence[str]]) -> None:
        """Read every patient's bag into the RAM cache now (values checked: a NaN/Inf fails here, naming the file)."""
        if self.cache_enabled:
            for slide_ids in patients:
                self.load_raw(slide_ids)

    def load_patient(self, slide_ids: Sequence[str]) -> PatientBag:
        """Concatenate a patient's slides -> PatientBag (fp32 out; cached copy in `cache_dtype`)."""
        return self.load_raw(slide_ids).take()

    def load_raw(self, slide_ids: Sequence[str]) -> PatientBag:
        """Like `load_patient`, but features stay in the cache dtype when caching is on (call `.take(index)`)."""
        key = tuple(slide_ids)
        if key in self._cache:
            return self._cache[key]
        if not slide_ids:
            raise ValueError("patient has no slides; cannot build a WSI bag")
        feats, coords, sidx = [], [], []
        for i, s in enumerate(slide_ids):
            f, c = self.packed.read(s) if self.packed is not None else self.read_slide(s)
            feats.append(f)
            coords.append(c)
            sidx.append(torch.full((f.shape[0],), i, dtype=torch.long))
        bag = PatientBag(
            torch.cat(feats),
            torch.cat(sidx),
            torch.cat([c.float() for c in coords]) if all(c is not None for c in coords) else None,
        )
        if self.cache_enabled or self.round_values:
            # round on every read so epoch 1 (file) and later epochs (cache) see equal values; with cache=auto also
            # when the cache stayed off (free memory decided), so that decision never changes the inputs
            cached = PatientBag(bag.features.to(self.cache_dtype), bag.slide_index, bag.coords)
            if self.cache_enabled and self._cache_bytes + cached.nbytes <= self.cache_max_bytes:
                self._cache[key] = cached
                self._cache_bytes += cached.nbytes
            bag = cached
        return bag


def check_availability(
    cohort: Cohort,
    stores: Sequence[BagStore],
    allow_missing: bool = False,
    partial_ok: bool = False,
    keep: bool = False,
) -> tuple[Cohort, DropReport]:
    """Keep only slides with a file in EVERY store; return the filtered cohort + report.

    A slide missing in all stores is an error (naming the slide and dirs) unless allow_missing, `keep` or
    `partial_ok` (multi-scale: slides missing some scale are always dropped with a report). Patients left with no
    slide are dropped if allow_missing, kept with an empty slide list if `keep` (data.missing=keep: marked absent,
    `report.kept_without`), else an error. A store whose folders are missing altogether (wrong encoder, scale or
    format) and two slide ids resolving to one file ('X' and 'X.svs') are always errors.
    """
    for st in stores:
        st.check_layout()
    report = DropReport()
    kept: dict[str, list[str]] = {}
    owner: dict[Path, tuple[str, str]] = {}  # file -> (slide_id, case_id) that resolved to it first
    for case, slides in zip(cohort.table["case_id"], cohort.table["slide_ids"], strict=False):
        kept[case] = []
        for s in slides:
            paths = [st.path_of(s) for st in stores]
            for p in paths:
                first = owner.setdefault(p, (s, case)) if p is not None else (s, case)
                if first != (s, case):
                    raise ValueError(
                        f"{cohort.path}: slide_id {s} of case {case} and {first[0]} of case {first[1]} both resolve "
                        f"to {p}; list each slide once (a slide_id with and without its .svs extension is one slide)"
                    )
            absent = [st for st, p in zip(stores, paths, strict=True) if p is None]
            if not absent:
                kept[case].append(s)
                continue
            if not (allow_missing or keep or partial_ok):
                raise FileNotFoundError(f"{cohort.path}: case {case}: " + absent[0].missing_message(s))
            names = [st.scale or "features" for st in absent]
            report.dropped_slides[s] = f"missing {', '.join(names)}"
    empty = [c for c, ss in kept.items() if not ss]
    if empty and keep:
        report.kept_without = empty
    elif empty:
        if not allow_missing:
            first = empty[0]
            raise ValueError(
                f"{cohort.path}: {len(empty)} patient(s) have no slide with features at all scales "
                f"({_first_ids(empty)}; e.g. {first}: slides {cohort.rows([first])['slide_ids'].iloc[0]}); "
                f"{_FIX}, or set data.missing=drop to drop them or data.missing=keep to keep them"
            )
        report.dropped_patients = empty
    if report.dropped_slides or report.dropped_patients:
        log.warning("WSI availability: %s", report.summary())
    return cohort.with_slides(kept).drop(report.dropped_patients), report
