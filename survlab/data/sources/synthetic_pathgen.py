"""Synthetic PathGen cohort: 6-family expression partly predictable from the patches, grade + survival from both.

Generative model (per patient i; latents independent N(0, 1)):

    z_img [K]   image factors: planted in a fraction of WSI patches (``s * sum_k z_img_k u_k`` + a marker direction)
    z_gene      a genomics-only factor (invisible in the slides)
    log expr_ig = base_g + sd_g * eps_ig + a_g . z_img_i + b_g * z_gene_i       (expression = exp, TPM-like)
                  a_g != 0 for a fraction ``image_gene_fraction`` of each family's genes, b_g != 0 for another part
    grade_i     = quantile bins (n_grades) of 0.8 z_img_0 + w z_gene + 0.5 noise            -> G1..G<n_grades>
    risk_i      = 0.7 z_img_1 + 0.875 w z_gene   (Weibull PH survival + independent censoring, as `synthetic.py`)
    (w = gene_outcome_weight, 0.8 by default; small w = the regime PathGen targets: the outcome-relevant part of the
    transcriptome is what the slides show)

So synthesis from the slides is possible but limited: the best any generator can do is E[expr | z_img]. Its per-gene
Spearman correlation with the truth (averaged per family and overall) is the ceiling written to oracle.json
(``generation_ceiling``), beside the oracle C-index and the grade's Bayes-rule proxy. The slides carry z_img
(so WSI-only models can learn part of grade / risk), real genomics add z_gene.

Files (the real TCGA layout): clinical.csv (case_id, slide_id, survival_months, censorship, grade, age, sex, site),
features/<encoder>/{pt_files,h5_files}/, expression.csv (rows shuffled), signatures_mcat6.csv (the 6 MCAT families;
a few listed symbols absent from the table, as in real signature files), truth.csv, oracle.json.

Example:
    >>> root = generate_pathgen_cohort("/tmp/pg", PathGenSpec(n_patients=40, feature_dim=8))   # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from survlab.data.sources.cohort_folder import atomic_cohort
from survlab.data.sources.synthetic_genomics import _signature_table
from survlab.data.sources.synthetic_patients import _quantile_bins, _survival
from survlab.data.sources.synthetic_spec import (
    _STREAM_CLIN,
    _STREAM_GENES,
    _STREAM_LATENT,
    _STREAM_ORDER,
    _STREAM_WSI,
    MCAT6_FAMILIES,
    PATCH_PX,
    SITES,
)
from survlab.data.sources.synthetic_wsi import _grid_coords, _write_bag
from survlab.metrics.concordance import concordance_counts


@dataclass(frozen=True)
class PathGenSpec:
    """Everything that determines a synthetic PathGen cohort. Same spec (incl. seed) -> identical files."""

    n_patients: int = 240
    feature_dim: int = 32
    slides_per_patient: tuple[int, int] = (1, 2)  # inclusive
    patches_per_slide: tuple[int, int] = (20, 80)  # inclusive
    signal_patch_fraction: float = 0.3
    wsi_signal_strength: float = 2.5
    wsi_marker_strength: float = 2.0
    n_image_factors: int = 3
    genes_per_family: tuple[int, int, int, int, int, int] = (12, 20, 20, 20, 30, 18)
    image_gene_fraction: float = 0.6
    gene_factor_fraction: float = 0.3
    n_grades: int = 4
    gene_outcome_weight: float = 0.8  # weight of the genomics-only factor in grade (risk: 0.875 x it)
    target_event_rate: float = 0.5
    weibull_shape: float = 1.2
    median_months: float = 45.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_patients < 8:
            raise ValueError(f"PathGenSpec.n_patients must be >= 8, got {self.n_patients}")
        if self.feature_dim < self.n_image_factors + 1:
            raise ValueError(
                "PathGenSpec.feature_dim must exceed n_image_factors (one direction each + a marker)"
            )
        if self.n_image_factors < 2:
            raise ValueError("PathGenSpec.n_image_factors must be >= 2 (grade and risk each read one)")
        if len(self.genes_per_family) != len(MCAT6_FAMILIES) or min(self.genes_per_family) < 3:
            raise ValueError(f"PathGenSpec.genes_per_family needs {len(MCAT6_FAMILIES)} sizes >= 3")
        for name in ("signal_patch_fraction", "image_gene_fraction", "target_event_rate"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"PathGenSpec.{name} must be in (0, 1], got {getattr(self, name)}")
        if self.image_gene_fraction + self.gene_factor_fraction > 1.0 or self.n_grades < 2:
            raise ValueError("PathGenSpec: image_gene_fraction + gene_factor_fraction <= 1 and n_grades >= 2")

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


def _rng(spec: PathGenSpec, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([spec.seed, 7, stream]))


def _genes(spec: PathGenSpec) -> tuple[list[str], dict[str, list[str]]]:
    """-> (gene symbols in table order, {family: symbols}); each family has its own genes."""
    genes, families = [], {}
    for fam, n in zip(MCAT6_FAMILIES, spec.genes_per_family, strict=True):
        families[fam] = [f"{fam[:4].upper()}{j + 1:03d}" for j in range(n)]
        genes += families[fam]
    return genes, families


def _loadings(
    spec: PathGenSpec, families: dict[str, list[str]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per gene: base, sd, image loadings a [G, K], gene-factor loading b [G] (disjoint gene subsets per family)."""
    rng = _rng(spec, _STREAM_GENES)
    n_genes = sum(spec.genes_per_family)
    base, sd = rng.normal(3.0, 1.0, n_genes), rng.uniform(0.3, 0.6, n_genes)
    a, b = np.zeros((n_genes, spec.n_image_factors)), np.zeros(n_genes)
    start = 0
    for n in (len(v) for v in families.values()):
        order = start + rng.permutation(n)
        n_img, n_gen = int(round(spec.image_gene_fraction * n)), int(round(spec.gene_factor_fraction * n))
        for g in order[:n_img]:
            a[g, rng.integers(spec.n_image_factors)] = rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.0)
        b[order[n_img : n_img + n_gen]] = rng.choice([-1.0, 1.0], n_gen) * rng.uniform(0.6, 1.0, n_gen)
        start += n
    return base, sd, a, b


