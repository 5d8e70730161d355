"""Deterministic synthetic cohorts with known truth, written in the REAL on-disk layout (docs/CONTRACTS.md).

Generative model (per patient i, latents independent N(0, 1)):

    true_risk_i = w_wsi * z_wsi + w_gen * z_gen + w_clin * z_clin              (log-hazard)
    T_i ~ Weibull(shape k, scale lambda * exp(-true_risk_i / k))  months, median ~45 at risk 0
    C_i = c * E_i,  E_i ~ Exp(1) independent of T;  c is bisected so that mean(T <= C) = target_event_rate
    label from quantiles of z_class + 0.3 z_wsi + 0.2 true_risk; grade/stage from quantiles of true_risk + noise

Where the signal lives:
- WSI: per slide, a random ``signal_patch_fraction`` of patches get ``z_wsi * strength * u`` plus a constant
  "marker" direction ``v`` (so attention can find them); every patch has N(0, 1) noise, a slide offset (batch
  effect) and a per-site offset. The bag mean is diluted by the (1 - fraction) pure-noise patches.
  Multi-scale: bags x20 = N, x10 ~ N/4, x5 ~ N/16 (>= 2 each); the signal is only at ``signal_scale``. With
  ``cross_scale_interaction`` a random per-patient sign s ~ +-1 is planted at x5 (``s * strength * u``) and
  ``s * z_wsi * strength * u2`` at x20: each scale alone is independent of the sign of z_wsi, their product is not.
- Genomics: genes of the first ``n_signal_pathways`` pathways (and of the MCAT families tumor_suppression and
  oncogenesis, drawn from those genes) carry ``loading * z_gen`` in log space; expression = exp(log) > 0 (TPM-like).
- Clinical: ``age`` and ``marker_level`` follow z_clin; ``sex``, ``site`` and ``noise_*`` columns are noise.
- Planted site effects (``n_sites`` > 0, for site-preserved cross-validation): patients spread evenly over
  ``n_sites`` tissue-source sites with TCGA barcodes ``TCGA-<site>-<nnnn>``; every patch of a site's slides is
  shifted by the site's stain vector (``site_stain_shift`` x N(0, I), instead of the default 0.5 x N(0, I)) and the
  site adds a baseline log-hazard ``site_hazard_sd`` x N(0, 1) (part of ``true_risk``). A model can read the site
  from the stain and the site's baseline from training patients of the same site: random folds reward that, folds
  that keep a site out of training (``splits.group=site``) do not.
  ``age`` and ``noise_num_0`` contain a few NaN.
- Missing modalities (``missing_genomics`` / ``missing_wsi`` > 0, for data.missing=keep | drop): round(fraction x n)
  patients get no expression row / no slide (never both), drawn at random (``missing_mechanism: random``, MCAR) or
  with a chance proportional to the rank of true_risk (``short_survival``, MNAR: short survivors lack it more often).
  oracle.json ``missing`` lists them; at the default 0 nothing changes (files, spec hash).

Example:
    >>> spec = SyntheticSpec(n_patients=30, feature_dim=8, n_genes=60, n_pathways=8)
    >>> root = generate_cohort(cohort_dir("/tmp/syn", "tiny", spec), spec)   # doctest: +SKIP
    >>> json.loads((root / "oracle.json").read_text())["oracle_cindex"]         # doctest: +SKIP
    0.78...

CLI: ``python -m survlab.data.sources.synthetic --out DIR [--n-patients N] [--multiscale] [--seed S]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import torch

from survlab.metrics.concordance import concordance_counts

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


# --------------------------------------------------------------------------------------------- patients
def _quantile_bins(score: np.ndarray, n_bins: int) -> np.ndarray:
    """Integer bins 0..n_bins-1 of equal size by empirical quantiles. score: [n] -> [n] int."""
    edges = np.quantile(score, np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.searchsorted(edges, score, side="right").astype(int)


def _survival(spec: SyntheticSpec, risk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weibull PH event times + independent calibrated censoring. risk [n] -> (months [n], event [n] bool)."""
    rng = _rng(spec, _STREAM_SURV)
    k = spec.weibull_shape
    scale = spec.median_months / np.log(2.0) ** (1.0 / k)
    t_event = scale * (rng.exponential(size=risk.shape) * np.exp(-risk)) ** (1.0 / k)
    e = rng.exponential(size=risk.shape)
    lo, hi = np.log(t_event.min() / e.max()) - 1, np.log(t_event.max() / e.min()) + 1
    for _ in range(100):  # event rate increases with c: bisect log c
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.mean(t_event <= np.exp(mid) * e) < spec.target_event_rate else (lo, mid)
    t_cens = np.exp(hi) * e
    event = t_event <= t_cens
    months = np.maximum(np.round(np.minimum(t_event, t_cens), 1), 0.1)
    return months, event


