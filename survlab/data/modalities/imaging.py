"""CT stacks and PET / radiomics tables per patient (MM-DLS): read, cut, pad, cache, join by case_id.

Two on-disk sources of the CT stacks (`imaging.source`):

- ``png`` (the reference layout): ``<root>/<images_dir>/<case_id>/lesion/*.png`` (tumour-centred crops) and
  ``.../space/*.png`` (lung context), grayscale, slices in natural-sort order of their file names.
- ``nifti`` (what hospitals export): ``<root>/<volumes_dir>/<case_id>/{ct,lung_mask,lesion_mask}.nii.gz``; survlab
  cuts the stacks itself: ``lesion`` = the axial slices holding lesion voxels, a ``lesion_window`` x
  ``lesion_window`` window centred on the lesion centroid; ``space`` = the axial slices holding lung voxels, cropped
  to the lung bounding box. CT is windowed (``window`` HU -> [0, 1]) and quantised to 8 bits, exactly what a PNG
  export holds, so both sources give the same stacks. Image rows = the first voxel axis of the RAS-canonical
  volume, columns = the second (a PNG slice ``img[r, c]`` is voxel ``[r, c, z]``).

Every stack is resized to ``image_size`` (MONAI ``Resize``, area), then brought to ``stack_length`` S slices:
more slices are sampled evenly (``select: uniform``) or the first S taken (``first``, the reference); fewer are
zero-padded with a mask (True = real slice). Decoding happens once: the prepared stacks go to
``<cache_dir>/<hash>.npz`` keyed by the source files' (name, size, mtime) and the settings.

Tables (``radiomics``, ``pet``: CSV with a case_id column and numeric feature columns) are joined by case_id, never
by row order, imputed (median) and z-scored with statistics of the fold's TRAINING patients (`ClinicalEncoder`).

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
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from survlab.data.cohort.checks import DataFileError, parse_problem
from survlab.data.cohort.clinical import ClinicalEncoder
from survlab.utils.files import read_json

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


def natural_key(name: str) -> list[Any]:
    """Sort key that orders 'slice2.png' before 'slice10.png' (numbers compared as numbers)."""
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


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


# ---------------------------------------------------------------------------------------------------- reading
def list_slices(folder: Path) -> list[Path]:
    """PNG files of a stack folder in natural-sort order of their names ([] when the folder is absent)."""
    if not folder.is_dir():
        return []
    return sorted(
        (p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file()),
        key=lambda p: natural_key(p.name),
    )


# PIL modes of 8-bit slices (what a windowed export holds); 16-bit / 32-bit / float modes hold other value ranges
EIGHT_BIT_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA")


def check_bit_depth(path: Path) -> None:
    """A PNG slice must be 8-bit (values 0..255 of a windowed export): a 16-bit (or 32-bit / float) PNG would be
    clipped to 8 bits and windowed as if it were one, so its intensities would silently differ. Header only."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            mode = im.mode
    except Exception as err:  # noqa: BLE001 - any decoder error becomes one line naming the file
        raise DataFileError(
            f"{path}: cannot read as a PNG image ({type(err).__name__}); re-export the slice or remove it"
        ) from None
    if mode not in EIGHT_BIT_MODES:
        raise DataFileError(
            f"{path}: {'16-bit' if '16' in mode else 'not 8-bit'} PNG (mode {mode}); survlab reads 8-bit windowed "
            f"slices (0-255): export the stack windowed to 8 bits, or give the CT volume (imaging.source=nifti) so "
            f"survlab windows the HU values itself"
        )


def check_slice_numbers(paths: Sequence[Path], folder: Path | str) -> None:
    """The slices of a stack numbered <prefix><k><suffix> (e.g. slice_1.png ... slice_12.png) must be consecutive and
    each number given once: a gap is a missing slice (the stack would run as if complete). Names without one common
    numbered pattern are not judged (their natural-sort order is used as it is)."""
    parts = [re.fullmatch(r"(.*?)(\d+)(\D*)", p.stem) for p in paths]
    if len(paths) < 2 or not all(parts) or len({(m.group(1), m.group(3)) for m in parts}) != 1:  # type: ignore[union-attr]
        return
    numbers = sorted(int(m.group(2)) for m in parts)  # type: ignore[union-attr]
    twice = sorted({n for n in numbers if numbers.count(n) > 1})
    if twice:
        raise DataFileError(
            f"{folder}: slice number(s) {twice[:5]} occur in several file names (e.g. zero-padded and not); keep "
            f"one file per slice"
        )
    gaps = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    if gaps:
        raise DataFileError(
            f"{folder}: slice number(s) {gaps[:5]}{' ...' if len(gaps) > 5 else ''} missing between "
            f"{paths[0].name if len(paths) else ''} ({numbers[0]}) and {numbers[-1]} ({len(gaps)} of "
            f"{numbers[-1] - numbers[0] + 1}); re-export the whole stack (a gap would shift every slice after it)"
        )


