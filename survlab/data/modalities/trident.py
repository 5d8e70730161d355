"""TRIDENT's native feature layout, resolved to the folder of per-slide feature files.

TRIDENT (mahmoodlab/TRIDENT) writes `<job_dir>/<mag>x_<patch_size>px_<overlap>px_overlap/features_<encoder>/<slide>.h5`
(h5 datasets `features` [N, D] and `coords` [N, 2]; coords attrs carry patch_size, patch_size_level0,
target_magnification, overlap), next to `patches/<slide>_patches.h5` (coordinates only) and `visualization/`.
survlab reads the `features_<encoder>/` folder as it is (nothing is copied or written there); a slide id matches
its file as in the CLAM layout (`slide_key`: 'X.svs' -> X.h5).

Example:
    >>> resolve_trident("/jobs/tcga_luad", mag=20, patch_size=256, overlap=0, encoder="uni_v1")  # doctest: +SKIP
    PosixPath('/jobs/tcga_luad/20x_256px_0px_overlap/features_uni_v1')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from survlab.data.cohort.checks import DataFileError

PATCH_DIR = re.compile(r"^(?P<mag>\d+(?:\.\d+)?)x_(?P<size>\d+)px_(?P<overlap>\d+)px_overlap$")
FEATURES_PREFIX = "features_"
TRIDENT_KEYS = ("job_dir", "mag", "patch_size", "overlap", "encoder")


@dataclass(frozen=True)
class PatchConfig:
    """One patching of a TRIDENT job: magnification, patch size and overlap (pixels) and its folder."""

    mag: float
    patch_size: int
    overlap: int
    folder: Path

    @property
    def name(self) -> str:
        return self.folder.name

    def encoders(self) -> list[str]:
        """Encoders with a `features_<encoder>/` folder under this patching (sorted)."""
        return sorted(
            p.name[len(FEATURES_PREFIX) :]
            for p in self.folder.iterdir()
            if p.is_dir() and p.name.startswith(FEATURES_PREFIX)
        )


def patch_configs(job_dir: str | Path) -> list[PatchConfig]:
    """Every `<mag>x_<size>px_<overlap>px_overlap/` folder of a TRIDENT job dir, sorted by name."""
    job_dir = Path(job_dir)
    if not job_dir.is_dir():
        raise FileNotFoundError(
            f"TRIDENT job dir {job_dir} does not exist; set data.wsi.trident.job_dir to the --job_dir TRIDENT wrote"
        )
    out = []
    for p in sorted(job_dir.iterdir()):
        m = PATCH_DIR.match(p.name)
        if m and p.is_dir():
            out.append(PatchConfig(float(m["mag"]), int(m["size"]), int(m["overlap"]), p))
    return out


def _matches(cfg: PatchConfig, mag: float | None, patch_size: int | None, overlap: int | None) -> bool:
    return (
        (mag is None or abs(cfg.mag - float(mag)) < 1e-9)
        and (patch_size is None or cfg.patch_size == int(patch_size))
        and (overlap is None or cfg.overlap == int(overlap))
    )


def resolve_trident(
    job_dir: str | Path,
    encoder: str,
    mag: float | None = None,
    patch_size: int | None = None,
    overlap: int | None = 0,
) -> Path:
    """The `features_<encoder>/` folder of the patching (mag, patch_size, overlap) of a TRIDENT job dir.

    A setting left None matches any value, so it may stay unset when the job holds one patching only. Errors (one
    line) name the folder searched and what exists there: the patchings when none or several match, the encoders
    when `features_<encoder>` is absent.
    """
    if not encoder:
        raise ValueError(
            "data.wsi.trident.encoder is required (the --patch_encoder TRIDENT ran, e.g. uni_v1)"
        )
    job_dir = Path(job_dir)
    configs = patch_configs(job_dir)
    names = ", ".join(c.name for c in configs) or "none"
    chosen = [c for c in configs if _matches(c, mag, patch_size, overlap)]
    want = f"mag={mag}, patch_size={patch_size}, overlap={overlap}"
    if not chosen:
        raise FileNotFoundError(
            f"TRIDENT job dir {job_dir} has no <mag>x_<size>px_<overlap>px_overlap folder for {want}; found: "
            f"{names}; set data.wsi.trident.mag / patch_size / overlap"
        )
    if len(chosen) > 1:
        raise ValueError(
            f"TRIDENT job dir {job_dir} has {len(chosen)} patchings matching {want} "
            f"({', '.join(c.name for c in chosen)}); set data.wsi.trident.mag / patch_size / overlap to choose one"
        )
    cfg = chosen[0]
    folder = cfg.folder / f"{FEATURES_PREFIX}{encoder}"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} does not exist; encoders found under {cfg.folder}: {', '.join(cfg.encoders()) or 'none'}; "
            f"set data.wsi.trident.encoder"
        )
    return folder


def trident_folder(spec: dict, root: Path) -> tuple[Path, str]:
    """`data.wsi.trident` (job_dir relative to the cohort root, or absolute) -> (features folder, store name
    '<encoder>/<patching>' that keys packed stores, so two patchings of one encoder never share one)."""
    unknown = set(spec) - set(TRIDENT_KEYS)
    if unknown:
        raise ValueError(
            f"unknown data.wsi.trident option(s) {sorted(unknown)}; allowed: {list(TRIDENT_KEYS)}"
        )
    if not spec.get("job_dir"):
        raise ValueError("data.wsi.layout=trident needs data.wsi.trident.job_dir (TRIDENT's --job_dir)")
    job_dir = Path(str(spec["job_dir"])).expanduser()
    job_dir = job_dir if job_dir.is_absolute() else root / job_dir
    folder = resolve_trident(
        job_dir,
        str(spec.get("encoder") or ""),
        spec.get("mag"),
        spec.get("patch_size"),
        spec.get("overlap", 0),
    )
    if not any(folder.glob("*.h5")) and not any(folder.glob("*.pt")):
        raise DataFileError(
            f"{folder}: no .h5 feature files; run TRIDENT's feature extraction (--task feat) first"
        )
    return folder, f"{spec['encoder']}/{folder.parent.name}"
