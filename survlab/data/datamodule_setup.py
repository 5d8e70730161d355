"""The steps of `CohortDataModule.setup()` before fitting: per-target counts of every part, reading each modality
(WSI bags, expression, CT / PET; survlab.data.modalities.readers) and dropping the patients a reader left out from
the fold's split; a mixin of `CohortDataModule`.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from survlab.data.cohort.counts import count_problems, target_columns, target_counts
from survlab.data.cohort.ids import _first_ids
from survlab.data.cohort.split_set import FoldSplit
from survlab.data.cohort.table import Cohort
from survlab.data.dataset import ModalitySources
from survlab.data.modalities.readers import read_genomics, read_imaging, read_wsi
from survlab.data.modalities.wsi_availability import DropReport

log = logging.getLogger("survlab.data.datamodule")  # the records keep the name they had


class SetupSteps:
    """Reading the modalities and counting targets for `setup()` (module doc)."""

    # set by CohortDataModule (its __init__, setup() and bases CohortSpec / PartLoaders / Absence)
    absent: Any
    allow_missing: Any
    case_col: Any
    clinical_csv: Any
    drop_report: Any
    endpoints: Any
    fold: Any
    gen_cfg: Any
    imaging: Any
    imaging_cfg: Any
    label_specs: Any
    matched_gene_groups: Any
    missing: Any
    modalities: Any
    name: Any
    public: Any
    root: Any
    slide_label_specs: Any
    slide_patches: Any
    stacks_provenance: Any
    store_patches: Any
    synthetic: Any
    target_counts: Any
    wsi_cfg: Any
    wsi_report: Any

    def _count_targets(self, cohort: Cohort, split: FoldSplit, parts: tuple[str, ...]) -> None:
        """`target_counts` (per label / slide label / endpoint and part: patients or slides, and how many lack a
        value; survlab.data.cohort.counts); a part left with no value of a target is a one-line ValueError (the
        first such part; `survlab check` lists them all)."""
        self.target_counts = target_counts(
            cohort, {p: split.part(p) for p in parts}, self.label_specs, self.slide_label_specs
        )
        columns = target_columns(self.label_specs, self.slide_label_specs, self.endpoints)
        problems = count_problems(self.target_counts, cohort.path, f"fold {self.fold}", columns)
        if problems:
            more = (
                f" (+{len(problems) - 1} more such part(s); `survlab check` lists them)"
                if len(problems) > 1
                else ""
            )
            raise ValueError(problems[0][1] + more)

    def _setup_wsi(self, cohort: Cohort, sources: ModalitySources) -> Cohort:
        """Every slide's bags checked (and cached per wsi.cache) by survlab.data.modalities.readers.read_wsi."""
        cohort, read = read_wsi(
            cohort,
            self.wsi_cfg,
            self.modalities,
            name=self.name,
            root=self.root,
            clinical_csv=self.clinical_csv,
            allow_missing=self.allow_missing,
            generated=bool(self.synthetic or self.public),
            keep=self.missing == "keep",
        )
        if read is not None:
            if read.report.kept_without:
                self.absent["wsi"] = list(read.report.kept_without)
            self.drop_report["wsi"] = read.report.to_dict()
            self.wsi_report: DropReport = read.report
            self.slide_patches: dict[str, int] = read.sizes.slide_patches  # first store's (length bucketing)
            self.store_patches: dict[str, dict[str, int]] = (
                read.sizes.store_patches
            )  # the bench's bandwidth floor
            sources.wsi, sources.scales = read.wsi, read.scales
        return cohort

    def _read_genomics(self, cohort: Cohort) -> tuple[pd.DataFrame | None, Cohort]:
        """Read + check the expression table; drops (allow_missing) or errors on uncovered patients."""
        if "genomics" not in self.modalities:
            return None, cohort
        cohort, read = read_genomics(
            cohort,
            self.gen_cfg,
            root=self.root,
            case_col=self.case_col,
            allow_missing=self.allow_missing,
            keep=self.missing == "keep",
        )
        self.matched_gene_groups = read.groups  # before the fold's gene filter (FoldPreprocessing.fit)
        if read.kept and read.missing:  # data.missing=keep: kept, marked absent
            self.absent["genomics"] = list(read.missing)
            self.drop_report["genomics"] = {
                "n_patients_dropped": 0,
                "patients": [],
                "n_patients_kept_without": len(read.missing),
                "patients_kept_without": list(read.missing),
            }
        else:
            self.drop_report["genomics"] = {"n_patients_dropped": len(read.missing), "patients": read.missing}
        return read.expr, cohort

    def _setup_imaging(self, cohort: Cohort) -> Cohort:
        """CT stacks + tables (`imaging:`), by survlab.data.modalities.readers.read_imaging."""
        if "ct" not in self.modalities or self.imaging_cfg is None:
            return cohort
        cohort, read = read_imaging(
            cohort,
            self.imaging_cfg,
            name=self.name,
            root=self.root,
            case_col=self.case_col,
            fold=self.fold,
            split_hash=getattr(self, "split_hash", None),
            keep=self.missing == "keep",
        )
        self.imaging, self.stacks_provenance = read.store, read.provenance
        self.drop_report["ct"] = {"n_patients_dropped": len(read.missing), "patients": read.missing}
        if read.absent_pet:  # data.missing=keep: kept without a PET row, marked absent
            self.absent["pet"] = list(read.absent_pet)
            self.drop_report["ct"].update(
                n_patients_kept_without_pet=len(read.absent_pet),
                patients_kept_without_pet=list(read.absent_pet),
            )
        return cohort

    # ------------------------------------------------------------------ missing modalities (data.missing)
    def _drop_from_split(
        self, split: FoldSplit, dropped: list[str], event_of: dict[str, bool] | None
    ) -> FoldSplit:
        if not dropped:
            return split
        log.warning(
            "data %s: %d patient(s) dropped for missing modalities: %s",
            self.name,
            len(dropped),
            _first_ids(dropped),
        )
        split = split.without(dropped)
        for part in ("train", "val", "test") if event_of is not None else ():
            ids = split.part(part)
            if not any(event_of[c] for c in ids):
                raise ValueError(
                    f"data={self.name}: after dropping {len(dropped)} patient(s) without required modalities, "
                    f"fold {self.fold} {part} part ({len(ids)} patients) has NO events; fix the missing files or "
                    f"use fewer folds / another splits.seed"
                )
        return split
