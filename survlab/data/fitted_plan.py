"""The parts of a fold's preprocessing besides `FoldPreprocessing` itself: what it is fitted from
(`PreprocessingPlan`), the CT/PET table scalers (`ImagingScalers`), the preprocessing.json format and file name,
the `ModalityDims` <-> dict codec, and the slide-label helpers that fitting and applying share.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survlab.data.cohort.clinical import ClinicalEncoder
from survlab.data.cohort.table import Cohort
from survlab.data.cohort.targets import LabelSpec, encode_labels
from survlab.data.cohort.time_bins import TimeBins
from survlab.data.dims import ModalityDims
from survlab.data.modalities.genomics import GeneGroups, GeneScaler

FORMAT = "survlab.preprocessing/1"


FILENAME = "preprocessing.json"


def dims_to_dict(dims: ModalityDims) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(dims)))


def dims_from_dict(d: dict[str, Any]) -> ModalityDims:
    """The inverse of `dims_to_dict` (tuples where ModalityDims has tuples)."""
    d = dict(d)
    for key in ("genomic_sizes", "genomic_names", "clinical_names", "endpoints"):
        if d.get(key) is not None:
            d[key] = tuple(d[key])
    d["prompts"] = {n: {c: tuple(s) for c, s in p.items()} for n, p in (d.get("prompts") or {}).items()}
    return ModalityDims(**d)


@dataclass(frozen=True)
class PreprocessingPlan:
    """What a fold fits (from the data config): the cohort's name and fold (for error messages), its modalities,
    endpoint names (primary first), patient / slide label specs, the primary label, the number of time bins, the
    clinical columns (and which are categorical) and the genomics settings (`select`, `scaling`, `log1p`)."""

    cohort: str
    fold: int
    modalities: tuple[str, ...]
    endpoints: tuple[str, ...] = ()
    label_specs: Mapping[str, LabelSpec] = field(default_factory=dict)
    slide_label_specs: Mapping[str, LabelSpec] = field(default_factory=dict)
    primary_label: str | None = None
    n_bins: int = 4
    clinical_columns: tuple[str, ...] = ()
    clinical_categorical: tuple[str, ...] = ()
    genomics: Mapping[str, Any] | None = None


@dataclass
class ImagingScalers:
    """The CT/PET tables' encoders (table name -> ClinicalEncoder, fitted on the training patients) and the imaging
    dims the network was built with (`ImagingStore.apply_fitted` reads `encoders`)."""

    dims: dict[str, int]
    encoders: dict[str, ClinicalEncoder]


def _slides(cohort: Cohort) -> pd.DataFrame:
    """The cohort's slide table; slide labels without one are a one-line ValueError."""
    if cohort.slides is None:
        raise ValueError(f"{cohort.path}: slide labels are configured but the cohort has no slide table")
    return cohort.slides


def _slide_codes(
    slides: pd.DataFrame, spec: LabelSpec, classes: tuple[str, ...], path: Path | str, fold: int
) -> np.ndarray:
    """Class index [n slides] of `spec`'s column of the slide rows `slides` (-1 = missing); a value outside
    `classes` (the training slides' of `fold`) is a one-line error."""
    return encode_labels(
        slides[spec.column],
        slides["slide_id"].tolist(),
        spec,
        classes,
        path,
        what="slide",
        source=f"the training slides of fold {fold}",
    )


def _train_counts(codes: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(codes[codes >= 0].astype(np.int64), minlength=k)


class FoldFields:
    """The fields of FoldPreprocessing as bare annotations, for its mixins (FoldFit, FoldJson) to read and type-check;
    not dataclass fields (FoldPreprocessing declares those with their defaults)."""

    cohort: str
    fold: int
    split_hash: str
    modalities: tuple[str, ...]
    clinical_columns: list[str]
    endpoint_bins: dict[str, TimeBins]
    train_outcomes: dict[str, tuple[np.ndarray, np.ndarray]]
    label_specs: dict[str, LabelSpec]
    classes: dict[str, tuple[str, ...]]
    label_counts: dict[str, np.ndarray]
    slide_classes: dict[str, tuple[str, ...]]
    slide_label_counts: dict[str, np.ndarray]
    primary_label: str | None
    gene_groups: GeneGroups | None
    gene_scaler: GeneScaler | None
    gene_filter_report: dict[str, Any] | None
    clinical_encoder: ClinicalEncoder | None
    imaging: ImagingScalers | None
    dims: ModalityDims | None
    cox_baseline: dict[str, dict[str, list]]
    absent_in_training: dict[str, int]