def site_codes(n_sites: int) -> tuple[str, ...]:
    """Two-character tissue-source-site codes of a cohort with planted site effects ("A0", "A1", ..., "Z9")."""
    return tuple(f"{chr(65 + j // 10)}{j % 10}" for j in range(n_sites))


def _planted_sites(spec: SyntheticSpec) -> tuple[np.ndarray, np.ndarray]:
    """Site index per patient [n] (evenly spread, shuffled) and each site's baseline log-hazard [n_sites]."""
    rng = _rng(spec, _STREAM_SITE)
    site_idx = rng.permutation(np.arange(spec.n_patients) % spec.n_sites)
    return site_idx, spec.site_hazard_sd * rng.standard_normal(spec.n_sites)


def _patients(spec: SyntheticSpec) -> pd.DataFrame:
    """One row per patient: case_id, latents, true_risk, survival, labels and clinical covariates."""
    n = spec.n_patients
    rng = _rng(spec, _STREAM_LATENT)
    z = rng.standard_normal((n, 4))
    z_wsi, z_gen, z_clin, z_class = z.T
    risk = z[:, :3] @ np.asarray(spec.weights, dtype=float)
    if spec.n_sites:
        planted, site_hazard = _planted_sites(spec)
        risk = risk + site_hazard[planted]
    months, event = _survival(spec, risk)

    rng = _rng(spec, _STREAM_CLIN)
    site_idx = rng.integers(0, len(SITES), size=n)
    sites, prefix = np.asarray(SITES), "SYN"
    if spec.n_sites:
        site_idx, sites, prefix = planted, np.asarray(site_codes(spec.n_sites)), "TCGA"
    df = pd.DataFrame(
        {
            "case_id": [f"{prefix}-{sites[s]}-{i:04d}" for i, s in enumerate(site_idx)],
            "survival_months": months,
            "censorship": (~event).astype(int),
            "label": _quantile_bins(z_class + 0.3 * z_wsi + 0.2 * risk, spec.n_classes),
            "grade": _quantile_bins(risk + 0.7 * rng.standard_normal(n), 4),
            "stage": np.asarray(STAGES)[_quantile_bins(risk + 0.9 * rng.standard_normal(n), 4)],
            "age": np.round(62.0 + 9.0 * z_clin + 3.0 * rng.standard_normal(n)),
            "sex": np.where(rng.random(n) < 0.5, "F", "M"),
            "site": sites[site_idx],
            "marker_level": np.round(np.exp(0.5 * z_clin + 0.3 * rng.standard_normal(n)), 3),
        }
    )
    for j in range(spec.n_clinical_noise):
        if j % 2 == 0:
            df[f"noise_num_{j}"] = np.round(rng.standard_normal(n), 3)
        else:
            df[f"noise_cat_{j}"] = np.asarray(["a", "b", "c"])[rng.integers(0, 3, size=n)]
    n_missing = max(1, n // 20)
    missing_cols = ["age"] + (["noise_num_0"] if spec.n_clinical_noise > 0 else [])
    for col in missing_cols:
        df.loc[rng.choice(n, size=n_missing, replace=False), col] = np.nan
    latents = pd.DataFrame(
        {"true_risk": risk, "z_wsi": z_wsi, "z_gen": z_gen, "z_clin": z_clin, "z_class": z_class}
    )
    return pd.concat([df, latents], axis=1)


def _missing_weights(spec: SyntheticSpec, risk: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Relative chance [n] of lacking a modality, 0 outside `eligible`: equal (random) or the rank of the true risk
    (short_survival: the highest-risk patient is n times as likely to lack it as the lowest)."""
    weight = eligible.astype(float)
    if spec.missing_mechanism == "short_survival":
        weight = weight * (np.argsort(np.argsort(risk)) + 1.0)
    return weight


def _draw_missing(rng: np.random.Generator, fraction: float, weight: np.ndarray) -> np.ndarray:
    """bool [n]: round(fraction * n) patients drawn without replacement with chance ∝ `weight` (exactly that many,
    as many as have weight if fewer)."""
    n = len(weight)
    k = min(int(round(fraction * n)), int((weight > 0).sum()))
    out = np.zeros(n, dtype=bool)
    if k:
        out[rng.choice(n, size=k, replace=False, p=weight / weight.sum())] = True
    return out


def missing_modalities(spec: SyntheticSpec, risk: np.ndarray) -> dict[str, np.ndarray]:
    """{"genomics", "wsi"}: bool [n], True = the patient lacks the modality: round(missing_<m> * n) patients each,
    drawn with `_missing_weights` (genomics first, WSI among the others: never both); all False at the defaults."""
    n = len(risk)
    out = {"genomics": np.zeros(n, dtype=bool), "wsi": np.zeros(n, dtype=bool)}
    if not (spec.missing_genomics or spec.missing_wsi):
        return out
    rng = _rng(spec, _STREAM_MISSING)
    out["genomics"] = _draw_missing(
        rng, spec.missing_genomics, _missing_weights(spec, risk, np.ones(n, bool))
    )
    out["wsi"] = _draw_missing(rng, spec.missing_wsi, _missing_weights(spec, risk, ~out["genomics"]))
    return out


# --------------------------------------------------------------------------------------------- genomics
def _gene_groups(
    spec: SyntheticSpec,
) -> tuple[list[str], dict[str, list[str]], dict[str, list[str]], list[str]]:
    """-> (gene names, pathways, MCAT6 families, signal genes). Some listed genes are absent from the table."""
    rng = _rng(spec, _STREAM_GENES)
    genes = [f"GENE{g + 1:04d}" for g in range(spec.n_genes)]
    absent = iter(f"GENE{g + 1:04d}" for g in range(spec.n_genes, spec.n_genes + 10_000))

    def draw(pool: list[str], lo: int, hi: int) -> list[str]:
        size = int(rng.integers(lo, min(hi, len(pool)) + 1))
        return [pool[i] for i in np.sort(rng.choice(len(pool), size=size, replace=False))]

    pathways = {f"PATHWAY_{p:02d}": draw(genes, 3, 30) for p in range(spec.n_pathways)}
    signal = sorted({g for p in list(pathways.values())[: spec.n_signal_pathways] for g in p})
    noise = [g for g in genes if g not in set(signal)] or genes
    mcat = {fam: draw(signal if fam in MCAT6_SIGNAL_FAMILIES else noise, 3, 25) for fam in MCAT6_FAMILIES}
    # every third pathway lists 1-2 genes missing from the expression table
    for p, name in enumerate(pathways):
        if p % 3 == 0:
            pathways[name] += [next(absent) for _ in range(1 + p % 2)]
    for fam in MCAT6_FAMILIES[::2]:
        mcat[fam].append(next(absent))
    return genes, pathways, mcat, signal


def _expression(spec: SyntheticSpec, genes: list[str], signal: list[str], z_gen: np.ndarray) -> np.ndarray:
    """Positive log-normal expression [n_patients, n_genes]; signal genes get loading * z_gen in log space."""
    rng = _rng(spec, _STREAM_GENES + 100)
    n, g = spec.n_patients, len(genes)
    base = rng.normal(3.0, 1.5, size=g)
    sd = rng.uniform(0.4, 1.0, size=g)
    loading = np.zeros(g)
    idx = np.asarray([genes.index(s) for s in signal], dtype=int)
    loading[idx] = rng.choice([-1.0, 1.0], size=idx.size) * rng.uniform(0.5, 1.0, size=idx.size)
    log_expr = base + sd * rng.standard_normal((n, g)) + np.outer(z_gen, loading)
    return np.exp(log_expr)


def _signature_table(groups: dict[str, list[str]]) -> pd.DataFrame:
    """Columns = groups, cells = gene symbols, shorter columns padded with empty cells."""
    longest = max(len(v) for v in groups.values())
    return pd.DataFrame({k: v + [""] * (longest - len(v)) for k, v in groups.items()})


# --------------------------------------------------------------------------------------------- WSI
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


# --------------------------------------------------------------------------------------------- caching
OWNER_MARKER = (
    ".survlab-cohort.json"  # written by `atomic_cohort` into every folder it creates: proof of ownership
)
_SPLIT_FILE_NAMES = ("meta.json", "splits_")  # what `ensure_splits` writes under <root>/splits/


def _files_under(root: Path) -> list[str]:
    """Every file (or symlink) below `root` as a sorted relative POSIX path."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink())


def _foreign_files(root: Path) -> list[str]:
    """Files under `root` that survlab did not create there: all of them unless `root/OWNER_MARKER` lists the
    files `atomic_cohort` wrote; survlab's own split files (splits/**/meta.json, splits_<k>.csv) are its too."""
    try:
        owned = set(json.loads((root / OWNER_MARKER).read_text())["files"]) | {OWNER_MARKER}
    except (OSError, ValueError, KeyError, TypeError):
        owned = set()
    return [
        f
        for f in _files_under(root)
        if f not in owned
        and not (owned and f.startswith("splits/") and Path(f).name.startswith(_SPLIT_FILE_NAMES))
    ]


def atomic_cohort(
    root: str | Path, key: dict[str, Any], marker: str, write: Callable[[Path], None], what: str = "synthetic"
) -> Path:
    """Build a generated cohort folder once; never delete or overwrite a file survlab did not create.

    If ``root/marker`` (or the ownership marker) holds ``"cache_key": key``, return ``root`` untouched. Otherwise
    ``write(tmp_dir)`` into a sibling temp folder, record what it wrote in ``root/.survlab-cohort.json`` and rename it
    into place, so a half-written cohort is never visible and concurrent builders of the same cohort are harmless.
    ``root`` may be absent, empty, or a stale cohort that this function created (its split files included); a
    folder holding anything else -> one-line ValueError naming a foreign file (``what`` names the config setting).
    """
    root = Path(root)

    def is_current() -> bool:
        for name in (OWNER_MARKER, marker):
            try:
                if json.loads((root / name).read_text()).get("cache_key") == key:
                    return True
            except (OSError, ValueError, AttributeError):
                pass
        return False

    def check_replaceable() -> None:
        if root.is_symlink() or (root.exists() and not root.is_dir()):
            raise ValueError(
                f"{what}: {root} is a {'symlink' if root.is_symlink() else 'file'}, not a folder survlab created; "
                f"point root at a new folder"
            )
        foreign = _foreign_files(root) if root.is_dir() else []
        if foreign:
            raise ValueError(
                f"{what}: {root} holds files survlab did not create (e.g. {foreign[0]}; {len(foreign)} in all); "
                f"survlab never deletes or overwrites them: point root at a new folder, or remove the '{what}:' "
                f"setting to read your own files there"
            )

    if is_current():
        return root
    check_replaceable()  # before the (slow) write: fail in a second
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        write(tmp)
        owner = {"created_by": "survlab", "cache_key": key, "files": _files_under(tmp)}
        (tmp / OWNER_MARKER).write_text(json.dumps(owner, indent=1, sort_keys=True) + "\n")
        if (
            root.exists() and not is_current()
        ):  # stale cohort survlab created (or an empty dir): move it aside
            check_replaceable()
            stale = root.parent / f".{root.name}.stale-{uuid.uuid4().hex[:8]}"
            try:
                root.rename(stale)
                shutil.rmtree(stale, ignore_errors=True)
            except FileNotFoundError:
                pass
        try:
            tmp.rename(root)
        except OSError:  # another worker won the race
            if not is_current():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


# --------------------------------------------------------------------------------------------- main API
def _write_cohort(tmp: Path, spec: SyntheticSpec, encoder: str) -> None:
    patients = _patients(spec)
    lacks = missing_modalities(spec, patients.true_risk.to_numpy())
    ids = patients.case_id.to_numpy()
    slides = _write_slides(tmp, spec, patients, encoder, frozenset(ids[lacks["wsi"]]))
    clinical_cols = [
        c for c in patients.columns if c not in ("true_risk", "z_wsi", "z_gen", "z_clin", "z_class")
    ]
    clinical = slides.merge(patients[clinical_cols], on="case_id", how="left", validate="many_to_one")
    clinical = clinical[["case_id", "slide_id"] + [c for c in clinical_cols if c != "case_id"]]
    clinical.to_csv(tmp / "clinical.csv", index=False)

    genes, pathways, mcat, signal = _gene_groups(spec)
    expr = pd.DataFrame(_expression(spec, genes, signal, patients.z_gen.to_numpy()), columns=genes)
    expr.insert(0, "case_id", patients.case_id.to_numpy())
    order = _rng(spec, _STREAM_ORDER).permutation(spec.n_patients)  # shuffled vs clinical.csv on purpose
    order = order[~lacks["genomics"][order]]  # patients without a profile get no row
    expr.iloc[order].to_csv(tmp / "expression.csv", index=False, float_format="%.5g")
    _signature_table(mcat).to_csv(tmp / "signatures_mcat6.csv", index=False)
    _signature_table(pathways).to_csv(tmp / "signatures_pathways.csv", index=False)

    truth_cols = ["case_id", "true_risk", "z_wsi", "z_gen", "z_clin", "z_class"]
    patients[truth_cols].to_csv(tmp / "truth.csv", index=False)
    event = patients.censorship.to_numpy() == 0
    concordant, comparable = concordance_counts(
        patients.true_risk.to_numpy(), patients.survival_months.to_numpy(), event
    )  # Harrell's C of the true risk
    if comparable == 0:
        raise ValueError(
            f"synthetic cohort (seed {spec.seed}, n_patients {spec.n_patients}): oracle C-index undefined, "
            "no comparable pairs (no events); raise target_event_rate or n_patients"
        )
    oracle = {
        "oracle_cindex": concordant / comparable,
        "event_rate": float(event.mean()),
        "n_patients": spec.n_patients,
        "n_slides": int(slides.slide_id.notna().sum()),
        "encoder": encoder,
        "spec": spec.to_json(),
        "params": spec.to_json(),  # alias named in docs/CONTRACTS.md
        "cache_key": {"spec": spec.to_json(), "encoder": encoder},
    }
    if spec.missing_genomics or spec.missing_wsi:  # which patients lack what (the availability truth)
        oracle["missing"] = {
            "mechanism": spec.missing_mechanism,
            **{m: {"n": int(lack.sum()), "patients": ids[lack].tolist()} for m, lack in lacks.items()},
        }
    (tmp / "oracle.json").write_text(json.dumps(oracle, indent=2, sort_keys=True) + "\n")


def generate_cohort(root: str | Path, spec: SyntheticSpec, encoder: str = "synthetic") -> Path:
    """Write a synthetic cohort to ``root`` (cached: returns at once if ``root/oracle.json`` has this spec).
    ``root`` must be absent, empty or a folder survlab created (see `atomic_cohort`); user files are never touched.

    Layout: clinical.csv (one row per slide), features/<encoder>/{pt_files,h5_files}/<slide_id>.{pt,h5}
    ([N, D] float32; h5 also coords [N, 2] int64), multi-scale also features/<encoder>/{x5,x10,x20}/...,
    expression.csv (rows shuffled), signatures_mcat6.csv, signatures_pathways.csv, truth.csv, oracle.json.
    """
    key = {"spec": spec.to_json(), "encoder": encoder}
    return atomic_cohort(root, key, "oracle.json", lambda tmp: _write_cohort(tmp, spec, encoder))


# --------------------------------------------------------------------------------------------- classification
@dataclass(frozen=True)
class ClassificationSpec:
    """A classification-only cohort (CAMELYON-like, no survival). Same spec (incl. seed) -> identical files.

    Per slide: tumour with probability ``tumor_slide_rate``; a tumour slide carries the planted signal (a marker
    direction of strength ``wsi_marker_strength`` in ``signal_patch_fraction`` of its patches) with probability
    ``detectable_rate``, else it looks like a normal slide. Patient ``label`` = positive iff any slide is tumour;
    ``grade`` = G1 + number of tumour slides (capped at G3), a few cells empty; ``slide_label`` normal / tumor.
    """

    n_patients: int = 200
    feature_dim: int = 32
    slides_per_patient: tuple[int, int] = (1, 4)  # inclusive
    patches_per_slide: tuple[int, int] = (20, 120)  # inclusive
    tumor_slide_rate: float = 0.3
    detectable_rate: float = 0.8
    signal_patch_fraction: float = 0.1
    wsi_marker_strength: float = 6.0  # >> the N(0, 1) noise: the marker is detectable whenever planted
    missing_grade_rate: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("slides_per_patient", "patches_per_slide"):
            lo, hi = getattr(self, name)
            if not 1 <= lo <= hi:
                raise ValueError(f"ClassificationSpec.{name} must satisfy 1 <= lo <= hi, got {(lo, hi)}")
        for name in ("tumor_slide_rate", "detectable_rate", "signal_patch_fraction"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"ClassificationSpec.{name} must be in (0, 1], got {getattr(self, name)}")
        if self.n_patients < 2 or self.feature_dim < 1:
            raise ValueError("ClassificationSpec needs n_patients >= 2 and feature_dim >= 1")

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def bayes_accuracy(self, n_slides: np.ndarray) -> tuple[float, float]:
        """(patient, slide) accuracy of the Bayes rule, which sees whether each slide carries the marker.

        Slide: marker -> tumour; no marker -> the likelier of tumour (pi (1-q)) and normal (1-pi).
        Patient with n slides: a marked slide -> positive; none -> the likelier of negative ((1-pi)^n) and positive
        without any marked slide ((1-pi q)^n - (1-pi)^n). n_slides [N] -> mean over the cohort's patients."""
        pi, q = self.tumor_slide_rate, self.detectable_rate
        slide = pi * q + max(pi * (1 - q), 1 - pi)
        n = np.asarray(n_slides, float)
        none = (1 - pi * q) ** n
        patient = 1 - none + np.maximum((1 - pi) ** n, none - (1 - pi) ** n)
        return float(patient.mean()), float(slide)


def _write_classification_cohort(tmp: Path, spec: ClassificationSpec, encoder: str) -> None:
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 100]))
    marker = rng.standard_normal(spec.feature_dim).astype(np.float32)
    marker /= np.linalg.norm(marker)
    base = tmp / "features" / encoder
    for kind in ("pt_files", "h5_files"):
        (base / kind).mkdir(parents=True, exist_ok=True)
    rows, n_slides = [], []
    for i in range(spec.n_patients):
        case_id = f"CLS-{i:04d}"
        n = int(rng.integers(spec.slides_per_patient[0], spec.slides_per_patient[1] + 1))
        tumor = rng.random(n) < spec.tumor_slide_rate
        signal = tumor & (rng.random(n) < spec.detectable_rate)
        grade = f"G{1 + min(2, int(tumor.sum()))}" if rng.random() >= spec.missing_grade_rate else ""
        for j in range(n):
            slide_id = f"{case_id}-S{j + 1}"
            k = int(rng.integers(spec.patches_per_slide[0], spec.patches_per_slide[1] + 1))
            offset = (0.5 * rng.standard_normal(spec.feature_dim)).astype(np.float32)
            x = rng.standard_normal((k, spec.feature_dim), dtype=np.float32) + offset
            if signal[j]:
                hit = rng.choice(k, size=max(1, int(round(spec.signal_patch_fraction * k))), replace=False)
                x[hit] += spec.wsi_marker_strength * marker
            _write_bag(base, slide_id, x, _grid_coords(k, PATCH_PX["x20"]))
            rows.append(
                (
                    case_id,
                    slide_id,
                    "positive" if tumor.any() else "negative",
                    "tumor" if tumor[j] else "normal",
                    grade,
                    bool(tumor[j]),
                    bool(signal[j]),
                )
            )
        n_slides.append(n)
    table = pd.DataFrame(
        rows, columns=["case_id", "slide_id", "label", "slide_label", "grade", "tumor", "signal"]
    )
    table[["case_id", "slide_id", "label", "slide_label", "grade"]].to_csv(tmp / "clinical.csv", index=False)
    table[["case_id", "slide_id", "tumor", "signal"]].to_csv(tmp / "truth_slides.csv", index=False)
    patient, slide = spec.bayes_accuracy(np.asarray(n_slides))
    oracle = {
        "bayes_accuracy": patient,
        "bayes_accuracy_slide": slide,
        "positive_rate": float((table.groupby("case_id")["label"].first() == "positive").mean()),
        "n_patients": spec.n_patients,
        "n_slides": len(table),
        "encoder": encoder,
        "spec": spec.to_json(),
        "cache_key": {"spec": spec.to_json(), "encoder": encoder, "kind": "classification"},
    }
    (tmp / "oracle.json").write_text(json.dumps(oracle, indent=2, sort_keys=True) + "\n")


