"""The patient table of a synthetic survival cohort: latents, true risk (with planted site effects), Weibull event
times with calibrated censoring, label / grade / stage from quantiles, clinical covariates with a few NaN
(`_patients`), and which patients lack a modality (`missing_modalities`). Model: survlab.data.sources.synthetic.

    >>> site_codes(3)
    ('A0', 'A1', 'A2')
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from survlab.data.sources.synthetic_spec import (
    _STREAM_CLIN,
    _STREAM_LATENT,
    _STREAM_MISSING,
    _STREAM_SITE,
    _STREAM_SURV,
    SITES,
    STAGES,
    SyntheticSpec,
    _rng,
)


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
