"""The preprocessing of one fold, fitted on its TRAINING patients only (`FoldPreprocessing`): time bins and training
outcomes per endpoint, the class order (and training counts) of every label, the gene filter + scaler, the clinical
encoder, the CT/PET table scalers, and (after testing) each Cox objective's Breslow baseline. One object per fold:

- `FoldPreprocessing.fit(plan, cohort, train_ids, ...)` fits it (nothing of a validation / test patient is read);
- `apply(cohort, sources, ...)` encodes a cohort with it (the fold's own patients, or every patient of another
  cohort: external validation applies a saved one, nothing is refitted);
- `to_json()` / `from_json(state)` is `<run dir>/preprocessing.json` (format `survlab.preprocessing/1`, plain JSON,
  no pickles), so a trained model can be applied later without the training cohort's files (`survlab eval`).

This module holds the class (its fields, `apply`, `restricted`, the per-endpoint / per-label accessors) and the
preprocessing.json reader / writer; `fit` is in fitted_fit.py and the JSON form in fitted_json.py (mixins), the
plan, the imaging scalers and the format constants in fitted_plan.py.

The data module holds it as `dm.fitted`; objectives read their references from it (`Objective.fit_reference`).

Example:
    >>> fitted = FoldPreprocessing.fit(plan, cohort, split.train, split.hash, expr=expr, gene_groups=groups)  # doctest: +SKIP
    >>> sources = fitted.apply(cohort, ModalitySources(), expr=expr)                             # doctest: +SKIP
    >>> write_preprocessing(fitted, run_dir / "preprocessing.json", task)                        # doctest: +SKIP
    >>> again = FoldPreprocessing.from_json(read_preprocessing(run_dir / "preprocessing.json"))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survlab.data.cohort.checks import DataFileError
from survlab.data.cohort.clinical import ClinicalEncoder
from survlab.data.cohort.table import Cohort
from survlab.data.cohort.targets import LabelSpec, encode_labels
from survlab.data.cohort.time_bins import TimeBins
from survlab.data.dataset import ModalitySources
from survlab.data.dims import ModalityDims
from survlab.data.fitted_fit import FoldFit
from survlab.data.fitted_json import FoldJson
from survlab.data.fitted_plan import (
    FORMAT,
    ImagingScalers,
    _slide_codes,
    _slides,
)
from survlab.data.modalities.genomics import GeneGroups, GeneScaler, genomic_tensors
from survlab.utils.files import read_json


@dataclass
class FoldPreprocessing(FoldJson, FoldFit):
    """Everything fitted on one fold's training patients (see the module doc). `endpoint_bins` / `train_outcomes`
    are keyed by endpoint name, the primary first; `classes` / `label_counts` by patient label, `slide_classes` /
    `slide_label_counts` by slide label (slide counts are not saved in preprocessing.json); `dims` are the input
    sizes of the network (set by the data module once its datasets exist)."""

    cohort: str
    fold: int
    split_hash: str
    modalities: tuple[str, ...]
    clinical_columns: list[str] = field(default_factory=list)
    endpoint_bins: dict[str, TimeBins] = field(default_factory=dict)
    train_outcomes: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    label_specs: dict[str, LabelSpec] = field(default_factory=dict)
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    label_counts: dict[str, np.ndarray] = field(default_factory=dict)
    slide_classes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    slide_label_counts: dict[str, np.ndarray] = field(default_factory=dict)
    primary_label: str | None = None
    gene_groups: GeneGroups | None = None
    gene_scaler: GeneScaler | None = None
    gene_filter_report: dict[str, Any] | None = None
    clinical_encoder: ClinicalEncoder | None = None
    imaging: ImagingScalers | None = None
    dims: ModalityDims | None = None
    cox_baseline: dict[str, dict[str, list]] = field(default_factory=dict)
    # data.missing=keep: modality -> training patients without it (genomics / pet: left out of that modality's fit;
    # wsi: given the stand-in), what an external cohort's absent patients may be scored with; empty otherwise
    absent_in_training: dict[str, int] = field(default_factory=dict)

    # ------------------------------------------------------------------ apply
    def apply(
        self,
        cohort: Cohort,
        sources: ModalitySources,
        *,
        label_specs: Mapping[str, LabelSpec] | None = None,
        slide_label_specs: Mapping[str, LabelSpec] | None = None,
        expr: pd.DataFrame | None = None,
        imaging: Any = None,
        source: str | None = None,
        what: str = "data",
        absent: Mapping[str, Sequence[str]] | None = None,
    ) -> ModalitySources:
        """Encode every patient of `cohort` with this fold's fitted preprocessing into `sources` (in place, also
        returned): label codes (`label_specs`: the scored cohort's column names, default the fold's own; slide labels
        with `slide_label_specs`), scaled genes from `expr` (which must hold every fitted gene), encoded clinical
        columns, scaled imaging tables (`imaging`: that cohort's ImagingStore). Nothing is refitted. A value outside a
        label's classes, or imaging dims other than the fitted ones, is a one-line error. `absent` (data.missing=keep):
        modality -> patients without it, who get its placeholder (zeros) and are recorded in `sources.absent`."""
        source = source or f"the training patients of fold {self.fold}"
        case_ids = cohort.case_ids
        for name, spec in (self.label_specs if label_specs is None else label_specs).items():
            classes = self.classes[name]
            codes = encode_labels(
                cohort.table[spec.column], case_ids, spec, classes, cohort.path, source=source
            )
            sources.classes[name] = classes
            sources.labels[name] = dict(zip(case_ids, codes.tolist(), strict=True))
        if slide_label_specs:
            slides = _slides(cohort).set_index("slide_id", drop=False)
            for name, spec in slide_label_specs.items():
                classes = self.slide_classes[name]
                codes = _slide_codes(slides, spec, classes, cohort.path, self.fold)
                sources.slide_classes[name] = classes
                sources.slide_labels[name] = dict(zip(slides["slide_id"], codes.tolist(), strict=True))
        if expr is not None:
            if self.gene_groups is None or self.gene_scaler is None:
                raise ValueError(
                    f"{what}: expression given, but fold {self.fold} of {self.cohort} fitted no genes"
                )
            sources.genomics = genomic_tensors(
                expr, self.gene_groups, self.gene_scaler, case_ids, (absent or {}).get("genomics", ())
            )
        for modality, cases in (absent or {}).items():
            sources.absent[modality] = set(cases)
        if "clinical" in self.modalities and self.clinical_encoder is not None:
            values = self.clinical_encoder.transform(cohort.table)
            sources.clinical = dict(zip(case_ids, values, strict=True))
        if imaging is not None:
            if self.imaging is None:
                raise DataFileError(f"{what}: imaging data, but the training cohort {self.cohort} had none")
            if dict(imaging.dims) != dict(self.imaging.dims):
                raise DataFileError(
                    f"{what}: imaging dims {imaging.dims} differ from the training cohort's {self.imaging.dims}; "
                    f"use the same stack settings and table columns"
                )
            imaging.apply_fitted(self.imaging, case_ids)
            sources.imaging = imaging
        return sources

    def restricted(self, endpoints: Sequence[str], labels: Sequence[str]) -> FoldPreprocessing:
        """A copy holding only `endpoints` (bins + training outcomes) and patient `labels`, no slide labels: what
        another cohort is scored on (external validation; [] and [] = predictions only)."""
        keep_eps, keep_labels = set(endpoints), set(labels)
        return dataclasses.replace(
            self,
            endpoint_bins={k: b for k, b in self.endpoint_bins.items() if k in keep_eps},
            train_outcomes={k: v for k, v in self.train_outcomes.items() if k in keep_eps},
            label_specs={k: s for k, s in self.label_specs.items() if k in keep_labels},
            classes={k: c for k, c in self.classes.items() if k in keep_labels},
            label_counts={k: c for k, c in self.label_counts.items() if k in keep_labels},
            slide_classes={},
            slide_label_counts={},
        )

    # ------------------------------------------------------------------ queries
    @property
    def endpoints(self) -> list[str]:
        """Endpoint names, the primary first (empty: no survival)."""
        return list(self.endpoint_bins)

    @property
    def primary_endpoint(self) -> str | None:
        return next(iter(self.endpoint_bins), None)

    @property
    def time_bins(self) -> TimeBins | None:
        """Time bins of the primary endpoint (None without survival)."""
        return next(iter(self.endpoint_bins.values()), None)

    def _endpoint_name(self, endpoint: str | None) -> str:
        """`endpoint` (None = the primary), checked against the fitted endpoints."""
        names = self.endpoints
        if not names:
            raise ValueError(f"data={self.cohort} has no survival endpoint (classification-only cohort)")
        name = names[0] if endpoint is None else endpoint
        if name not in names:
            raise ValueError(f"data={self.cohort}: unknown endpoint {name!r}; endpoints: {names}")
        return name

    @property
    def bin_edges(self) -> np.ndarray:
        """Time-bin edges [n_bins + 1] of the primary endpoint."""
        return self.bin_edges_of(None)

    def bin_edges_of(self, endpoint: str | None) -> np.ndarray:
        """Time-bin edges [n_bins + 1] of `endpoint` (None = primary), fitted on the fold's training patients."""
        return self.endpoint_bins[self._endpoint_name(endpoint)].edges

    def train_survival(self, endpoint: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(time [N_train], event [N_train] bool) of the fold's training patients that have `endpoint` (None =
        primary): the censoring reference of the IPCW metrics."""
        time, event = self.train_outcomes[self._endpoint_name(endpoint)]
        return np.asarray(time, float), np.asarray(event, bool)

    def train_label_counts(self, label: str, level: str = "patient") -> np.ndarray:
        """Class counts [K] of `label` among the fold's TRAINING patients (level=slide: their slides)."""
        counts = self.label_counts if level == "patient" else self.slide_label_counts
        if label not in counts:
            if level == "slide" and label in self.slide_classes:
                raise ValueError("slide-level class counts are not saved in preprocessing.json")
            raise ValueError(f"data={self.cohort}: no {level}-level label {label!r}; labels: {list(counts)}")
        return np.asarray(counts[label], dtype=np.int64)

    @property
    def targets(self) -> dict[str, Any]:
        """What the fold can be scored on (JSON-safe, for protocol.json): endpoint names (primary first), the class
        order of every patient / slide label and which labels are ordinal."""
        return {
            "endpoints": self.endpoints,
            "primary_endpoint": self.primary_endpoint,
            "labels": {n: list(c) for n, c in self.classes.items()},
            "ordinal": {n: sp.ordinal for n, sp in self.label_specs.items()},
            "slide_labels": {n: list(c) for n, c in self.slide_classes.items()},
        }

    # ------------------------------------------------------------------ Cox baseline
    def record_cox_baseline(self, objectives: Mapping[str, Any]) -> None:
        """Keep each tested Cox objective's training risks / outcomes (its Breslow baseline for survival curves)."""
        for name, objective in objectives.items():
            risk = getattr(objective, "train_risk", None)
            if getattr(objective, "kind", None) == "cox" and risk is not None:
                self.cox_baseline[name] = {
                    "train_risk": np.asarray(risk, float).tolist(),
                    "train_time": np.asarray(objective.train_time, float).tolist(),
                    "train_event": np.asarray(objective.train_event, int).tolist(),
                }


def write_preprocessing(fitted: FoldPreprocessing, path: Path, task: Any = None) -> None:
    """Write `fitted.to_json()` to `path` (plain JSON), with the tested `task`'s Cox baselines recorded first."""
    from survlab.utils.outputs import write_json

    if task is not None:
        fitted.record_cox_baseline(getattr(task, "objectives", None) or {})
    write_json(Path(path), fitted.to_json())


def read_preprocessing(path: Path) -> FoldPreprocessing:
    """A preprocessing.json -> its FoldPreprocessing; one-line ValueError for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"{path}: no preprocessing.json; the run predates saved preprocessing, re-run it with this "
            f"survlab version"
        )
    try:
        state = read_json(path)  # a key given twice is refused, not silently the last value
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); re-run the training job to rewrite it") from None
    if state.get("format") != FORMAT:
        raise ValueError(
            f"{path}: format {state.get('format')!r}, expected {FORMAT!r}; re-run the training job"
        )
    try:
        return FoldPreprocessing.from_json(state)
    except (KeyError, TypeError) as err:
        raise ValueError(
            f"{path}: incomplete preprocessing state ({err!r}); re-run the training job"
        ) from None


__all__ = ["FoldPreprocessing", "read_preprocessing", "write_preprocessing"]