def _ceiling(
    log_expr: np.ndarray, mean_given_image: np.ndarray, families: dict[str, list[str]]
) -> dict[str, Any]:
    """Per-gene Spearman (over patients) of the truth vs E[log expr | z_img] (genes without image signal: 0), averaged
    per family and overall: what a perfect slide-only generator reaches in the metric `eval.generation` reports."""
    rho = np.zeros(log_expr.shape[1])
    for g in range(log_expr.shape[1]):
        if np.ptp(mean_given_image[:, g]) > 0:
            rho[g] = spearmanr(log_expr[:, g], mean_given_image[:, g]).statistic
    out, start = {}, 0
    for fam, genes in families.items():
        out[fam] = float(rho[start : start + len(genes)].mean())
        start += len(genes)
    return {"spearman_per_gene": out, "spearman_per_gene_overall": float(rho.mean())}


def _write(tmp: Path, spec: PathGenSpec, encoder: str) -> None:
    n = spec.n_patients
    rng = _rng(spec, _STREAM_LATENT)
    z_img, z_gene = rng.standard_normal((n, spec.n_image_factors)), rng.standard_normal(n)
    w = spec.gene_outcome_weight
    grade_score = 0.8 * z_img[:, 0] + w * z_gene + 0.5 * rng.standard_normal(n)
    risk = 0.7 * z_img[:, 1] + 0.875 * w * z_gene
    months, event = _survival(spec, risk)  # type: ignore[arg-type]  # reads seed, shape, median, event rate
    grade = _quantile_bins(grade_score, spec.n_grades)
    clin = _rng(spec, _STREAM_CLIN)
    site_idx = clin.integers(0, len(SITES), size=n)
    patients = pd.DataFrame(
        {
            "case_id": [f"PG-{SITES[s]}-{i:04d}" for i, s in enumerate(site_idx)],
            "survival_months": months,
            "censorship": (~event).astype(int),
            "grade": [f"G{g + 1}" for g in grade],
            "age": np.round(60 + 10 * clin.standard_normal(n)),
            "sex": np.where(clin.random(n) < 0.5, "F", "M"),
            "site": np.asarray(SITES)[site_idx],
        }
    )

    # slides: z_img planted on a fraction of each slide's patches
    wsi = _rng(spec, _STREAM_WSI)
    q, _ = np.linalg.qr(wsi.standard_normal((spec.feature_dim, spec.n_image_factors + 1)))
    u, marker = q[:, :-1].T.astype(np.float32), q[:, -1].astype(np.float32)
    base_dir = tmp / "features" / encoder
    for kind in ("pt_files", "h5_files"):
        (base_dir / kind).mkdir(parents=True, exist_ok=True)
    rows = []
    for case_id, z in zip(patients.case_id, z_img, strict=True):
        planted = (spec.wsi_signal_strength * z.astype(np.float32)) @ u + spec.wsi_marker_strength * marker
        for j in range(int(wsi.integers(spec.slides_per_patient[0], spec.slides_per_patient[1] + 1))):
            k = int(wsi.integers(spec.patches_per_slide[0], spec.patches_per_slide[1] + 1))
            x = wsi.standard_normal((k, spec.feature_dim), dtype=np.float32)
            x += (0.3 * wsi.standard_normal(spec.feature_dim)).astype(np.float32)  # slide offset
            hit = wsi.choice(k, size=max(1, int(round(spec.signal_patch_fraction * k))), replace=False)
            x[hit] += planted
            slide_id = f"{case_id}-DX{j + 1}"
            _write_bag(base_dir, slide_id, x, _grid_coords(k, PATCH_PX["x20"]))
            rows.append((case_id, slide_id))
    slides = pd.DataFrame(rows, columns=["case_id", "slide_id"])
    clinical = slides.merge(patients, on="case_id", how="left", validate="many_to_one")
    clinical.to_csv(tmp / "clinical.csv", index=False)

    genes, families = _genes(spec)
    base, sd, a, b = _loadings(spec, families)
    mean_given_image = base + z_img @ a.T  # E[log expr | z_img] (z_gene and noise have mean 0)
    log_expr = (
        mean_given_image
        + np.outer(z_gene, b)
        + sd * _rng(spec, _STREAM_GENES + 1).standard_normal((n, len(genes)))
    )
    expr = pd.DataFrame(np.exp(log_expr), columns=genes)
    expr.insert(0, "case_id", patients.case_id.to_numpy())
    expr.iloc[_rng(spec, _STREAM_ORDER).permutation(n)].to_csv(
        tmp / "expression.csv", index=False, float_format="%.6g"
    )
    listed = {fam: g + ([f"ABSENT{i}"] if i % 2 == 0 else []) for i, (fam, g) in enumerate(families.items())}
    _signature_table(listed).to_csv(tmp / "signatures_mcat6.csv", index=False)

    truth = pd.DataFrame(
        {
            "case_id": patients.case_id,
            "true_risk": risk,
            "grade_score": grade_score,
            "z_gene": z_gene,
            **{f"z_img_{k}": z_img[:, k] for k in range(spec.n_image_factors)},
        }
    )
    truth.to_csv(tmp / "truth.csv", index=False)
    concordant, comparable = concordance_counts(risk, months, event)
    oracle = {
        "oracle_cindex": concordant / comparable,
        "event_rate": float(event.mean()),
        "n_patients": n,
        "n_slides": len(slides),
        "encoder": encoder,
        "generation_ceiling": _ceiling(log_expr, mean_given_image, families),
        "spec": spec.to_json(),
        "cache_key": {"spec": spec.to_json(), "encoder": encoder, "kind": "pathgen"},
    }
    (tmp / "oracle.json").write_text(json.dumps(oracle, indent=2, sort_keys=True) + "\n")


def generate_pathgen_cohort(root: str | Path, spec: PathGenSpec, encoder: str = "synthetic") -> Path:
    """Write a synthetic PathGen cohort to ``root`` (cached by spec like `synthetic.generate_cohort`)."""
    key = {"spec": spec.to_json(), "encoder": encoder, "kind": "pathgen"}
    return atomic_cohort(root, key, "oracle.json", lambda tmp: _write(tmp, spec, encoder))


__all__ = ["PathGenSpec", "generate_pathgen_cohort"]
