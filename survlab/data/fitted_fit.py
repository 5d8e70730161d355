"""Fitting a fold's preprocessing on its TRAINING patients only (`FoldPreprocessing.fit`, a mixin): time bins and
training outcomes per endpoint, label classes and counts, the gene filter + scaler, the clinical encoder and the
CT/PET table scalers; nothing of a validation / test patient is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import pandas as pd

from survlab.data.cohort.clinical import ClinicalEncoder
from survlab.data.cohort.table import Cohort
from survlab.data.cohort.targets import check_classes, encode_labels, label_problems
from survlab.data.cohort.time_bins import TimeBins
from survlab.data.fitted_plan import (
    FoldFields,
    ImagingScalers,
    PreprocessingPlan,
    _slide_codes,
    _slides,
    _train_counts,
)
from survlab.data.modalities.genomics import GeneGroups, fit_genomics


class FoldFit(FoldFields):
    """`FoldPreprocessing.fit` and its gene step (module doc)."""

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
    ) -> Self:  # FoldPreprocessing (fitted.py imports this module)
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
