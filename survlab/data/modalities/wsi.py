"""WSI patch-feature bags (CLAM/TRIDENT layout) and per-patient bag stores (`BagStore`, `PatientBag`).

The files themselves (naming, headers, reading one file) are in wsi_files.py; the slide / patient availability
check (`check_availability`, `DropReport`) in wsi_availability.py.

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
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from survlab.data.cohort.checks import DataFileError
from survlab.data.modalities.packed import INDEX as PACKED_INDEX
from survlab.data.modalities.packed import PackedStore, cohort_key, open_packed
from survlab.data.modalities.resident import ResidentBags
from survlab.data.modalities.wsi_files import (
    _FIX,
    FORMAT_DIRS,
    BagHeader,
    _check_twin,
    read_bag,
    read_header,
    slide_key,
)

log = logging.getLogger(__name__)


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