def generate_classification_cohort(
    root: str | Path, spec: ClassificationSpec, encoder: str = "synthetic"
) -> Path:
    """Write a classification-only synthetic cohort to ``root`` (cached like `generate_cohort`).

    Layout: clinical.csv (CLAM dataset_csv style, one row per slide: case_id, slide_id, label, slide_label, grade;
    no survival columns), features/<encoder>/{pt_files,h5_files}/<slide_id>.{pt,h5}, truth_slides.csv (tumour /
    signal flag per slide), oracle.json (``bayes_accuracy`` of the patient label, ``bayes_accuracy_slide``).
    """
    key = {"spec": spec.to_json(), "encoder": encoder, "kind": "classification"}
    return atomic_cohort(
        root, key, "oracle.json", lambda tmp: _write_classification_cohort(tmp, spec, encoder)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a synthetic survlab cohort.")
    parser.add_argument("--out", required=True, type=Path, help="cohort folder to write")
    parser.add_argument("--n-patients", type=int, default=SyntheticSpec.n_patients)
    parser.add_argument("--feature-dim", type=int, default=SyntheticSpec.feature_dim)
    parser.add_argument("--seed", type=int, default=SyntheticSpec.seed)
    parser.add_argument("--multiscale", action="store_true")
    parser.add_argument("--cross-scale-interaction", action="store_true")
    parser.add_argument("--encoder", default="synthetic")
    args = parser.parse_args(argv)
    spec = SyntheticSpec(
        n_patients=args.n_patients,
        feature_dim=args.feature_dim,
        seed=args.seed,
        multiscale=args.multiscale or args.cross_scale_interaction,
        cross_scale_interaction=args.cross_scale_interaction,
    )
    start = time.perf_counter()
    root = generate_cohort(args.out, spec, encoder=args.encoder)
    oracle = json.loads((root / "oracle.json").read_text())
    print(
        f"{root}: {oracle['n_patients']} patients, {oracle['n_slides']} slides, event rate "
        f"{oracle['event_rate']:.3f}, oracle C-index {oracle['oracle_cindex']:.4f} ({time.perf_counter() - start:.2f}s)"
    )


if __name__ == "__main__":
    main()
