"""External validation data: every patient of another cohort as a test set, preprocessed with what was fitted on the
TRAINING patients of the internal cohort (class orders, time bins, clinical encoder, radiomics / PET scaling, gene
scalers) — never refitted on the external patients.

Example:
    >>> ext = CohortDataModule(**external_cfg, modalities=("ct", "clinical"))          # doctest: +SKIP
    >>> setup_external(ext, trained_dm); loader = ext.test_dataloader()                  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from typing import Any

from survlab.data.checks import DataFileError
from survlab.data.cohort import Cohort
from survlab.data.dataset import ModalitySources
from survlab.data.genomics import genomic_tensors
from survlab.data.splits import FoldSplit
from survlab.data.targets import encode_labels

log = logging.getLogger(__name__)


def _check_compatible(ext: Any, train: Any) -> None:
    """Same endpoints, labels and modalities as the training cohort; one-line ValueError naming the difference."""
    what = f"external data={ext.name} vs training data={train.name}"
    ext_eps, train_eps = [e.name for e in ext.endpoints], [e.name for e in train.endpoints]
    if ext_eps != train_eps:
        raise ValueError(f"{what}: endpoints {ext_eps} != {train_eps}; declare the same data.endpoints")
    if list(ext.label_specs) != list(train.label_specs):
        raise ValueError(
            f"{what}: labels {list(ext.label_specs)} != {list(train.label_specs)}; declare the same labels"
        )
    missing = [m for m in train.modalities if m not in ext.provides]
    if missing:
        raise ValueError(f"{what}: the model needs {missing}, which the external cohort does not provide")
    if ext.clin_cols != train.clin_cols:
        raise ValueError(
            f"{what}: clinical columns {ext.clin_cols} != {train.clin_cols}; use the same columns"
        )


def setup_external(ext: Any, train: Any) -> None:
    """Set up the CohortDataModule `ext` as an external TEST cohort of the set-up training data module `train`:
    all its patients (after the usual checks and drops) in `ext.datasets["test"]`; preprocessing from `train`."""
    _check_compatible(ext, train)
    ext.modalities = tuple(train.modalities)
    ext.prepare_data()
    keep = list(
        dict.fromkeys([*(sp.column for sp in ext.label_specs.values()),
                       *([] if getattr(ext, "clin_table", None) else ext.clin_cols), *ext.subgroups])
    )
    full = Cohort.from_csv(
        ext.clinical_csv,
        ext.case_col,
        ext.slide_col,
        ext.endpoint,
        keep,
        survival=ext.has_survival,
        secondary=ext.secondary,
    )
    if getattr(ext, "clin_table", None):  # covariates in their own CSV (clinical.table), joined by case_id
        from survlab.data.covariates import join_covariates

        full = join_covariates(full, ext.root / ext.clin_table, ext.clin_cols, ext.case_col)
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
    ext.endpoint_bins = dict(train.endpoint_bins)
    ext.time_bins = train.time_bins
    if expr is not None:  # the training fold's genes (after its gene filter) and scaler
        ext.gene_groups, ext.gene_scaler = train.gene_groups, train.gene_scaler
        ext.gene_filter_report = getattr(train, "gene_filter_report", None)
        sources.genomics = genomic_tensors(expr, train.gene_groups, train.gene_scaler, cohort.case_ids)
    if "clinical" in ext.modalities:
        ext.clinical_encoder = train.clinical_encoder
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
