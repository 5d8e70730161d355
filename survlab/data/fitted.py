"""The preprocessing of one fold, fitted on its TRAINING patients only (`FoldPreprocessing`): time bins and training
outcomes per endpoint, the class order (and training counts) of every label, the gene filter + scaler, the clinical
encoder, the CT/PET table scalers, and (after testing) each Cox objective's Breslow baseline. One object per fold:

- `FoldPreprocessing.fit(plan, cohort, train_ids, ...)` fits it (nothing of a validation / test patient is read);
- `apply(cohort, sources, ...)` encodes a cohort with it (the fold's own patients, or every patient of another
  cohort: external validation applies a saved one, nothing is refitted);
- `to_json()` / `from_json(state)` is `<run dir>/preprocessing.json` (format `survlab.preprocessing/1`, plain JSON,
  no pickles), so a trained model can be applied later without the training cohort's files (`survlab eval`).

The data module holds it as `dm.fitted`; objectives read their references from it (`Objective.fit_reference`).

Example:
    >>> fitted = FoldPreprocessing.fit(plan, cohort, split.train, split.hash, expr=expr, gene_groups=groups)  # doctest: +SKIP
    >>> sources = fitted.apply(cohort, ModalitySources(), expr=expr)                             # doctest: +SKIP
    >>> write_preprocessing(fitted, run_dir / "preprocessing.json", task)                        # doctest: +SKIP
    >>> again = FoldPreprocessing.from_json(read_preprocessing(run_dir / "preprocessing.json"))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survlab.data.cohort.checks import DataFileError
from survlab.data.cohort.clinical import ClinicalEncoder
from survlab.data.cohort.table import Cohort
from survlab.data.cohort.targets import LabelSpec, check_classes, encode_labels, label_problems
from survlab.data.cohort.time_bins import TimeBins
from survlab.data.dataset import ModalitySources
from survlab.data.dims import ModalityDims
from survlab.data.modalities.genomics import GeneGroups, GeneScaler, fit_genomics, genomic_tensors
from survlab.utils.files import read_json

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


@dataclass
class FoldPreprocessing:
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

    # ------------------------------------------------------------------ fit
    @classmethod
    def fit(
        cls,
        plan: PreprocessingPlan,
        cohort: Cohort,
        train_ids: Sequence[str],
        split_hash: str,
        *,
        expr: pd.DataFrame | None = None,
        gene_groups: GeneGroups | None = None,
        imaging: Any = None,
    ) -> FoldPreprocessing:
        """Fit on the TRAINING patients `train_ids` of `cohort` only: label classes (configured, else the training
        values) and counts, time bins + outcomes per endpoint, the gene filter (`plan.genomics.select`) and scaler on
        `expr` [patients x genes] over the matched `gene_groups`, the clinical encoder, the imaging tables' scalers
        (`imaging`: an ImagingStore). One-line ValueError for a label with < 2 classes or an endpoint without
        training events."""
        train_rows = cohort.rows(list(train_ids))
        out = cls(plan.cohort, int(plan.fold), split_hash, tuple(plan.modalities))
        out.clinical_columns = list(plan.clinical_columns)
        out.primary_label = plan.primary_label
        source = f"the training patients of fold {plan.fold}"
        problems = label_problems(
            plan.label_specs,
            plan.slide_label_specs,
            cohort.table,
            cohort.slides,
            train_rows["case_id"],
            cohort.path,
            source,
        )  # letter-case twins, configured classes without training examples, slide vs patient label
        if problems:
            raise ValueError(problems[0][1])
        for name, spec in plan.label_specs.items():
            classes = spec.fit(train_rows[spec.column])
            check_classes(spec, classes, cohort.path)
            codes = encode_labels(
                train_rows[spec.column],
                train_rows["case_id"].tolist(),
                spec,
                classes,
                cohort.path,
                source=source,
            )
            out.label_specs[name], out.classes[name] = spec, classes
            out.label_counts[name] = _train_counts(codes, len(classes))
        if plan.slide_label_specs:
            slides = _slides(cohort).set_index("slide_id", drop=False)
            train_slides = slides[slides["case_id"].isin(set(train_rows["case_id"]))]
            train_slide_ids = (
                {s for ss in train_rows["slide_ids"] for s in ss} if "slide_ids" in train_rows else set()
            )
            for name, spec in plan.slide_label_specs.items():
                classes = spec.fit(train_slides[spec.column])
                check_classes(spec, classes, cohort.path)
                counted = train_slides[train_slides["slide_id"].isin(train_slide_ids)]
                codes = _slide_codes(counted, spec, classes, cohort.path, plan.fold)
                out.slide_classes[name] = classes
                out.slide_label_counts[name] = _train_counts(codes, len(classes))
        for name in plan.endpoints:
            time = train_rows[f"time:{name}"].to_numpy(float)
            event = train_rows[f"event:{name}"].to_numpy(bool)
            has = ~np.isnan(time)
            if not event[has].any():
                raise ValueError(
                    f"data={plan.cohort}: endpoint '{name}' has no events among the {int(has.sum())} training "
                    f"patients of fold {plan.fold}; drop it from endpoints or use fewer folds"
                )
            out.endpoint_bins[name] = TimeBins.fit(time[has], event[has], plan.n_bins)
            out.train_outcomes[name] = (time[has], event[has])
        if expr is not None:  # on the training patients WITH a profile (data.missing=keep keeps the others)
            have = [c for c in train_ids if c in expr.index]
            if len(have) < len(train_ids):
                out.absent_in_training["genomics"] = len(train_ids) - len(have)
            if not have:
                raise ValueError(
                    f"data={plan.cohort}: none of the {len(train_ids)} training patients of fold {plan.fold} has an "
                    f"expression profile; nothing to fit the genomics scaling on (add profiles or drop genomics)"
                )
            out._fit_genes(plan, expr, gene_groups, have, cohort.rows(have))
        if "clinical" in plan.modalities:
            out.clinical_encoder = ClinicalEncoder(plan.clinical_columns, plan.clinical_categorical).fit(
                train_rows
            )
        if imaging is not None:  # impute + z-score every CT/PET table with the training patients' statistics
            # each table on the training patients that have a row (data.missing=keep keeps some without PET)
            with_row = {n: [c for c in train_ids if c in t.index] for n, t in imaging.tables.items()}
            for n, ids in with_row.items():
                if len(ids) < len(train_ids):
                    out.absent_in_training[n] = len(train_ids) - len(ids)
                if not ids:
                    raise ValueError(
                        f"data={plan.cohort}: none of the {len(train_ids)} training patients of fold {plan.fold} has "
                        f"a {n} row; nothing to fit its scaling on"
                    )
            out.imaging = ImagingScalers(
                dict(imaging.dims),
                {
                    n: ClinicalEncoder(list(t.columns)).fit(t.loc[with_row[n]].reset_index())
                    for n, t in imaging.tables.items()
                },
            )
        return out

    def _fit_genes(
        self,
        plan: PreprocessingPlan,
        expr: pd.DataFrame,
        groups: GeneGroups | None,
        train_ids: list[str],
        train_rows: pd.DataFrame,
    ) -> None:
        """The gene filter (`genomics.select`, training patients' top genes, before the scaler) and the scaler."""
        g = dict(plan.genomics or {})
        if groups is None:
            raise ValueError(f"data={plan.cohort}: genomics expression given without its matched gene groups")
        if g.get("select"):
            from survlab.data.modalities.gene_filter import GeneFilter

            survival = bool(plan.endpoints)
            outcome = (
                (train_rows["time"].to_numpy(float), train_rows["event"].to_numpy(bool))
                if survival
                else (None, None)
            )
            gene_filter = GeneFilter.from_config(g["select"], bool(g["log1p"])).fit(
                expr, groups, train_ids, *outcome
            )
            kept = gene_filter.apply(groups)
            self.gene_filter_report = gene_filter.describe(groups, kept)
            groups = kept
        self.gene_groups = groups
        self.gene_scaler = fit_genomics(expr, groups, train_ids, g["scaling"], bool(g["log1p"]))

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

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict[str, Any]:
        """The JSON-safe state (`preprocessing.json`, format survlab.preprocessing/1)."""
        if self.dims is None:
            raise ValueError(f"data={self.cohort} fold {self.fold}: dims not set (the data module sets them)")
        return {
            "format": FORMAT,
            "cohort": self.cohort,
            "fold": int(self.fold),
            "split_hash": self.split_hash,
            "modalities": list(self.modalities),
            "clinical_columns": list(self.clinical_columns),
            "endpoints": self.endpoints,
            "time_bins": {n: b.to_dict() for n, b in self.endpoint_bins.items()},
            "train_survival": {
                n: {"time": np.asarray(t, float).tolist(), "event": np.asarray(e, bool).astype(int).tolist()}
                for n, (t, e) in self.train_outcomes.items()
            },
            "labels": {
                n: {
                    "column": spec.column,
                    "classes": list(self.classes[n]),
                    "ordinal": spec.ordinal,
                    "train_counts": np.asarray(self.label_counts[n]).tolist(),
                }
                for n, spec in self.label_specs.items()
            },
            "slide_labels": {n: list(c) for n, c in self.slide_classes.items()},
            "primary_label": self.primary_label,
            "genomics": {"groups": self.gene_groups.to_dict(), "scaler": self.gene_scaler.to_dict()}
            if self.gene_groups is not None and self.gene_scaler is not None
            else None,
            "clinical": self.clinical_encoder.to_dict() if self.clinical_encoder is not None else None,
            "imaging": {
                "dims": dict(self.imaging.dims),
                "encoders": {n: e.to_dict() for n, e in self.imaging.encoders.items()},
            }
            if self.imaging is not None
            else None,
            "dims": dims_to_dict(self.dims),
            "cox_baseline": dict(self.cox_baseline),
            # only when some training patients lacked a modality (data.missing=keep): older files lack the key
            **({"absent_in_training": dict(self.absent_in_training)} if self.absent_in_training else {}),
        }

    def changed_keys(self, saved: dict[str, Any]) -> list[str]:
        """Keys of a saved state (`to_json()` of the same fold, e.g. a run's preprocessing.json) that this refit
        differs in: the cohort's files or split changed since. The Cox baseline is left out (recorded after testing)."""
        now = self.to_json()
        return [k for k in saved if k != "cox_baseline" and json.dumps(saved[k]) != json.dumps(now.get(k))]

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> FoldPreprocessing:
        """The inverse of `to_json` (a preprocessing.json of any survlab version writing format
        survlab.preprocessing/1)."""
        if state.get("format") != FORMAT:
            raise ValueError(f"preprocessing state of format {state.get('format')!r}, expected {FORMAT!r}")
        labels = state.get("labels") or {}
        gen, img = state.get("genomics"), state.get("imaging")
        return cls(
            cohort=str(state["cohort"]),
            fold=int(state["fold"]),
            split_hash=str(state["split_hash"]),
            modalities=tuple(state["modalities"]),
            clinical_columns=list(state.get("clinical_columns") or []),
            endpoint_bins={n: TimeBins.from_dict(b) for n, b in state["time_bins"].items()},
            train_outcomes={
                n: (np.asarray(r["time"], float), np.asarray(r["event"], bool))
                for n, r in state["train_survival"].items()
            },
            label_specs={
                n: LabelSpec(n, d["column"], tuple(d["classes"]), bool(d["ordinal"]))
                for n, d in labels.items()
            },
            classes={n: tuple(d["classes"]) for n, d in labels.items()},
            label_counts={n: np.asarray(d["train_counts"], dtype=np.int64) for n, d in labels.items()},
            slide_classes={n: tuple(c) for n, c in (state.get("slide_labels") or {}).items()},
            primary_label=state.get("primary_label"),
            gene_groups=GeneGroups.from_dict(gen["groups"]) if gen else None,
            gene_scaler=GeneScaler.from_dict(gen["scaler"]) if gen else None,
            clinical_encoder=ClinicalEncoder.from_dict(state["clinical"]) if state.get("clinical") else None,
            imaging=ImagingScalers(
                dict(img["dims"]), {n: ClinicalEncoder.from_dict(e) for n, e in img["encoders"].items()}
            )
            if img
            else None,
            dims=dims_from_dict(state["dims"]),
            cox_baseline=dict(state.get("cox_baseline") or {}),
            absent_in_training={k: int(v) for k, v in (state.get("absent_in_training") or {}).items()},
        )


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


__all__ = [
    "FILENAME",
    "FoldPreprocessing",
    "ImagingScalers",
    "PreprocessingPlan",
    "read_preprocessing",
    "write_preprocessing",
]
