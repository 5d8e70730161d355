"""A deterministic synthetic PET/CT NSCLC cohort with known truth, in the real layout (MM-DLS; survlab.data.modalities.imaging).

Latents per patient: subtype s in {LUAD, LUSC} (Bernoulli 1/2), stage score z_stage ~ N(0, 1) (tertiles -> TNM group
I-II / III / IV), risk factor z_risk ~ N(0, 1), treatment (immunotherapy / chemotherapy, 1/2 each), and two risk
factors each seen by ONE input path only: z_img ~ N(0, 1) (interstitial abnormality: lung density, in the CT only) and
z_clin ~ N(0, 1) (in the clinical age column only).

    OS log-hazard  = 0.7 * (stage - 1) + 0.6 * z_risk + 0.3 * s - 0.3 * [immunotherapy]
                     + 0.7 * z_img (image part) + 0.7 * z_clin (clinical part)
    DFS log-hazard = OS log-hazard + 0.3 * noise;  OS time = DFS time + a positive gap (OS >= DFS)
    common independent censoring, calibrated to `target_event_rate` for OS

Where the signal lives (the rest is noise):
- CT volume (HU, int16, ``volume_size`` x ``volume_size`` x ``n_slices``): body ellipse (+40 HU), two lung ellipsoids
  (-850 + 100 * z_img HU, clipped to [-990, -650]: denser lung = interstitial abnormality / fibrosis = higher risk;
  no table carries z_img. Generator 2 planted emphysema, lower HU = higher risk: darker lung read as less tissue by a
  CNN whose pooled intensity also grows with the lesion, so MM-DLS learned it with the wrong sign; see GENERATOR_VERSION),
  one spherical lesion in a lung: a solid part whose radius grows with stage and z_risk and whose density depends
  on subtype (LUAD -300 HU, LUSC +30 HU), inside a ground-glass halo (-550 HU, part of the lesion mask) of width
  round(1.5 + 1.2 * z_img) in 0..3 voxels (image-only: the tables measure the solid part, as TNM's T does for
  part-solid tumours), Gaussian noise ``noise_hu``; the centre's scanner offset
  ``hu_shift`` is added everywhere (a second centre has shifted intensities).
- PET table: SUVmax / SUVmean / SUVpeak follow stage, z_risk and subtype (x ``pet_scale``, the centre's calibration);
  MTV = lesion volume (mL); TLG = SUVmean x MTV.
- Radiomics [``radiomics_dim``]: the first 6 columns carry subtype, stage and z_risk (+ noise); the rest are noise.
- Clinical: age (65 + 7 * z_clin + noise: the clinical part; no image or other table carries z_clin), sex, smoking
  status (LUSC: more current smokers), smoking duration and cessation (years), tumour diameter (mm, from the lesion
  radius).

oracle.json records the oracle C-index of the whole OS risk and of each part: ``oracle_cindex_os_image_part`` /
``oracle_cindex_os_clinical_part`` (that term alone) and ``oracle_cindex_os_without_image`` /
``oracle_cindex_os_without_clinical`` (the best a model blind to that path can do). ``GENERATOR_VERSION`` is part of
the cache key: a cohort written by an older generator is regenerated.

Files: clinical.csv (one row per patient: case_id, labels, endpoints, treatment, clinical columns), radiomics.csv and
pet.csv (rows shuffled: joined by case_id), volumes/<case>/{ct,lung_mask,lesion_mask}.nii.gz, images/<case>/
{lesion,space}/slice_<k>.png (the same crops as `survlab.data.modalities.imaging_volumes.cut_stacks`, written independently; names
unpadded so natural sort matters), truth.csv (true OS risk), oracle.json (oracle C-index of OS and DFS).

Example:
    >>> generate_petct_cohort("/tmp/petct", PetCtSpec(n_patients=40))   # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survlab.data.sources.cohort_folder import atomic_cohort
from survlab.metrics.concordance import concordance_counts

SUBTYPES = ("LUAD", "LUSC")
TNM_GROUPS = ("I-II", "III", "IV")
TREATMENTS = ("chemotherapy", "immunotherapy")
PET_COLUMNS = ("suv_max", "suv_mean", "suv_peak", "tlg", "mtv")
CLINICAL_COLUMNS = ("age", "sex", "smoking_status", "smoking_duration", "smoking_cessation", "tumor_diameter")
VOXEL_MM = (1.5, 1.5, 3.0)
# 2: image-only (lung density) and clinical-only (age) risk parts; 3: the lung density rises with the image part
# (generator 2's emphysema lowered it, against the lesion's brightness cue: MM-DLS learned it with the wrong sign,
# CT-only MM-DLS test OS C 0.43 after 15 epochs on 200 patients; 0.64 on generator 3). Bump on any change.
GENERATOR_VERSION = 3
IMAGE_EFFECT, CLINICAL_EFFECT = 0.7, 0.7  # log-hazard per SD of z_img / z_clin
WINDOW = (-1000.0, 400.0)  # the HU window of conf/data/synthetic_petct.yaml (PNG export)


@dataclass(frozen=True)
class PetCtSpec:
    """Everything that determines a synthetic PET/CT cohort. Same spec -> identical files."""

    n_patients: int = 240
    volume_size: int = 64
    n_slices: int = 24
    lesion_window: int = 32
    radiomics_dim: int = 128
    hu_shift: float = 0.0
    noise_hu: float = 30.0
    pet_scale: float = 1.0
    target_event_rate: float = 0.6
    missing_images: int = 0  # patients (the last ones) written without images, to exercise imaging.missing
    case_prefix: str = "PCT"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_patients < 6 or self.volume_size < 32 or self.n_slices < 12 or self.radiomics_dim < 6:
            raise ValueError(
                "PetCtSpec: need n_patients >= 6, volume_size >= 32, n_slices >= 12, radiomics_dim >= 6"
            )

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


def _patients(spec: PetCtSpec, rng: np.random.Generator) -> pd.DataFrame:
    """One row per patient: latents, labels, endpoints, treatment, clinical, lesion geometry."""
    n = spec.n_patients
    subtype = rng.integers(0, 2, n)
    z_stage, z_risk = rng.standard_normal(n), rng.standard_normal(n)
    stage = np.searchsorted(np.quantile(z_stage, [1 / 3, 2 / 3]), z_stage, side="right")
    immuno = rng.integers(0, 2, n)
    part_rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 44]))  # the path-specific latents
    z_img, z_clin, age_noise = part_rng.standard_normal((3, n))
    image_part, clinical_part = IMAGE_EFFECT * z_img, CLINICAL_EFFECT * z_clin
    risk = 0.7 * (stage - 1) + 0.6 * z_risk + 0.3 * subtype - 0.3 * immuno + image_part + clinical_part
    risk_dfs = risk + 0.3 * rng.standard_normal(n)
    t_dfs = 30.0 * (rng.exponential(size=n) * np.exp(-risk_dfs)) ** (1 / 1.3)
    t_os = t_dfs + 24.0 * rng.exponential(size=n) * np.exp(-0.5 * risk)
    e = rng.exponential(size=n)
    lo, hi = -10.0, 10.0
    for _ in range(100):  # censoring scale so that the OS event rate is the target
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.mean(t_os <= np.exp(mid) * e) < spec.target_event_rate else (lo, mid)
    cens = np.exp(hi) * e
    radius = np.clip(np.rint(2.5 + 1.4 * stage + 0.6 * z_risk + 0.4 * rng.standard_normal(n)), 2, 7).astype(
        int
    )
    smoker = rng.random(n) < np.where(subtype == 1, 0.85, 0.45)
    current = smoker & (rng.random(n) < 0.5)
    duration = np.where(smoker, np.round(rng.uniform(10, 45, n)), 0.0)
    cessation = np.where(smoker & ~current, np.round(rng.uniform(1, 20, n)), 0.0)
    return pd.DataFrame(
        {
            "case_id": [f"{spec.case_prefix}{i:04d}" for i in range(n)],
            "subtype": [SUBTYPES[s] for s in subtype],
            "tnm_stage": [TNM_GROUPS[s] for s in stage],
            "dfs_months": np.maximum(np.round(np.minimum(t_dfs, cens), 1), 0.1),
            "dfs_event": (t_dfs <= cens).astype(int),
            "os_months": np.maximum(np.round(np.minimum(t_os, cens), 1), 0.1),
            "os_event": (t_os <= cens).astype(int),
            "treatment": [TREATMENTS[t] for t in immuno],
            "age": np.round(65 + 7 * z_clin + 2 * age_noise),
            "sex": np.where(rng.random(n) < 0.6, "male", "female"),
            "smoking_status": np.where(current, "current", np.where(smoker, "former", "never")),
            "smoking_duration": duration,
            "smoking_cessation": cessation,
            "tumor_diameter": np.round(2 * radius * VOXEL_MM[0] + rng.normal(0, 1.5, n), 1),
            "_subtype": subtype,
            "_stage": stage,
            "_z_risk": z_risk,
            "_risk": risk,
            "_risk_dfs": risk_dfs,
            "_image_part": image_part,
            "_clinical_part": clinical_part,
            "_z_img": z_img,
            "_halo": np.clip(np.rint(1.5 + 1.2 * z_img), 0, 3),
            "_radius": radius,
        }
    )


def _ellipsoid(
    shape: tuple[int, int, int], centre: tuple[float, float, float], radii: tuple[float, float, float]
) -> np.ndarray:
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1.0


def _volume(
    spec: PetCtSpec, row: pd.Series, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int]]:
    """-> (CT int16 [X, Y, Z] HU, lung mask uint8, lesion mask uint8, lesion centre voxel)."""
    n, z = spec.volume_size, spec.n_slices
    shape = (n, n, z)
    body = _ellipsoid(shape, (n / 2, n / 2, z / 2), (0.45 * n, 0.40 * n, 10 * z))
    half_w = 0.14 * n
    lungs = [
        _ellipsoid(shape, (n / 2, n / 2 + side * 0.19 * n, z / 2), (0.30 * n, half_w, 0.42 * z))
        for side in (-1, 1)
    ]
    lung = lungs[0] | lungs[1]
    r = int(row["_radius"])
    side = int(rng.integers(0, 2))
    cx = int(n // 2 + rng.integers(-int(0.30 * n) + r + 1, int(0.30 * n) - r - 1))
    cy = int(round(n / 2 + (2 * side - 1) * 0.19 * n))
    cz = int(z // 2 + rng.integers(-int(0.42 * z) + r // 2 + 2, int(0.42 * z) - r // 2 - 1))
    solid = _ellipsoid(shape, (cx, cy, cz), (r + 0.5, r + 0.5, max(r / 2, 1) + 0.5))
    # ground-glass halo around the solid part: the image-only part, with the lung density
    h = float(row["_halo"])
    halo = _ellipsoid(shape, (cx, cy, cz), (r + h + 0.5, r + h + 0.5, max(r / 2, 1) + h / 2 + 0.5)) & lung
    lesion = solid | halo
    ct = np.full(shape, -1000.0)
    ct[body] = 40.0
    # denser lung: the image-only part
    ct[lung] = float(np.clip(-850.0 + 100.0 * row["_z_img"], -990.0, -650.0))
    ct[halo] = -550.0
    ct[solid] = 30.0 if row["_subtype"] == 1 else -300.0
    ct += rng.normal(0.0, spec.noise_hu, shape) + spec.hu_shift
    return np.rint(ct).astype(np.int16), lung.astype(np.uint8), lesion.astype(np.uint8), (cx, cy, cz)


def _png_stacks(
    ct: np.ndarray, lung: np.ndarray, lesion: np.ndarray, centre: tuple[int, int, int], window: int
) -> dict[str, list[np.ndarray]]:
    """The lesion / space crops as 8-bit slices (written independently of survlab.data.modalities.imaging_volumes.cut_stacks)."""
    u8 = np.rint(np.clip((ct.astype(np.float64) - WINDOW[0]) / (WINDOW[1] - WINDOW[0]), 0, 1) * 255).astype(
        np.uint8
    )
    xs, ys, _ = np.nonzero(lesion)  # centred on the lesion mask's centroid (halo included), rounded half up
    cx, cy = int(np.floor(xs.mean() + 0.5)), int(np.floor(ys.mean() + 0.5))
    half = window // 2
    padded = np.pad(u8, ((window, window), (window, window), (0, 0)))
    lesion_slices = [
        padded[
            window + cx - half : window + cx - half + window,
            window + cy - half : window + cy - half + window,
            z,
        ]
        for z in range(ct.shape[2])
        if lesion[:, :, z].any()
    ]
    rows, cols = np.flatnonzero(lung.any(axis=(1, 2))), np.flatnonzero(lung.any(axis=(0, 2)))
    space_slices = [
        u8[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1, z]
        for z in range(ct.shape[2])
        if lung[:, :, z].any()
    ]
    return {"lesion": lesion_slices, "space": space_slices}


def _tables(spec: PetCtSpec, p: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    n = len(p)
    s, stage, zr = p["_subtype"].to_numpy(), p["_stage"].to_numpy(), p["_z_risk"].to_numpy()
    suv_max = (
        np.exp(1.2 + 0.35 * stage + 0.25 * zr + 0.2 * s + 0.15 * rng.standard_normal(n)) * spec.pet_scale
    )
    suv_mean = suv_max * rng.uniform(0.5, 0.65, n)
    mtv = (
        4 / 3 * np.pi * (p["_radius"].to_numpy() * VOXEL_MM[0]) ** 2 * (p["_radius"] / 2 * VOXEL_MM[2]) / 1000
    )
    pet = pd.DataFrame(
        {
            "case_id": p["case_id"],
            "suv_max": suv_max,
            "suv_mean": suv_mean,
            "suv_peak": suv_max * rng.uniform(0.75, 0.9, n),
            "tlg": suv_mean * mtv,
            "mtv": mtv,
        }
    )
    signal = np.stack([s, stage, zr, s - 0.5 * stage, stage + zr, zr - s], axis=1).astype(float)
    rad = rng.standard_normal((n, spec.radiomics_dim))
    rad[:, :6] = signal + 0.7 * rad[:, :6]
    radiomics = pd.DataFrame(rad, columns=[f"rad_{j:03d}" for j in range(spec.radiomics_dim)])
    radiomics.insert(0, "case_id", p["case_id"].to_numpy())
    return radiomics, pet


def _write(tmp: Path, spec: PetCtSpec) -> None:
    import nibabel as nib
    from PIL import Image

    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 41]))
    p = _patients(spec, rng)
    affine = np.diag([*VOXEL_MM, 1.0])
    img_rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 42]))
    for i, row in p.iterrows():
        ct, lung, lesion, centre = _volume(spec, row, img_rng)
        if i >= spec.n_patients - spec.missing_images:
            continue
        vol_dir = tmp / "volumes" / row["case_id"]
        vol_dir.mkdir(parents=True)
        for name, arr in (("ct", ct), ("lung_mask", lung), ("lesion_mask", lesion)):
            nib.save(nib.Nifti1Image(arr, affine), str(vol_dir / f"{name}.nii.gz"))
        for kind, slices in _png_stacks(ct, lung, lesion, centre, spec.lesion_window).items():
            out = tmp / "images" / row["case_id"] / kind
            out.mkdir(parents=True)
            for k, sl in enumerate(slices):
                Image.fromarray(sl, mode="L").save(out / f"slice_{k}.png")
    radiomics, pet = _tables(spec, p, rng)
    order = np.random.default_rng(np.random.SeedSequence([spec.seed, 43])).permutation(len(p))
    radiomics.iloc[order].to_csv(tmp / "radiomics.csv", index=False, float_format="%.5g")
    pet.iloc[order[::-1]].to_csv(tmp / "pet.csv", index=False, float_format="%.5g")
    p[[c for c in p.columns if not c.startswith("_")]].to_csv(tmp / "clinical.csv", index=False)
    p[["case_id"]].assign(
        true_risk=p["_risk"],
        true_risk_dfs=p["_risk_dfs"],
        image_part=p["_image_part"],
        clinical_part=p["_clinical_part"],
        subtype_code=p["_subtype"],
        stage_code=p["_stage"],
    ).to_csv(tmp / "truth.csv", index=False)
    oracle: dict[str, Any] = {
        "n_patients": spec.n_patients,
        "spec": spec.to_json(),
        "cache_key": cache_key(spec),
        "effects": {"image_part": IMAGE_EFFECT, "clinical_part": CLINICAL_EFFECT},
    }

    def cindex(risk: np.ndarray, ep: str) -> float | None:
        conc, comp = concordance_counts(
            risk, p[f"{ep}_months"].to_numpy(), p[f"{ep}_event"].to_numpy().astype(bool)
        )
        return conc / comp if comp else None

    for ep, risk in (("os", "_risk"), ("dfs", "_risk_dfs")):
        oracle[f"oracle_cindex_{ep}"] = cindex(p[risk].to_numpy(), ep)
        oracle[f"event_rate_{ep}"] = float(p[f"{ep}_event"].mean())
    img, clin, full = (p[c].to_numpy() for c in ("_image_part", "_clinical_part", "_risk"))
    oracle["oracle_cindex_os_image_part"] = cindex(img, "os")
    oracle["oracle_cindex_os_clinical_part"] = cindex(clin, "os")
    oracle["oracle_cindex_os_without_image"] = cindex(full - img, "os")
    oracle["oracle_cindex_os_without_clinical"] = cindex(full - clin, "os")
    oracle["oracle_cindex"] = oracle["oracle_cindex_os"]
    (tmp / "oracle.json").write_text(json.dumps(oracle, indent=2, sort_keys=True) + "\n")


def cache_key(spec: PetCtSpec) -> dict[str, Any]:
    """What identifies a generated cohort: the spec and the generator version (older caches are regenerated)."""
    return {"spec": spec.to_json(), "kind": "petct", "generator": GENERATOR_VERSION}


def generate_petct_cohort(root: str | Path, spec: PetCtSpec) -> Path:
    """Write the cohort to ``root`` once (cached by spec + generator version; never touches files survlab did not
    create)."""
    return atomic_cohort(root, cache_key(spec), "oracle.json", lambda tmp: _write(tmp, spec))


__all__ = [
    "CLINICAL_COLUMNS",
    "GENERATOR_VERSION",
    "PET_COLUMNS",
    "PetCtSpec",
    "SUBTYPES",
    "TNM_GROUPS",
    "TREATMENTS",
    "cache_key",
    "generate_petct_cohort",
]
