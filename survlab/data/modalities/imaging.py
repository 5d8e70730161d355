"""CT stacks and PET / radiomics tables per patient (MM-DLS): read, cut, pad, cache, join by case_id.

Two on-disk sources of the CT stacks (`imaging.source`):

- ``png`` (the reference layout): ``<root>/<images_dir>/<case_id>/lesion/*.png`` (tumour-centred crops) and
  ``.../space/*.png`` (lung context), grayscale, slices in natural-sort order of their file names.
- ``nifti`` (what hospitals export): ``<root>/<volumes_dir>/<case_id>/{ct,lung_mask,lesion_mask}.nii.gz``; survlab
  cuts the stacks itself (survlab.data.modalities.imaging_volumes), windowed and quantised to 8 bits exactly as a
  PNG export holds them, so both sources give the same stacks.

Every stack is resized to ``image_size`` (MONAI ``Resize``, area), then brought to ``stack_length`` S slices:
more slices are sampled evenly (``select: uniform``) or the first S taken (``first``, the reference); fewer are
zero-padded with a mask (True = real slice). Decoding happens once: the prepared stacks go to
``<cache_dir>/<hash>.npz`` keyed by the source files' (name, size, mtime) and the settings.

Tables (``radiomics``, ``pet``: CSV with a case_id column and numeric feature columns) are joined by case_id, never
by row order, imputed (median) and z-scored with statistics of the fold's TRAINING patients (`ClinicalEncoder`).

This module holds the settings (`parse_imaging`) and the per-cohort store (`ImagingStore`); the PNG slices are read in
imaging_slices, the NIfTI volumes cut in imaging_volumes, the tables read in imaging_tables.

Example:
    >>> store = ImagingStore(root, {"source": "png", "stack_length": 8, "image_size": 32})      # doctest: +SKIP
    >>> store.prepare(case_ids); store.fit(train_ids); store.item("P001")["ct_lesion"].shape    # doctest: +SKIP
    torch.Size([8, 32, 32])
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from survlab.data.cohort.checks import DataFileError
from survlab.data.cohort.clinical import ClinicalEncoder
from survlab.data.modalities.imaging_slices import (
    check_slice_numbers,
    fix_length,
    list_slices,
    read_png_stack,
    resize_stack,
)
from survlab.data.modalities.imaging_tables import read_feature_table
from survlab.data.modalities.imaging_volumes import cut_stacks, read_masked_volume, window_to_uint8

log = logging.getLogger(__name__)

KINDS = ("lesion", "space")
IMAGING_DEFAULTS: dict[str, Any] = {
    "source": "png",  # png | nifti
    "images_dir": "images",
    "volumes_dir": "volumes",
    "ct_file": "ct.nii.gz",
    "lung_file": "lung_mask.nii.gz",
    "lesion_file": "lesion_mask.nii.gz",
    "window": [-1000.0, 400.0],  # HU -> [0, 1] (nifti)
    "lesion_window": 32,  # in-plane size of the lesion-centred crop, voxels (nifti)
    "stack_length": 8,
    "image_size": 32,
    "select": "uniform",  # uniform | first
    "radiomics": "radiomics.csv",
    "pet": "pet.csv",
    "radiomics_dim": None,  # expected number of radiomics columns (e.g. 128; None = any)
    "pet_columns": None,  # e.g. [suv_max, suv_mean, suv_peak, tlg, mtv]; None = every non-id column
    "missing": "error",  # error | drop: a patient without images / table rows
    "cache_dir": None,  # None = keep the prepared stacks in RAM only
}
SOURCES, SELECTS, MISSING = ("png", "nifti"), ("uniform", "first"), ("error", "drop")
CACHE_VERSION = 2  # 2: stacks are built only from checked files (bit depth, slice numbers, masks, affines)


def parse_imaging(cfg: dict[str, Any] | None) -> dict[str, Any] | None:
    """`imaging:` data config -> full settings (defaults filled); one-line ValueError for unknown / bad options."""
    if cfg is None:
        return None
    cfg = dict(cfg)
    unknown = sorted(set(cfg) - set(IMAGING_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown imaging option(s) {unknown}; allowed: {sorted(IMAGING_DEFAULTS)}")
    out = {**IMAGING_DEFAULTS, **cfg}
    for key, allowed in (("source", SOURCES), ("select", SELECTS), ("missing", MISSING)):
        if out[key] not in allowed:
            raise ValueError(f"imaging.{key}={out[key]!r}; allowed: {list(allowed)}")
    for key in ("stack_length", "image_size", "lesion_window"):
        if int(out[key]) < 1:
            raise ValueError(f"imaging.{key}={out[key]!r} must be a positive integer")
    lo, hi = (float(v) for v in out["window"])
    if not hi > lo:
        raise ValueError(
            f"imaging.window={out['window']!r}: give [low, high] HU with low < high, e.g. [-1000, 400]"
        )
    return out


class ImagingStore:
    """CT stacks + PET / radiomics tables of one cohort. Lifecycle: `missing(case_ids)` -> `prepare(case_ids)`
    (decode / cut once, cached) -> `fit(train_ids)` (table scaling) -> `item(case_id)` per dataset access."""

    def __init__(self, root: str | Path, cfg: dict[str, Any], case_col: str = "case_id") -> None:
        self.root, self.cfg, self.case_col = Path(root), parse_imaging(cfg), case_col
        c = self.cfg
        self.length, self.size = int(c["stack_length"]), int(c["image_size"])
        self.cache_dir = Path(os.path.expanduser(str(c["cache_dir"]))) if c["cache_dir"] else None
        self.tables: dict[str, pd.DataFrame] = {}
        for name in ("radiomics", "pet"):
            if c[name]:
                cols = c["pet_columns"] if name == "pet" else None
                expected = c["radiomics_dim"] if name == "radiomics" else None
                self.tables[name] = read_feature_table(self._under(c[name]), case_col, cols, expected, name)
        self.encoders: dict[str, ClinicalEncoder] = {}
        self.values: dict[str, dict[str, np.ndarray]] = {}
        self._ram: dict[str, dict[str, np.ndarray]] = {}
        self._files: dict[str, Path] = {}
        self.absent_pet: set[str] = (
            set()
        )  # data.missing=keep: patients kept without a PET row (zeros, marked)

    def _under(self, p: str) -> Path:
        p = Path(os.path.expanduser(str(p)))
        return p if p.is_absolute() else self.root / p

    # ------------------------------------------------------------------ sources
    def sources(self, case: str) -> list[Path]:
        """The files a patient's stacks are built from ([] = the patient has no images)."""
        c = self.cfg
        if c["source"] == "png":
            base = self._under(c["images_dir"]) / case
            per_kind = [list_slices(base / k) for k in KINDS]
            return [p for ps in per_kind for p in ps] if all(per_kind) else []
        base = self._under(c["volumes_dir"]) / case
        files = [base / c[k] for k in ("ct_file", "lung_file", "lesion_file")]
        return files if all(f.is_file() for f in files) else []

    def missing(self, case_ids: Sequence[str], keep_pet: bool = False) -> dict[str, str]:
        """case_id -> what it lacks (images, or a table row), for the patients that lack something; `keep_pet`
        (data.missing=keep): a missing PET row is not counted (the patient is kept, marked without PET)."""
        out: dict[str, str] = {}
        where = self.cfg["images_dir"] if self.cfg["source"] == "png" else self.cfg["volumes_dir"]
        for case in case_ids:
            lacks = [] if self.sources(case) else [f"images under {where}/{case}"]
            lacks += [
                f"a {n} row"
                for n, t in self.tables.items()
                if case not in t.index and not (keep_pet and n == "pet")
            ]
            if lacks:
                out[case] = " and ".join(lacks)
        return out

    def _key(self, case: str, files: list[Path]) -> str:
        settings = {
            k: self.cfg[k]
            for k in (
                "source",
                "ct_file",
                "lung_file",
                "lesion_file",
                "window",
                "lesion_window",
                "stack_length",
                "image_size",
                "select",
            )
        }
        stats = [
            (
                str(f.relative_to(self.root)) if f.is_relative_to(self.root) else str(f),
                f.stat().st_size,
                f.stat().st_mtime_ns,
            )
            for f in files
        ]
        blob = json.dumps(
            {"v": CACHE_VERSION, "case": case, "settings": settings, "files": stats}, sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def build(self, case: str) -> dict[str, np.ndarray]:
        """Decode / cut one patient -> {"lesion", "space": float16 [S, size, size]; "lesion_mask", "space_mask":
        bool [S]} (no cache)."""
        c = self.cfg
        if c["source"] == "png":
            base = self._under(c["images_dir"]) / case
            raw = {}
            for k in KINDS:
                paths = list_slices(base / k)
                check_slice_numbers(paths, base / k)
                raw[k] = read_png_stack(paths)
        else:
            base = self._under(c["volumes_dir"]) / case
            ct_path, lung_path, lesion_path = (base / c[k] for k in ("ct_file", "lung_file", "lesion_file"))
            ct, (lung, lesion) = read_masked_volume(ct_path, [lung_path, lesion_path])
            raw = cut_stacks(window_to_uint8(ct, c["window"]), lung, lesion, int(c["lesion_window"]), case)
        out: dict[str, np.ndarray] = {}
        for kind in KINDS:
            stack, mask = fix_length(resize_stack(raw[kind], self.size), self.length, c["select"])
            out[kind], out[f"{kind}_mask"] = stack.astype(np.float16), mask
        return out

    def prepare(self, case_ids: Sequence[str]) -> dict[str, int]:
        """Build (or find in the cache) every patient's stacks before training; -> {"built": n, "cached": m}."""
        counts = {"built": 0, "cached": 0}
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        for case in sorted(case_ids):
            files = self.sources(case)
            if not files:
                raise DataFileError(f"case {case}: no images (see imaging.missing)")
            if self.cache_dir is None:
                self._ram[case] = self.build(case)
                counts["built"] += 1
                continue
            path = self.cache_dir / f"{self._key(case, files)}.npz"
            if not path.is_file():
                arrays = self.build(case)
                tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
                np.savez(tmp, **arrays)
                os.replace(tmp, path)
                counts["built"] += 1
            else:
                counts["cached"] += 1
            self._files[case] = path
        log.info(
            "CT stacks: %d built, %d from the cache %s", counts["built"], counts["cached"], self.cache_dir
        )
        return counts

    def fit(self, train_ids: Sequence[str], case_ids: Sequence[str]) -> None:
        """Impute + z-score every table with the TRAINING patients' statistics; transform `case_ids`."""
        for name, table in self.tables.items():
            cols = list(table.columns)
            enc = ClinicalEncoder(cols).fit(table.loc[list(train_ids)].reset_index())
            self.encoders[name] = enc
            values = enc.transform(table.loc[list(case_ids)].reset_index())
            self.values[name] = dict(zip(case_ids, values, strict=True))

    def pet_lacking(self, case_ids: Sequence[str]) -> list[str]:
        """The patients of `case_ids` without a row in the PET table ([] without one)."""
        pet = self.tables.get("pet")
        return [] if pet is None else [c for c in case_ids if c not in pet.index]

    def _transform(self, name: str, enc: ClinicalEncoder, case_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """case_id -> the encoded row of table `name`; a patient of `absent_pet` (PET only) gets zeros."""
        skip = self.absent_pet if name == "pet" else set()
        have = [c for c in case_ids if c not in skip]
        values = enc.transform(self.tables[name].loc[have].reset_index())
        out = dict(zip(have, values, strict=True))
        for c in case_ids:
            if c in skip:
                out[c] = np.zeros(enc.dim, dtype=values.dtype)
        return out

    def apply_fitted(self, fitted: ImagingStore, case_ids: Sequence[str]) -> None:
        """Scale this store's tables with the encoders `fitted` learnt on ITS training patients (external
        validation: nothing is refitted on the external cohort); `absent_pet` patients get a zero PET vector."""
        for name, table in self.tables.items():
            enc = fitted.encoders[name]
            if list(table.columns) != enc.columns:
                raise DataFileError(
                    f"{name} table of the external cohort has columns {list(table.columns)[:5]}..., "
                    f"the training cohort {enc.columns[:5]}...; use the same columns"
                )
            self.encoders[name] = enc
            self.values[name] = self._transform(name, enc, case_ids)

    @property
    def dims(self) -> dict[str, int]:
        """{"stack_length", "image_size", "radiomics", "pet"} (a table not configured has dim 0)."""
        return {
            "stack_length": self.length,
            "image_size": self.size,
            **{n: (self.tables[n].shape[1] if n in self.tables else 0) for n in ("radiomics", "pet")},
        }

    def stacks(self, case: str) -> dict[str, np.ndarray]:
        """The prepared arrays of one patient (from RAM or its cache file; never unpickled)."""
        if case in self._ram:
            return self._ram[case]
        with np.load(self._files[case], allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def item(self, case: str) -> dict[str, Tensor]:
        """PatientItem.extra of one patient: ct_lesion / ct_space float32 [S, H, W], ct_lesion_mask /
        ct_space_mask bool [S], radiomics [R], pet [P] (z-scored)."""
        arrays = self.stacks(case)
        out = {}
        for kind in KINDS:
            out[f"ct_{kind}"] = torch.from_numpy(arrays[kind].astype(np.float32))
            out[f"ct_{kind}_mask"] = torch.from_numpy(arrays[f"{kind}_mask"].astype(bool))
        for name, values in self.values.items():
            out[name] = torch.from_numpy(values[case])
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.cfg["source"],
            "stack_length": self.length,
            "image_size": self.size,
            "select": self.cfg["select"],
            "tables": {n: list(t.columns) for n, t in self.tables.items()},
            "scaling": "median imputation + z-score fitted on the training patients",
        }


__all__ = [
    "IMAGING_DEFAULTS",
    "KINDS",
    "ImagingStore",
    "parse_imaging",
]
