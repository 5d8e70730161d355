"""`survlab cut` on a CT stored in another orientation than RAS (LPS, as DICOM converters write): the predicted masks
are computed on the RAS-reoriented grid and must be saved with THAT grid's affine, so they overlay the CT in world
coordinates (they used to be saved with the file's LPS affine: flipped left-right and front-back)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import torch
from torch import Tensor, nn

from survlab.runner import imaging_cut


class _Bright(nn.Module):
    """'Segments' lesion where the windowed slice is bright (> 0.5), lung everywhere: [B, 1, H, W] -> logits."""

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        return {"lung": torch.full_like(image, 10.0), "lesion": (image > 0.5).float() * 20 - 10}


def _cohort(root: Path) -> tuple[Path, np.ndarray]:
    """One case, CT 8x8x4 stored in LPS (x, y axes flipped) with an off-centre bright block -> (ct path, bright mask in
    the file's voxel order)."""
    hu = np.full((8, 8, 4), -1000.0)
    bright = np.zeros(hu.shape, bool)
    bright[1:3, 5:8, 1:3] = True  # asymmetric in x and y: a flip moves it
    hu[bright] = 200.0
    lps = np.diag([-1.5, -1.5, 3.0, 1.0])
    lps[:3, 3] = [40.0, 60.0, -20.0]
    path = root / "volumes" / "P0" / "ct.nii.gz"
    path.parent.mkdir(parents=True)
    nib.save(nib.Nifti1Image(hu, lps), str(path))
    return path, bright


def test_cut_masks_overlay_a_non_ras_ct_in_world_coordinates(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ct_path, bright = _cohort(tmp_path / "cohort")
    ckpt = tmp_path / "seg" / "best.ckpt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"weights")
    protocol: dict[str, Any] = {
        "config": {"data": {"root": str(tmp_path / "cohort"), "image_size": 8, "window": [-1000, 400]}},
        "selected_checkpoint": str(ckpt),
        "fold": 0,
        "cohort": {},
    }
    monkeypatch.setattr(imaging_cut, "load_segmentor", lambda run: (_Bright(), protocol))
    out = tmp_path / "cut"
    report = imaging_cut.cut_cohort(tmp_path / "seg", out, lesion_window=4)
    assert report["cases"]["P0"]["lesion_voxels"] == int(bright.sum())
    mask_img, ct_img = nib.load(str(out / "masks" / "P0" / "lesion_mask.nii.gz")), nib.load(str(ct_path))
    # the same world points: every predicted voxel's centre maps onto a bright CT voxel through the two affines
    mask_ijk = np.argwhere(np.asarray(mask_img.dataobj) > 0)
    world = nib.affines.apply_affine(mask_img.affine, mask_ijk)
    ct_ijk = np.rint(nib.affines.apply_affine(np.linalg.inv(ct_img.affine), world)).astype(int)
    assert len(mask_ijk) == int(bright.sum())
    assert sorted(map(tuple, ct_ijk)) == sorted(map(tuple, np.argwhere(bright)))
    # and the mask passes the check MM-DLS applies to a cohort's own masks (same grid after reorientation to RAS)
    from survlab.data.modalities.imaging_volumes import read_masked_volume

    _, (lesion,) = read_masked_volume(ct_path, [out / "masks" / "P0" / "lesion_mask.nii.gz"])
    assert int(lesion.sum()) == int(bright.sum())
    assert json.loads((out / "cut_report.json").read_text())["empty_lesion"] == []
