"""External validation data: every patient of another cohort as a test set, preprocessed with what was fitted on the
TRAINING patients of the internal cohort (class orders, time bins, clinical encoder, radiomics / PET scaling, gene
scalers) — never refitted on the external patients.

Example:
    >>> ext = CohortDataModule(**external_cfg, modalities=("ct", "clinical"))          # doctest: +SKIP
    >>> setup_external(ext, trained_dm); loader = ext.test_dataloader()                  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from survlab.data.cohort.checks import DataFileError
from survlab.data.cohort.splits import FoldSplit
from survlab.data.cohort.targets import encode_labels
from survlab.data.dataset import ModalitySources
from survlab.data.modalities.genomics import genomic_tensors

log = logging.getLogger(__name__)


def _check_compatible(ext: Any, train: Any, targets: bool = True) -> None:
    """Same endpoints, labels (unless `targets` is False: checked elsewhere, or predictions only) and modalities as
    the training cohort; one-line ValueError naming the difference."""
    what = f"external data={ext.name} vs training data={train.name}"
    ext_eps, train_eps = [e.name for e in ext.endpoints], [e.name for e in train.endpoints]
    if targets and ext_eps != train_eps:
        raise ValueError(f"{what}: endpoints {ext_eps} != {train_eps}; declare the same data.endpoints")
    if targets and list(ext.label_specs) != list(train.label_specs):
        raise ValueError(
            f"{what}: labels {list(ext.label_specs)} != {list(train.label_specs)}; declare the same labels"
        )
    missing = [m for m in train.modalities if m not in ext.provides]
    if missing:
        raise ValueError(
            f"{what}: the model needs {missing}, which the external cohort does not provide; add "
            f"them to the external cohort's data config (its files in the training cohort's layout)"
        )
    if "clinical" in train.modalities and ext.clin_cols != train.clin_cols:
        raise ValueError(
            f"{what}: clinical columns {ext.clin_cols} != {train.clin_cols}; use the same columns"
        )


def _restrict_targets(ext: Any, train: Any, endpoints: Sequence[str], labels: Sequence[str]) -> None:
    """Keep only the endpoints / patient labels the model is scored on (the training cohort may declare more); the
    external cohort must declare each of them (one-line ValueError naming what is missing and the fix)."""
    what = f"external data={ext.name} vs training data={train.name}"
    ext_eps = [e.name for e in ext.endpoints]
    absent = [e for e in endpoints if e not in ext_eps]
    if absent:
        raise ValueError(
            f"{what}: the model is scored on endpoint(s) {absent}, which the external cohort does not "
            f"declare (it has {ext_eps}); declare them under data.endpoints / data.time_col, or score it without "
            f"outcomes (predictions only)"
        )
    primary = train.endpoint.name if train.endpoint is not None else None
    if primary in endpoints and (ext.endpoint is None or ext.endpoint.name != primary):
        raise ValueError(
            f"{what}: the model's primary endpoint is {primary}, the external cohort's "
            f"{ext.endpoint.name if ext.endpoint else None}; set data.endpoint={primary}"
        )
    ext.secondary = tuple(e for e in ext.secondary if e.name in endpoints)
    if ext.endpoint is not None and ext.endpoint.name not in endpoints and not ext.secondary:
        ext.endpoint, ext.has_survival = None, False  # a classification model: survival is not scored
    unknown = [n for n in labels if n not in ext.label_specs]
    if unknown:
        raise ValueError(
            f"{what}: the model is scored on label(s) {unknown}, which the external cohort does not "
            f"declare (it has {list(ext.label_specs)}); declare them under data.labels, or score it without "
            f"outcomes (predictions only)"
        )
    ext.label_specs = {n: ext.label_specs[n] for n in labels}
    ext.label_cols = list(labels)
    ext.slide_label_specs = {}


def _align_genes(expr: Any, ext: Any, train: Any, missing_genes: str) -> Any:
    """The external expression table with every gene the model was trained on: a missing gene is a one-line
    DataFileError (`missing_genes="error"`, the default) or, with `missing_genes="mean"`, an empty column (imputed to
    the training mean by the scaler: 0 after scaling)."""
    from survlab.data.modalities.genomics import _group_genes

    genes = _group_genes(train.gene_groups)
    absent = [g for g in genes if g not in expr.columns]
    if not absent:
        return expr
    if missing_genes != "mean":
        raise DataFileError(
            f"external data={ext.name}: {ext.root / ext.gen_cfg['expression']} lacks {len(absent)} of the "
            f"{len(genes)} genes the "
            f"model was trained on (e.g. {', '.join(absent[:5])}); add them (exact symbols), or pass "
            f"missing_genes=mean to impute them with the training mean"
        )
    log.warning(
        "external data %s: %d/%d model genes missing, imputed with the training mean (missing_genes=mean)",
        ext.name,
        len(absent),
        len(genes),
    )
    return expr.reindex(columns=[*expr.columns, *absent])


def _unseen_categories(encoder: Any, table: Any) -> dict[str, list[str]]:
    """Column -> values of a categorical clinical column that the training patients never had (they encode as all
    zeros: a different coding, e.g. 'M' vs 'male', would silently blank the covariate)."""
    out = {}
    for col, p in encoder.params.items():
        if p["kind"] == "categorical":
            seen = set(p["categories"])
            new = sorted({str(v) for v in table[col].dropna()} - seen)
            if new:
                out[col] = new
    return out


def setup_external(
    ext: Any,
    train: Any,
    outcomes: bool = True,
    missing_genes: str = "error",
    scored_on: tuple[Sequence[str], Sequence[str]] | None = None,
) -> None:
    """Set up the CohortDataModule `ext` as an external TEST cohort of the set-up training data module `train` (or
    a `survlab.data.fitted.FittedData` rebuilt from a run's preprocessing.json): all its patients (after the usual
    checks and drops) in `ext.datasets["test"]`; preprocessing from `train`. `outcomes=False`: a cohort without
    outcomes or labels (predictions only). `scored_on`: the (endpoints, labels) the model is scored on, when not
    every one the training cohort declares."""
    if outcomes and scored_on is not None:
        _restrict_targets(ext, train, *scored_on)
    _check_compatible(ext, train, targets=outcomes and scored_on is None)
    ext.modalities = tuple(train.modalities)
    ext.prepare_data()
    full = ext.read_cohort_table(split_columns=False)  # an external cohort is not split
    ext.full_cohort = full
    sources = ModalitySources()
    cohort = ext._setup_wsi(full, sources)
    expr, cohort = ext._read_genomics(cohort)
    cohort = ext._setup_imaging(cohort)
    ext.cohort = cohort
    source = f"the training patients of {train.name} fold {train.fold}"
    for name, spec in ext.label_specs.items():
        classes = train.sources.classes[name]
        codes = encode_labels(
            cohort.table[spec.column], cohort.case_ids, spec, classes, cohort.path, source=source
        )
        sources.classes[name] = classes
        sources.labels[name] = dict(zip(cohort.case_ids, codes.tolist(), strict=True))
    declared = {
        e.name for e in ext.endpoints
    }  # after _restrict_targets: the endpoints the model is scored on
    ext.endpoint_bins = {k: b for k, b in train.endpoint_bins.items() if k in declared} if outcomes else {}
    ext.time_bins = train.time_bins if outcomes else None
    if expr is not None:  # the training fold's genes (after its gene filter) and scaler
        expr = _align_genes(expr, ext, train, missing_genes)
        ext.gene_groups, ext.gene_scaler = train.gene_groups, train.gene_scaler
        ext.gene_filter_report = getattr(train, "gene_filter_report", None)
        sources.genomics = genomic_tensors(expr, train.gene_groups, train.gene_scaler, cohort.case_ids)
    if "clinical" in ext.modalities:
        ext.clinical_encoder = train.clinical_encoder
        unseen = _unseen_categories(train.clinical_encoder, cohort.table)
        if unseen:
            ext.drop_report["unseen_categories"] = unseen
            log.warning(
                "external data %s: clinical value(s) the training patients never had, encoded as all zeros: "
                "%s; recode them to the training categories if they mean the same",
                ext.name,
                unseen,
            )
        sources.clinical = dict(
            zip(cohort.case_ids, train.clinical_encoder.transform(cohort.table), strict=True)
        )
    if ext.imaging is not None:
        if ext.imaging.dims != train.imaging.dims:
            raise DataFileError(
                f"external data={ext.name}: imaging dims {ext.imaging.dims} differ from the training "
                f"cohort's {train.imaging.dims}; use the same stack settings and table columns"
            )
        ext.imaging.apply_fitted(train.imaging, cohort.case_ids)
        sources.imaging = ext.imaging
    ext.sources = sources
    ids = sorted(cohort.case_ids)
    ext.split = FoldSplit(fold=-1, train=[], val=[], test=ids, path=ext.clinical_csv, hash="external")
    ext.split_hash, ext.split_path = "external", ext.clinical_csv
    ext.datasets = {"test": ext._dataset("test")}
    ext.dims = ext._dims()
    ext._ready = True
    log.info("external data %s: %d test patients (preprocessing fitted on %s)", ext.name, len(ids), source)


__all__ = ["setup_external"]
