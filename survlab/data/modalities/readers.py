"""Reading a cohort's modalities before a fold is fitted: every patient's WSI bags, expression profile and CT / PET
data checked once; patients without one are dropped (`allow_missing`, counted) or named in a one-line error.

Each reader takes the cohort table and returns it with the patients it keeps, and what it read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from survlab.data.cohort.ids import _first_ids
from survlab.data.cohort.table import Cohort
from survlab.data.modalities.genomics import (
    GeneGroups,
    check_coverage,
    expression_scale_problem,
    match_groups,
    read_expression,
    read_signatures,
    signature_coverage,
)
from survlab.data.modalities.imaging import ImagingStore
from survlab.data.modalities.imaging_volumes import check_stack_provenance
from survlab.data.modalities.stores import BagSizes, build_stores, prepare_bags
from survlab.data.modalities.wsi import BagStore
from survlab.data.modalities.wsi_availability import DropReport, check_availability
from survlab.data.options import under

log = logging.getLogger(__name__)


@dataclass
class WsiRead:
    """The stores of a cohort's bags (`wsi` single-scale, `scales` per scale), the patients dropped without them
    (`report`) and the patches per slide (`sizes`)."""

    wsi: BagStore | None
    scales: dict[str, BagStore] | None
    report: DropReport
    sizes: BagSizes


def read_wsi(
    cohort: Cohort,
    wsi_cfg: dict[str, Any] | None,
    modalities: Iterable[str],
    *,
    name: str,
    root: Path,
    clinical_csv: Path,
    allow_missing: bool,
    generated: bool,
    keep: bool = False,
) -> tuple[Cohort, WsiRead | None]:
    """Check every slide's bag of every store (the same builder as `survlab check`) -> (patients kept, what was read)
    or (cohort, None) when the model reads no bags. `keep` (data.missing=keep): patients without any slide are kept
    with an empty slide list (`report.kept_without`); multi-scale cohorts and device-resident bags refuse that."""
    wsi, scales = build_stores(wsi_cfg, root, name, modalities)
    stores = [s for s in [wsi, *(scales or {}).values()] if s is not None]
    if not stores or wsi_cfg is None:
        return cohort, None
    if not any(cohort.table["slide_ids"].map(len)):
        raise ValueError(
            f"data={name}: the network needs WSI bags but {clinical_csv} lists no slide_id "
            f"(table-only cohort); choose a genomics/clinical model or a cohort with slides"
        )
    cohort, report = check_availability(
        cohort, stores, allow_missing, partial_ok=scales is not None, keep=keep
    )
    if report.kept_without and (scales is not None or wsi_cfg["cache"] == "device"):
        what = "multi-scale bags" if scales is not None else "wsi.cache=device"
        raise ValueError(
            f"data={name}: data.missing=keep with {what} cannot keep the {len(report.kept_without)} patient(s) "
            f"without slides ({_first_ids(report.kept_without)}); use data.missing=drop"
            + ("" if scales is not None else " or another wsi.cache")
        )
    with_slides = [ss for ss in cohort.table["slide_ids"].tolist() if len(ss)]  # keep: not those without
    sizes = prepare_bags(stores, with_slides, wsi_cfg, root, name, generated)
    return cohort, WsiRead(wsi, scales, report, sizes)


@dataclass
class GenomicsRead:
    """The expression table [patients x genes] (case_id index), its gene groups and the patients without a profile
    (`missing`: dropped, or with data.missing=keep kept and marked absent: `kept` True)."""

    expr: pd.DataFrame
    groups: GeneGroups
    missing: list[str] = field(default_factory=list)
    kept: bool = False


def read_genomics(
    cohort: Cohort,
    gen_cfg: dict[str, Any],
    *,
    root: Path,
    case_col: str,
    allow_missing: bool,
    keep: bool = False,
) -> tuple[Cohort, GenomicsRead]:
    """Read + check the expression table and signatures; drops (allow_missing), keeps (`keep`: data.missing=keep)
    or errors on uncovered patients."""
    path = under(root, gen_cfg["expression"])
    expr = read_expression(path, case_col)
    sig = gen_cfg["signatures"]
    sig_path = under(root, sig) if sig else None
    groups = match_groups(
        expr.columns, read_signatures(sig_path) if sig_path else None, str(sig_path or path)
    )
    log.info("genomics: %s", signature_coverage(groups, sig_path, path))
    if scale := expression_scale_problem(expr, bool(gen_cfg["log1p"]), path):
        log.warning("genomics: %s", scale)
    missing = check_coverage(expr, cohort.case_ids, path, allow_missing, keep=keep)
    if keep:
        return cohort, GenomicsRead(expr, groups, list(missing), kept=True)
    return cohort.drop(missing), GenomicsRead(expr, groups, list(missing))


@dataclass
class ImagingRead:
    """The CT / PET store (stacks decoded and cached), the patients dropped without imaging data, where the
    stacks came from when a segmentor cut them (None otherwise), and the patients kept without a PET row
    (data.missing=keep)."""

    store: ImagingStore
    missing: list[str]
    provenance: dict[str, Any] | None
    absent_pet: list[str] = field(default_factory=list)


def read_imaging(
    cohort: Cohort,
    imaging_cfg: dict[str, Any],
    *,
    name: str,
    root: Path,
    case_col: str,
    fold: int,
    split_hash: str | None,
    keep: bool = False,
) -> tuple[Cohort, ImagingRead]:
    """CT stacks + tables (`imaging:`): drop (imaging.missing=drop, counted) or reject patients without them, then
    decode / cut every remaining patient's stacks once (cached) before training. `split_hash` None: an external
    cohort (not split; its patients are in no training part). `keep` (data.missing=keep): a patient with images
    but no PET row is kept (`absent_pet`: a zero PET vector, marked absent); images stay governed by imaging.missing."""
    from survlab.data.cohort.checks import DataFileError

    store = ImagingStore(root, {**imaging_cfg}, case_col)
    provenance = check_stack_provenance(root, name, fold, split_hash)
    missing = store.missing(cohort.case_ids, keep_pet=keep)
    if missing and imaging_cfg["missing"] == "error":
        first = next(iter(missing))
        raise DataFileError(
            f"data={name}: {len(missing)} patient(s) lack imaging data ({_first_ids(list(missing))}; "
            f"e.g. {first} lacks {missing[first]}); add the files or set data.imaging.missing=drop"
        )
    cohort = cohort.drop(list(missing))
    if keep:
        store.absent_pet = set(store.pet_lacking(cohort.case_ids))
    store.prepare(cohort.case_ids)
    return cohort, ImagingRead(store, sorted(missing), provenance, sorted(store.absent_pet))
