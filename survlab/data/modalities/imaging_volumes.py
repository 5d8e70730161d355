"""CT volumes (MM-DLS imaging, `imaging.source: nifti`): NIfTI CT and masks read in RAS, the masks checked against
the CT's grid, the CT windowed to 8 bits, and the lesion / space stacks cut from it (`cut_stacks`); and the
provenance check of a cohort whose stacks survlab cut from a segmentor's predicted masks (`cut_report.json`).

Layout: ``<root>/<volumes_dir>/<case_id>/{ct,lung_mask,lesion_mask}.nii.gz``. ``lesion`` = the axial slices holding
lesion voxels, a ``lesion_window`` x ``lesion_window`` window centred on the lesion centroid; ``space`` = the axial
slices holding lung voxels, cropped to the lung bounding box. CT is windowed (``window`` HU -> [0, 1]) and quantised to
8 bits, exactly what a PNG export holds, so the png and nifti sources give the same stacks. Image rows = the first
voxel axis of the RAS-canonical volume, columns = the second (a PNG slice ``img[r, c]`` is voxel ``[r, c, z]``).

    >>> window_to_uint8(np.array([-1000.0, -300.0, 400.0, 900.0]), [-1000, 400]).tolist()
    [0, 128, 255, 255]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from survlab.data.cohort.checks import DataFileError
from survlab.utils.files import read_json


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