def read_png_stack(paths: Sequence[Path]) -> np.ndarray:
    """Grayscale 8-bit PNG slices -> uint8 [N, H, W] (MONAI LoadImage + PILReader; RGB is converted to luminance).
    Unreadable files, 16-bit files and slices of different sizes are a DataFileError naming the file."""
    from monai.data import PILReader
    from monai.transforms import LoadImage

    for path in paths:
        check_bit_depth(path)

    loader = LoadImage(
        reader=PILReader(reverse_indexing=False, converter=lambda im: im.convert("L")),
        image_only=True,
        dtype=np.float32,
    )
    slices = []
    for path in paths:
        try:
            img = np.asarray(loader(str(path)))
        except Exception as err:  # noqa: BLE001 - any decoder error becomes one line naming the file
            raise DataFileError(
                f"{path}: cannot read as a PNG image ({type(err).__name__}); re-export the slice or remove it"
            ) from None
        if slices and img.shape != slices[0].shape:
            raise DataFileError(
                f"{path}: slice is {img.shape[0]}x{img.shape[1]} but {paths[0].name} of the same "
                f"stack is {slices[0].shape[0]}x{slices[0].shape[1]}; export every slice of a "
                f"stack at one size"
            )
        slices.append(img)
    return np.clip(np.rint(np.stack(slices)), 0, 255).astype(np.uint8)


