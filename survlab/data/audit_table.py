"""`survlab check`, the cohort table: reading it (case id spellings), events for the k folds, every fold's parts as
training will use them, and the label / endpoint cells missing per fold and part (survlab.data.cohort.counts).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from survlab.data.audit_findings import AuditBase
from survlab.data.cohort.checks import Finding
from survlab.data.cohort.counts import Counts, count_problems, missing_ids, target_columns, target_counts
from survlab.data.cohort.ids import _first_ids
from survlab.data.cohort.split_sizes import part_sizes, small_split_warning
from survlab.data.cohort.splits import draw_splits
from survlab.data.cohort.table import Cohort


class TableChecks(AuditBase):
    """The cohort table's checks of an audit: table, folds, targets."""

    def cohort(self) -> Cohort | None:
        dm = self.dm
        found: list[Finding] = []
        try:
            cohort = dm.read_cohort_table(findings=found)
        except (ValueError, FileNotFoundError, OSError) as exc:
            covariates = dm.covariates_csv
            if covariates is not None and str(covariates) in str(exc):
                self.fail(covariates, "covariate table (clinical.table)", exc)
            else:
                self.fail(dm.clinical_csv, "cohort table", exc)
            return None
        finally:
            self.result.findings.extend(found)
        self._case_spellings(cohort)
        return cohort

    def _case_spellings(self, cohort: Cohort) -> None:
        """Case ids that differ only in letter case ('tcga-01' and 'TCGA-01') are two patients to survlab."""
        by_lower: dict[str, list[str]] = {}
        for c in cohort.case_ids:
            by_lower.setdefault(c.lower(), []).append(c)
        twins = {k: v for k, v in by_lower.items() if len(v) > 1}
        if twins:
            first = next(iter(twins.values()))
            cases = tuple(c for v in twins.values() for c in v)
            self.add(
                Finding(
                    str(cohort.path),
                    "case ids differing only in letter case",
                    (
                        f"{cohort.path}: {len(twins)} case id(s) occur in several letter cases (e.g. "
                        f"{', '.join(map(repr, first))}), which survlab reads as different patients; spell each case id one "
                        f"way"
                    ),
                    cases,
                )
            )

    def outcomes(self, cohort: Cohort) -> None:
        """Events for the k folds: the split succeeds and every fold's train / val / test part has an event."""
        dm, cfg = self.dm, self.split_cfg
        if not dm.has_survival:
            return
        t = cohort.table
        t = t[(t["time"] > 0) & np.isfinite(t["time"])]  # patients with a bad time are a finding already
        try:
            frames = self._draw_folds(t)  # the folds training draws, with every split setting
        except ValueError as exc:
            self.fail(dm.clinical_csv, "too few patients for the folds", exc)
            return
        event = dict(zip(t["case_id"], t["event"], strict=True))
        small = {
            k: line
            for k, f in enumerate(frames)
            if (
                line := small_split_warning(
                    part_sizes(
                        {p: f.loc[f["split"] == p, "case_id"].tolist() for p in ("train", "val", "test")},
                        event,
                    ),
                    cfg["folds"],
                    self.selection,
                )
            )
        }
        if small:
            first = next(iter(small))
            self.add(
                Finding(
                    str(dm.clinical_csv),
                    "folds too small to select on",
                    f"{dm.clinical_csv}: {len(small)} of {cfg['folds']} fold(s) are small (fold {first}: {small[first]})",
                    tuple(f"fold {k}" for k in small),
                ),
                note=True,
            )
        empty = [
            f"fold {k} {part}"
            for k, f in enumerate(frames)
            for part in ("train", "val", "test")
            if not any(event[c] for c in f.loc[f["split"] == part, "case_id"])
        ]
        if empty:
            self.add(
                Finding(
                    str(dm.clinical_csv),
                    "too few events for the folds",
                    (
                        f"{dm.clinical_csv}: {int(t['event'].sum())} event(s) among {len(t)} patients leave "
                        f"{_first_ids(empty)} without an event (no C-index / time bins there); use fewer folds "
                        f"(data.splits.folds, now {cfg['folds']}) or a larger val_fraction"
                    ),
                    tuple(empty),
                )
            )

    # ------------------------------------------------------------------ missing label / endpoint cells per part
    def fold_parts(self, cohort: Cohort) -> list[dict[str, list[str]]] | None:
        """Every fold's parts (part -> case ids) as training will use them, without writing anything: the persisted
        split when its dir exists, else the split `ensure_splits` would write, drawn in memory; None for a
        `splits.import` not yet written (its parts are counted when training) or a split that cannot be drawn
        (reported by the folds check)."""
        dm, cfg = self.dm, self.split_cfg
        parts = ("train", "val", "test") + (("calibration",) if cfg["calibration_fraction"] else ())
        t = cohort.table
        if (dm.split_dir / "meta.json").is_file():
            split_set = dm._split_set(cohort)
            folds = [split_set.fold(k, cohort.case_ids, dm.events_of(cohort)) for k in range(split_set.folds)]
            return [{p: f.part(p) for p in parts} for f in folds]
        if cfg["import"]:
            return None
        try:
            frames = self._draw_folds(t)
        except ValueError:  # too few patients / events for the folds: the folds check names it
            return None
        return [{p: f.loc[f["split"] == p, "case_id"].tolist() for p in parts} for f in frames]

    def _draw_folds(self, t: pd.DataFrame) -> list[pd.DataFrame]:
        """The folds `ensure_splits` would write for the cohort table `t`, drawn in memory (the same `draw_splits`)."""
        return draw_splits(t, *self.dm.split_args())

    def targets(self, cohort: Cohort) -> None:
        """Missing label / slide label / endpoint cells, counted per fold and part as training counts them
        (survlab.data.cohort.counts): a note per target with missing cells (masked out of losses and metrics), a
        finding per part left with no value (training refuses it), all folds at once."""
        dm = self.dm
        folds = self.fold_parts(cohort)
        if folds is None:
            return
        counts = {
            k: target_counts(cohort, parts, dm.label_specs, dm.slide_label_specs)
            for k, parts in enumerate(folds)
        }
        self.result.summary["target_counts"] = {f"fold {k}": c for k, c in counts.items()}
        columns = target_columns(dm.label_specs, dm.slide_label_specs, cohort.endpoints)
        empty: dict[tuple[str, str, str, str], list[int]] = {}
        first: dict[tuple[str, str, str, str], str] = {}
        for k, c in counts.items():
            for check, message, kind, name, part in count_problems(c, cohort.path, f"fold {k}", columns):
                key = (check, kind, name, part)
                empty.setdefault(key, []).append(k)
                first.setdefault(key, message)
        for key, ks in empty.items():
            also = f" (the same in fold(s) {', '.join(map(str, ks[1:]))})" if len(ks) > 1 else ""
            self.add(Finding(str(cohort.path), key[0], first[key] + also, tuple(f"fold {k}" for k in ks)))
        self._missing_notes(cohort, counts, columns, {(kind, name) for _, kind, name, _ in empty})

    def _missing_notes(
        self,
        cohort: Cohort,
        counts: dict[int, Counts],
        columns: dict[tuple[str, str], str],
        refused: set[tuple[str, str]],
    ) -> None:
        """One note per target with missing cells (not already a finding): how many, which, and per fold and part."""
        if not counts:
            return
        for kind, targets in counts[0].items():
            for name in targets:
                if (kind, name) in refused:
                    continue
                column = columns.get((kind, name), name)
                ids = missing_ids(cohort, kind, name if kind == "endpoints" else column)
                if not ids:
                    continue
                unit = "slide" if kind == "slide_labels" else "patient"
                total = (
                    len(cohort.slides)
                    if kind == "slide_labels" and cohort.slides is not None
                    else len(cohort)
                )
                per_fold = "; ".join(
                    f"fold {k}: "
                    + ", ".join(f"{p} {n['n_missing']}/{n['n']}" for p, n in c[kind][name].items())
                    for k, c in counts.items()
                )
                word = {"labels": "label", "slide_labels": "slide label", "endpoints": "endpoint"}[kind]
                self.add(
                    Finding(
                        str(cohort.path),
                        f"{word} '{name}' missing cells",
                        (
                            f"{cohort.path}: {word} '{name}' (column '{column}') is empty for {len(ids)} of {total} "
                            f"{unit}(s) ({_first_ids(ids)}); masked out of losses and metrics (missing/total {per_fold})"
                        ),
                        tuple(ids),
                    ),
                    note=True,
                )
