"""External validation data: every patient of another cohort as a test set, preprocessed with what was fitted on the
TRAINING patients of the internal cohort (its `FoldPreprocessing`: class orders, time bins, clinical encoder,
radiomics / PET scaling, gene scalers) — never refitted on the external patients.

Example:
    >>> ext = CohortDataModule(**external_cfg, modalities=("ct", "clinical"))          # doctest: +SKIP
    >>> setup_external(ext, trained_dm.fitted); loader = ext.test_dataloader()           # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from survlab.data.cohort.checks import DataFileError
from survlab.data.cohort.counts import count_problems, target_columns, target_counts
from survlab.data.cohort.split_set import FoldSplit
from survlab.data.dataset import ModalitySources
from survlab.data.external_absence import mark_absent
from survlab.data.fitted import FoldPreprocessing

log = logging.getLogger(__name__)


def _check_compatible(ext: Any, fitted: FoldPreprocessing, targets: bool = True) -> None:
    """Same endpoints, labels (unless `targets` is False: checked elsewhere, or predictions only) and modalities as
    the training cohort (`fitted`: its FoldPreprocessing); one-line ValueError naming the difference."""
    what = f"external data={ext.name} vs training data={fitted.cohort}"
    ext_eps, train_eps = [e.name for e in ext.endpoints], fitted.endpoints
    if targets and ext_eps != train_eps:
        raise ValueError(f"{what}: endpoints {ext_eps} != {train_eps}; declare the same data.endpoints")
    if targets and list(ext.label_specs) != list(fitted.label_specs):
        raise ValueError(
            f"{what}: labels {list(ext.label_specs)} != {list(fitted.label_specs)}; declare the same labels"
        )
    missing = [m for m in fitted.modalities if m not in ext.provides]
    if missing:
        raise ValueError(
            f"{what}: the model needs {missing}, which the external cohort does not provide; add "
            f"them to the external cohort's data config (its files in the training cohort's layout)"
        )
    if "clinical" in fitted.modalities and list(ext.clin_cols) != list(fitted.clinical_columns):
        raise ValueError(
            f"{what}: clinical columns {ext.clin_cols} != {fitted.clinical_columns}; use the same columns"
        )


def _restrict_targets(
    ext: Any, fitted: FoldPreprocessing, endpoints: Sequence[str], labels: Sequence[str]
) -> None:
    """Keep only the endpoints / patient labels the model is scored on (the training cohort may declare more); the
    external cohort must declare each of them (one-line ValueError naming what is missing and the fix)."""
    what = f"external data={ext.name} vs training data={fitted.cohort}"
    ext_eps = [e.name for e in ext.endpoints]
    absent = [e for e in endpoints if e not in ext_eps]
    if absent:
        raise ValueError(
            f"{what}: the model is scored on endpoint(s) {absent}, which the external cohort does not "
            f"declare (it has {ext_eps}); declare them under data.endpoints / data.time_col, or score it without "
            f"outcomes (predictions only)"
        )
    primary = fitted.primary_endpoint
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


def _align_genes(expr: Any, ext: Any, fitted: FoldPreprocessing, missing_genes: str) -> Any:
    """The external expression table with every gene the model was trained on: a missing gene is a one-line
    DataFileError (`missing_genes="error"`, the default) or, with `missing_genes="mean"`, an empty column (imputed to
    the training mean by the scaler: 0 after scaling)."""
    from survlab.data.modalities.genomics import _group_genes

    if fitted.gene_groups is None:
        raise ValueError("the run was trained without genomics; its expression table cannot be aligned")
    genes = _group_genes(fitted.gene_groups)
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
    fitted: FoldPreprocessing,
    outcomes: bool = True,
    missing_genes: str = "error",
    scored_on: tuple[Sequence[str], Sequence[str]] | None = None,
    cannot_take: Mapping[str, str] | None = None,
) -> None:
    """Set up the CohortDataModule `ext` as an external TEST cohort of a trained fold, whose preprocessing `fitted`
    is applied (the training data module's `dm.fitted`, or a run's preprocessing.json read back): all its patients
    (after the usual checks and drops) in `ext.datasets["test"]`; `ext.fitted` = `fitted` restricted to what is
    scored. `outcomes=False`: a cohort without outcomes or labels (predictions only). `scored_on`: the (endpoints,
    labels) the model is scored on, when not every one the training cohort declares. Patients lacking a modality
    the model reads follow the EXTERNAL cohort's `data.missing` (survlab.data.external_absence): error, drop
    (counted), keep (marked absent as in training; `cannot_take`: modality -> why the model cannot take it absent,
    a one-line AbsentModalityError before any prediction when some patient lacks one)."""
    if outcomes and scored_on is not None:
        _restrict_targets(ext, fitted, *scored_on)
    _check_compatible(ext, fitted, targets=outcomes and scored_on is None)
    ext.modalities = tuple(fitted.modalities)
    ext.prepare_data()
    full = ext.read_cohort_table(split_columns=False)  # an external cohort is not split
    ext.full_cohort = full
    sources = ModalitySources()
    cohort = ext._setup_wsi(full, sources)
    expr, cohort = ext._read_genomics(cohort)
    cohort = ext._setup_imaging(cohort)
    ext.cohort = cohort
    absent = mark_absent(ext, cohort, expr, sources, cannot_take)
    if outcomes:  # what it is scored on, and how many cells are missing (a target without any value: refused)
        ext.target_counts = target_counts(cohort, {"test": cohort.case_ids}, ext.label_specs)
        columns = target_columns(ext.label_specs, None, ext.endpoints)
        if problems := count_problems(ext.target_counts, cohort.path, f"external data={ext.name}", columns):
            raise ValueError(problems[0][1])
    else:
        ext.target_counts = {}
    source = f"the training patients of {fitted.cohort} fold {fitted.fold}"
    # after _restrict_targets: the endpoints / labels the model is scored on (none without outcomes)
    scored = [e.name for e in ext.endpoints] if outcomes else []
    ext.fitted = fitted.restricted(scored, list(ext.label_specs))
    if expr is not None:  # the training fold's genes (after its gene filter) and scaler
        expr = _align_genes(expr, ext, fitted, missing_genes)
    if "clinical" in ext.modalities and fitted.clinical_encoder is not None:
        unseen = _unseen_categories(fitted.clinical_encoder, cohort.table)
        if unseen:
            ext.drop_report["unseen_categories"] = unseen
            log.warning(
                "external data %s: clinical value(s) the training patients never had, encoded as all zeros: "
                "%s; recode them to the training categories if they mean the same",
                ext.name,
                unseen,
            )
    ext.fitted.apply(
        cohort,
        sources,
        label_specs=ext.label_specs,
        expr=expr,
        imaging=ext.imaging,
        source=source,
        what=f"external data={ext.name}",
        absent=absent,
    )
    ext.sources = sources
    ids = sorted(cohort.case_ids)
    ext.split = FoldSplit(fold=-1, train=[], val=[], test=ids, path=ext.clinical_csv, hash="external")
    ext.split_hash, ext.split_path = "external", ext.clinical_csv
    ext.datasets = {"test": ext._dataset("test")}
    ext.dims = ext._dims()
    ext._ready = True
    log.info("external data %s: %d test patients (preprocessing fitted on %s)", ext.name, len(ids), source)


__all__ = ["setup_external"]