def load_volume(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A NIfTI volume reoriented to RAS (nibabel `as_closest_canonical`) -> (float64 [X, Y, Z], its affine [4, 4])."""
    import nibabel as nib

    try:
        img = nib.as_closest_canonical(nib.load(str(path)))
        data = np.asarray(img.dataobj, dtype=np.float64)
    except Exception as err:  # noqa: BLE001
        raise DataFileError(
            f"{path}: cannot read as NIfTI ({type(err).__name__}: {err}); re-export the volume"
        ) from None
    if data.ndim != 3:
        raise DataFileError(
            f"{path}: expected a 3-D volume, got shape {data.shape}; export one CT series per file"
        )
    return data, np.asarray(img.affine, dtype=np.float64)


def read_volume(path: Path) -> np.ndarray:
    """A NIfTI volume reoriented to RAS (nibabel `as_closest_canonical`) -> float64 [X, Y, Z]."""
    return load_volume(path)[0]


def check_mask(
    mask: np.ndarray,
    affine: np.ndarray,
    path: Path,
    ct_shape: tuple[int, ...],
    ct_affine: np.ndarray,
    ct_path: Path,
) -> np.ndarray:
    """A mask volume [X, Y, Z] (RAS) on its CT's grid -> bool [X, Y, Z] (every positive integer label is inside).
    Refused with the file named: another shape; another affine after both are reoriented to RAS (another origin,
    spacing or direction: its voxels are not the CT's; a mask stored in another orientation with a true affine is
    reoriented, not refused); soft values (probabilities, or labels resampled with linear interpolation)."""
    if mask.shape != ct_shape:
        raise DataFileError(
            f"{path}: mask shape {mask.shape} differs from the CT {ct_shape} ({ct_path.name}); export masks on the CT "
            f"grid"
        )
    if not np.allclose(affine, ct_affine, rtol=1e-4, atol=1e-3):
        origin, ct_origin = np.round(affine[:3, 3], 2).tolist(), np.round(ct_affine[:3, 3], 2).tolist()
        spacing = np.round(np.linalg.norm(affine[:3, :3], axis=0), 3).tolist()
        ct_spacing = np.round(np.linalg.norm(ct_affine[:3, :3], axis=0), 3).tolist()
        raise DataFileError(
            f"{path}: mask affine differs from the CT's ({ct_path.name}) after reorientation to RAS (origin {origin} vs "
            f"{ct_origin} mm, spacing {spacing} vs {ct_spacing} mm), so its voxels are not the CT's; resample the mask "
            f"onto the CT grid (nearest neighbour) or export it with the CT's header"
        )
    soft = (mask != np.rint(mask)) | (mask < 0)
    if soft.any():
        example = float(mask[soft].flat[0])
        raise DataFileError(
            f"{path}: soft mask, {int(soft.sum())} voxel(s) hold values that are not 0 / 1 / a label (e.g. "
            f"{example:.3g}); threshold it (e.g. > 0.5) or resample it with nearest-neighbour interpolation"
        )
    return mask > 0


def read_masked_volume(ct_path: Path, mask_paths: Sequence[Path]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The CT (HU [X, Y, Z], RAS) and its masks (bool [X, Y, Z], checked by `check_mask` against the CT)."""
    ct, ct_affine = load_volume(ct_path)
    masks = []
    for path in mask_paths:
        mask, affine = load_volume(path)
        masks.append(check_mask(mask, affine, path, ct.shape, ct_affine, ct_path))
    return ct, masks


def window_to_uint8(hu: np.ndarray, window: Sequence[float]) -> np.ndarray:
    """HU -> uint8: clip to [low, high], scale to [0, 255], round (what a windowed 8-bit PNG export holds)."""
    lo, hi = float(window[0]), float(window[1])
    return np.rint(np.clip((np.asarray(hu, np.float64) - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.uint8)


def _crop(plane: np.ndarray, r0: int, c0: int, h: int, w: int) -> np.ndarray:
    """plane[.., r0:r0+h, c0:c0+w] with zero fill outside the image (the window may stick out of the volume)."""
    out = np.zeros((*plane.shape[:-2], h, w), dtype=plane.dtype)
    rs, cs = max(r0, 0), max(c0, 0)
    re_, ce = min(r0 + h, plane.shape[-2]), min(c0 + w, plane.shape[-1])
    if re_ > rs and ce > cs:
        out[..., rs - r0 : re_ - r0, cs - c0 : ce - c0] = plane[..., rs:re_, cs:ce]
    return out


def cut_stacks(
    ct_u8: np.ndarray, lung: np.ndarray, lesion: np.ndarray, lesion_window: int, case: str = "?"
) -> dict[str, np.ndarray]:
    """Windowed CT uint8 [X, Y, Z] + lung / lesion masks [X, Y, Z] -> {"lesion": uint8 [n_l, w, w], "space": uint8
    [n_s, h_b, w_b]} (axial slices, z ascending). See the module docstring for the crop definitions."""
    lung, lesion = lung > 0, lesion > 0
    if not lesion.any():
        raise DataFileError(f"case {case}: the lesion mask is empty; check the mask file or drop the patient")
    if not lung.any():
        raise DataFileError(f"case {case}: the lung mask is empty; check the mask file or drop the patient")
    xs, ys, zs = np.nonzero(lesion)
    cx, cy = int(np.floor(xs.mean() + 0.5)), int(np.floor(ys.mean() + 0.5))
    half = lesion_window // 2
    lesion_z = np.unique(zs)
    lesion_stack = _crop(
        np.moveaxis(ct_u8[:, :, lesion_z], -1, 0), cx - half, cy - half, lesion_window, lesion_window
    )
    lx, ly, lz = np.nonzero(lung)
    r0, r1, c0, c1 = lx.min(), lx.max() + 1, ly.min(), ly.max() + 1
    space_stack = np.moveaxis(ct_u8[r0:r1, c0:c1, np.unique(lz)], -1, 0)
    return {"lesion": np.ascontiguousarray(lesion_stack), "space": np.ascontiguousarray(space_stack)}


CUT_REPORT = "cut_report.json"  # written by survlab.runner.imaging_cut into a cohort of stacks cut from predicted masks


def check_stack_provenance(root: Path, name: str, fold: int, split_hash: str | None) -> dict[str, Any] | None:
    """For a cohort whose stacks survlab.runner.imaging_cut cut from a segmentor's masks (``<root>/cut_report.json``): the
    segmentor run that produced them, after checking that it was trained on THIS run's fold (same split files, same
    fold), so the masks of this fold's test patients are out-of-sample. None for any other cohort. Raises a one-line
    ValueError naming the fix otherwise. `split_hash` None: a cohort that is not split (external evaluation): the
    provenance is returned unchecked."""
    path = Path(root) / CUT_REPORT
    if not path.is_file():
        return None
    seg = read_json(path).get("segmentor") or {}
    src = seg.get("split_source") or {}
    fix = (
        "train the fold's segmentor on this cohort's folds (model=mmdls_seg with data.outcome_splits, the default of "
        "synthetic_petct_seg) and cut one stack cohort per fold: survlab cut run=<fold-k "
        "segmentor run> out=<folder k>, then train fold k on <folder k>"
    )
    if split_hash is None:
        return {"report": str(path), **seg}
    if src.get("kind") != "outcome_cohort":
        raise ValueError(
            f"data={name}: the stacks in {root} were cut by a segmentor trained on its own patient split "
            f"({path} records no outcome-cohort fold), so it may have trained on this run's test patients; {fix}"
        )
    if int(src.get("fold", -1)) != int(fold) or src.get("split_hash") != split_hash:
        raise ValueError(
            f"data={name}: the stacks in {root} were cut by the segmentor of fold {src.get('fold')} (split hash "
            f"{str(src.get('split_hash'))[:12]}), this run is fold {fold} (split hash {split_hash[:12]}): its "
            f"training patients include this fold's test patients; {fix}"
        )
    return {"report": str(path), **seg}


def resize_stack(stack: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N, H, W] -> float32 [N, size, size] in [0, 1] (MONAI Resize, area interpolation; no-op at size)."""
    x = stack.astype(np.float32) / 255.0
    if x.shape[-2:] == (size, size):
        return x
    from monai.transforms import Resize

    return np.asarray(Resize((size, size), mode="area")(x), dtype=np.float32)


def fix_length(stack: np.ndarray, length: int, select: str = "uniform") -> tuple[np.ndarray, np.ndarray]:
    """float [N, H, W] -> ([length, H, W], mask [length] bool): evenly spaced (uniform) or first (first) slices
    when N > length; zero padding after the real slices when N < length."""
    n = stack.shape[0]
    if n > length:
        idx = np.arange(length) if select == "first" else np.rint(np.linspace(0, n - 1, length)).astype(int)
        return stack[idx], np.ones(length, dtype=bool)
    out = np.zeros((length, *stack.shape[1:]), dtype=stack.dtype)
    out[:n] = stack
    mask = np.zeros(length, dtype=bool)
    mask[:n] = True
    return out, mask


# ---------------------------------------------------------------------------------------------------- tables
def read_feature_table(
    path: Path,
    case_col: str = "case_id",
    columns: Sequence[str] | None = None,
    expected: int | None = None,
    what: str = "table",
) -> pd.DataFrame:
    """A per-patient numeric CSV -> DataFrame indexed by case_id (sorted), with `columns` (None = all but the id).
    Missing file / id column / columns, duplicate ids, non-numeric cells and a wrong column count are one-line
    DataFileErrors naming the file and the fix. Empty cells stay NaN (imputed on the training patients)."""
    if not path.is_file():
        raise DataFileError(
            f"{what} table not found: {path}; expected a CSV with {case_col} + one column per "
            f"feature (see README 'PET/CT cohorts')"
        )
    try:
        df = pd.read_csv(path, dtype={case_col: str})
    except Exception as err:  # noqa: BLE001
        raise DataFileError(parse_problem(path, err)) from None
    if case_col not in df.columns:
        raise DataFileError(
            f"{path}: no '{case_col}' column (has {list(df.columns)[:6]}...); add the patient ids"
        )
    df[case_col] = df[case_col].astype(str).str.strip()
    dup = df[case_col][df[case_col].duplicated()].unique().tolist()
    if dup:
        raise DataFileError(
            f"{path}: case_id(s) {dup[:5]} appear on more than one row; keep one row per patient"
        )
    cols = [c for c in df.columns if c != case_col] if columns is None else list(columns)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataFileError(f"{path}: missing column(s) {missing}; the file has {list(df.columns)}")
    if expected is not None and len(cols) != expected:
        raise DataFileError(
            f"{path}: {len(cols)} feature columns, expected {expected} ({what}); fix the table or "
            f"set imaging.{what}_dim"
        )
    for col in cols:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = df[col].notna() & values.isna()
        if bad.any():
            row = bad.idxmax()
            raise DataFileError(
                f"{path}: column '{col}' of case {df.loc[row, case_col]} holds "
                f"{df.loc[row, col]!r}, not a number; fix the value (empty = missing)"
            )
        df[col] = values.astype(float)
    return df.set_index(case_col)[cols].sort_index()


# ---------------------------------------------------------------------------------------------------- store
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
    "ImagingStore",
    "cut_stacks",
    "fix_length",
    "list_slices",
    "natural_key",
    "parse_imaging",
    "read_feature_table",
    "read_png_stack",
    "read_volume",
    "load_volume",
    "read_masked_volume",
    "check_mask",
    "check_bit_depth",
    "check_slice_numbers",
    "resize_stack",
    "check_stack_provenance",
    "CUT_REPORT",
    "window_to_uint8",
]
