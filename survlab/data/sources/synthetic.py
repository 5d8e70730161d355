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

The spec is in synthetic_spec, the patient table in synthetic_patients, expression and signatures in
synthetic_genomics, the slides in synthetic_wsi (the classification-only cohort: synthetic_classification); this module
writes the cohort folder (`generate_cohort`, through `cohort_folder.atomic_cohort`).

CLI: ``python -m survlab.data.sources.synthetic --out DIR [--n-patients N] [--multiscale] [--seed S]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from survlab.data.sources.cohort_folder import atomic_cohort
from survlab.data.sources.synthetic_genomics import _expression, _gene_groups, _signature_table
from survlab.data.sources.synthetic_patients import _patients, missing_modalities
from survlab.data.sources.synthetic_spec import _STREAM_ORDER, SyntheticSpec, _rng
from survlab.data.sources.synthetic_wsi import _write_slides
from survlab.metrics.concordance import concordance_counts


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
