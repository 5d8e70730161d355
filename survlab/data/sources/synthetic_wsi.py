"""The slides of a synthetic cohort: patch-feature bags of N(0, 1) noise + slide / site offsets, a fraction of patches
carrying the planted signal and a marker direction, per scale when multi-scale (`_write_slides`), written as
``features/<encoder>/{pt_files,h5_files}/<slide_id>.{pt,h5}`` (`_write_bag`). Model: survlab.data.sources.synthetic.

    >>> _grid_coords(3, 256).tolist()
    [[0, 0], [256, 0], [0, 256]]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

from survlab.data.sources.synthetic_patients import site_codes
from survlab.data.sources.synthetic_spec import (
    _STREAM_WSI,
    PATCH_PX,
    SCALE_DOWNSAMPLE,
    SITES,
    SyntheticSpec,
    _rng,
)


@dataclass(frozen=True)
class _Directions:
    """Fixed unit directions in feature space: u (signal), u2 (cross-scale partner), v (signal-patch marker)."""

    u: np.ndarray
    u2: np.ndarray
    v: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, dim: int) -> _Directions:
        q, _ = np.linalg.qr(rng.standard_normal((dim, 3)))
        return cls(*(q[:, i].astype(np.float32) for i in range(3)))


def _grid_coords(n: int, px: int) -> np.ndarray:
    """[n, 2] int64 top-left pixel coords on a square-ish grid of px-sized patches."""
    width = int(np.ceil(np.sqrt(n)))
    i = np.arange(n)
    return np.stack([(i % width) * px, (i // width) * px], axis=1).astype(np.int64)


def _bag(
    rng: np.random.Generator,
    n: int,
    offset: np.ndarray,
    planted: np.ndarray | None,
    spec: SyntheticSpec,
    dirs: _Directions,
) -> np.ndarray:
    """[n, D] float32 bag: N(0,1) noise + offset; if ``planted`` [D] is given, a fraction of patches get
    ``planted + marker``."""
    x = rng.standard_normal((n, spec.feature_dim), dtype=np.float32) + offset
    if planted is not None:
        k = max(1, int(round(spec.signal_patch_fraction * n)))
        rows = rng.choice(n, size=k, replace=False)
        x[rows] += planted + spec.wsi_marker_strength * dirs.v
    return x


def _scale_signals(
    spec: SyntheticSpec, z_wsi: float, sign: float, dirs: _Directions
) -> dict[str, np.ndarray | None]:
    """Vector planted on signal patches at each scale (None = pure noise at that scale)."""
    s = spec.wsi_signal_strength
    if not spec.multiscale:
        return {"x20": np.float32(z_wsi * s) * dirs.u}
    if spec.cross_scale_interaction:
        return {
            "x5": np.float32(sign * s) * dirs.u,
            "x10": None,
            "x20": np.float32(sign * z_wsi * s) * dirs.u2,
        }
    return {
        sc: (np.float32(z_wsi * s) * dirs.u if sc == spec.signal_scale else None) for sc in SCALE_DOWNSAMPLE
    }


def _write_bag(
    base: Path, slide_id: str, feats: np.ndarray, coords: np.ndarray, formats: tuple[str, ...] = ("pt", "h5")
) -> None:
    """Write ``base/pt_files/<slide>.pt`` and/or ``base/h5_files/<slide>.h5`` (features [N, D], coords [N, 2])."""
    if "pt" in formats:
        torch.save(torch.from_numpy(feats), base / "pt_files" / f"{slide_id}.pt")
    if "h5" in formats:
        with h5py.File(base / "h5_files" / f"{slide_id}.h5", "w", track_order=False) as f:
            f.create_dataset("features", data=feats, track_times=False)
            f.create_dataset("coords", data=coords, track_times=False)


def _link_bag(
    src: Path, dst: Path, slide_id: str, feats: np.ndarray, coords: np.ndarray, formats: tuple[str, ...]
) -> None:
    """``dst/{pt,h5}_files/<slide>`` as hard links to the files just written under ``src`` (written again where the
    file system has no hard links)."""
    try:
        for kind in ("pt", "h5"):
            if kind in formats:
                os.link(
                    src / f"{kind}_files" / f"{slide_id}.{kind}", dst / f"{kind}_files" / f"{slide_id}.{kind}"
                )
    except OSError:
        for kind in ("pt", "h5"):
            (dst / f"{kind}_files" / f"{slide_id}.{kind}").unlink(
                missing_ok=True
            )  # a link made before the error
        _write_bag(dst, slide_id, feats, coords, formats)


def _write_slides(
    root: Path,
    spec: SyntheticSpec,
    patients: pd.DataFrame,
    encoder: str,
    without: frozenset[str] = frozenset(),
) -> pd.DataFrame:
    """Write every slide's bag(s); return the slide table [case_id, slide_id] (slide_id None: a patient of `without`,
    whose slides are drawn, so the other patients' bags stay the same, but not written)."""
    rng = _rng(spec, _STREAM_WSI)
    dirs = _Directions.draw(rng, spec.feature_dim)
    scale, names = (spec.site_stain_shift, site_codes(spec.n_sites)) if spec.n_sites else (0.5, SITES)
    site_offset = {s: (scale * rng.standard_normal(spec.feature_dim)).astype(np.float32) for s in names}
    feat_root = root / "features" / encoder
    scales = list(SCALE_DOWNSAMPLE) if spec.multiscale else []
    for sub in [feat_root] + [feat_root / sc for sc in scales]:
        for kind in ("pt_files", "h5_files"):
            if kind[:2] in spec.formats:
                (sub / kind).mkdir(parents=True, exist_ok=True)

    rows: list[tuple[str, str | None]] = []
    for case_id, site, z_wsi in zip(patients.case_id, patients.site, patients.z_wsi, strict=True):
        if case_id in without:
            rows.append((case_id, None))
        sign = float(rng.choice([-1.0, 1.0]))
        planted = _scale_signals(spec, float(z_wsi), sign, dirs)
        for j in range(int(rng.integers(spec.slides_per_patient[0], spec.slides_per_patient[1] + 1))):
            slide_id = f"{case_id}-DX{j + 1}"
            n20 = int(rng.integers(spec.patches_per_slide[0], spec.patches_per_slide[1] + 1))
            offset = site_offset[site] + (0.5 * rng.standard_normal(spec.feature_dim)).astype(np.float32)
            for sc in scales or ["x20"]:
                n = max(2, int(round(n20 / SCALE_DOWNSAMPLE[sc]))) if scales else n20
                feats = _bag(rng, n, offset, planted.get(sc), spec, dirs).astype(
                    spec.storage_dtype, copy=False
                )
                coords = _grid_coords(n, PATCH_PX[sc])
                if case_id in without:
                    continue
                if sc == "x20":
                    _write_bag(feat_root, slide_id, feats, coords, spec.formats)
                    if scales:  # the same bag: a hard link, not a second copy (the bench's cohorts are GBs)
                        _link_bag(feat_root, feat_root / sc, slide_id, feats, coords, spec.formats)
                elif scales:
                    _write_bag(feat_root / sc, slide_id, feats, coords, spec.formats)
            if case_id not in without:
                rows.append((case_id, slide_id))
    return pd.DataFrame(rows, columns=["case_id", "slide_id"])
