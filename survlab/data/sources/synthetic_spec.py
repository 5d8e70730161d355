"""The spec of a synthetic survival cohort (`SyntheticSpec`: every setting that determines its files, checked on
construction, hashed for its folder name by `cohort_dir`), the fixed vocabularies (MCAT6 families, sites, stages,
scales) and the independent random streams each part of the cohort is drawn from (`_rng`). The generative model is
described in survlab.data.sources.synthetic.

    >>> SyntheticSpec(n_patients=30).short_hash() == SyntheticSpec(n_patients=30).short_hash()
    True
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

MCAT6_FAMILIES: tuple[str, ...] = (
    "tumor_suppression",
    "oncogenesis",
    "protein_kinases",
    "cellular_differentiation",
    "transcription",
    "cytokines_and_growth",
)
MCAT6_SIGNAL_FAMILIES: tuple[str, ...] = ("tumor_suppression", "oncogenesis")
SITES: tuple[str, ...] = ("A7", "BH", "E2", "AR")  # TCGA tissue-source-site-like codes
STAGES: tuple[str, ...] = ("I", "II", "III", "IV")
SCALE_DOWNSAMPLE: dict[str, int] = {"x20": 1, "x10": 4, "x5": 16}
PATCH_PX: dict[str, int] = {"x20": 256, "x10": 512, "x5": 1024}

# Independent random streams (changing one component leaves the others' draws unchanged).
_STREAM_LATENT, _STREAM_SURV, _STREAM_CLIN, _STREAM_GENES, _STREAM_WSI, _STREAM_ORDER, _STREAM_SITE = range(7)
_STREAM_MISSING = 7
#: `missing_mechanism`: random = missing completely at random (MCAR); short_survival = missing not at random (MNAR),
#: the probability rising with the true risk (proportional to its rank), so short survivors lack it more often
MISSING_MECHANISMS: tuple[str, ...] = ("random", "short_survival")


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything that determines a synthetic cohort. Same spec (incl. seed) -> identical files."""

    n_patients: int = 240
    feature_dim: int = 32
    slides_per_patient: tuple[int, int] = (1, 3)  # inclusive
    patches_per_slide: tuple[int, int] = (20, 120)  # inclusive; the x20 / single-scale bag size
    signal_patch_fraction: float = 0.15
    wsi_signal_strength: float = 3.0  # amplitude of z_wsi * u on signal patches (noise sd = 1)
    wsi_marker_strength: float = 2.0  # constant direction marking signal patches (what attention keys on)
    n_genes: int = 300
    n_pathways: int = 40
    n_signal_pathways: int = 4
    n_clinical_noise: int = 2
    weights: tuple[float, float, float] = (1.0, 1.0, 0.5)  # wsi, genomic, clinical latent in log-hazard
    target_event_rate: float = 0.4
    weibull_shape: float = 1.2
    median_months: float = 45.0  # median survival time at true_risk = 0
    multiscale: bool = False
    signal_scale: str = "x5"
    cross_scale_interaction: bool = False
    n_classes: int = 2
    seed: int = 0
    storage_dtype: str = (
        "float32"  # dtype of the feature files (float16 as TRIDENT / the speed benchmark write)
    )
    formats: tuple[str, ...] = ("pt", "h5")  # which of pt_files / h5_files to write
    n_sites: int = (
        0  # > 0: planted site effects over this many TCGA-like sites (module doc); 0: the 4 noise sites
    )
    site_stain_shift: float = 0.5  # sd of a site's stain vector added to every patch (with n_sites > 0)
    site_hazard_sd: float = 0.0  # sd of a site's baseline log-hazard (with n_sites > 0)
    missing_genomics: float = 0.0  # fraction of patients without an expression row (data.missing=keep / drop)
    missing_wsi: float = 0.0  # fraction of patients without any slide (never both for one patient)
    missing_mechanism: str = (
        "random"  # random (MCAR) | short_survival (MNAR: more often for a higher true risk)
    )

    def __post_init__(self) -> None:
        for name in ("missing_genomics", "missing_wsi"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"SyntheticSpec.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.missing_genomics + self.missing_wsi > 0.9:
            raise ValueError(
                f"SyntheticSpec.missing_genomics + missing_wsi must be <= 0.9 (a patient never lacks both), got "
                f"{self.missing_genomics} + {self.missing_wsi}"
            )
        if self.missing_mechanism not in MISSING_MECHANISMS:
            raise ValueError(
                f"SyntheticSpec.missing_mechanism must be one of {list(MISSING_MECHANISMS)}, got "
                f"{self.missing_mechanism!r}"
            )
        if self.storage_dtype not in ("float32", "float16"):
            raise ValueError(f"storage_dtype must be float32 or float16, got {self.storage_dtype!r}")
        if not self.formats or set(self.formats) - {"pt", "h5"}:
            raise ValueError(f"formats must be a non-empty subset of ('pt', 'h5'), got {self.formats!r}")
        if self.n_patients < 2:
            raise ValueError(f"SyntheticSpec.n_patients must be >= 2, got {self.n_patients}")
        for name in ("slides_per_patient", "patches_per_slide"):
            lo, hi = getattr(self, name)
            if not 1 <= lo <= hi:
                raise ValueError(f"SyntheticSpec.{name} must satisfy 1 <= lo <= hi, got {(lo, hi)}")
        if not 0.0 < self.signal_patch_fraction <= 1.0:
            raise ValueError(f"signal_patch_fraction must be in (0, 1], got {self.signal_patch_fraction}")
        if not 0.0 < self.target_event_rate < 1.0:
            raise ValueError(f"target_event_rate must be in (0, 1), got {self.target_event_rate}")
        if self.signal_scale not in SCALE_DOWNSAMPLE:
            raise ValueError(
                f"signal_scale must be one of {sorted(SCALE_DOWNSAMPLE)}, got {self.signal_scale!r}"
            )
        if not 1 <= self.n_signal_pathways <= self.n_pathways:
            raise ValueError("need 1 <= n_signal_pathways <= n_pathways")
        if self.n_sites < 0 or self.n_sites > 260:
            raise ValueError(f"SyntheticSpec.n_sites must be in 0..260, got {self.n_sites}")
        if self.n_sites == 0 and (self.site_stain_shift != 0.5 or self.site_hazard_sd != 0.0):
            raise ValueError("site_stain_shift / site_hazard_sd need n_sites > 0 (the planted site effects)")
        if self.n_genes < 10 or self.feature_dim < 3 or self.n_classes < 2:
            raise ValueError(
                "need n_genes >= 10, feature_dim >= 3 (u, u2, marker directions), n_classes >= 2"
            )

    def to_json(self) -> dict[str, Any]:
        """JSON-normalised dict (tuples become lists) — what oracle.json stores and the cache compares. Storage
        options at their defaults are left out, so cohorts written before they existed keep their hash."""
        d = json.loads(json.dumps(asdict(self)))
        defaults: tuple[tuple[str, Any], ...] = (
            ("storage_dtype", "float32"),
            ("formats", ["pt", "h5"]),
            ("n_sites", 0),
        )
        defaults += (("site_stain_shift", 0.5), ("site_hazard_sd", 0.0))
        defaults += (("missing_genomics", 0.0), ("missing_wsi", 0.0), ("missing_mechanism", "random"))
        for k, default in defaults:
            if d[k] == default:
                del d[k]
        return d

    def short_hash(self, n: int = 10) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:n]


def cohort_dir(base: str | Path, name: str, spec: SyntheticSpec) -> Path:
    """``<base>/<name>-<short hash of spec>``: a distinct folder per spec, so specs never overwrite each other."""
    return Path(base) / f"{name}-{spec.short_hash()}"


def _rng(spec: SyntheticSpec, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([spec.seed, stream]))
