"""A synthetic classification-only cohort (CAMELYON-like, no survival): tumour slides, a detectable share of them
carrying a marker direction in a fraction of their patches, the patient label positive iff any slide is tumour, and
the Bayes accuracy of the patient and slide labels in oracle.json (`generate_classification_cohort`).

    >>> round(ClassificationSpec().bayes_accuracy(np.array([1]))[1], 2)
    0.94
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survlab.data.sources.cohort_folder import atomic_cohort
from survlab.data.sources.synthetic_spec import PATCH_PX
from survlab.data.sources.synthetic_wsi import _grid_coords, _write_bag


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
