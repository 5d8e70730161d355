"""`CohortSpec`: the cohort-table half of a data config — which CSV, which columns (ids, endpoints, labels,
covariates, subgroups) and which persisted split — read and checked without touching any modality.

CohortDataModule is a CohortSpec; `survlab check` (data.audit), external validation (data.external) and the
segmentation data module (`fold_split`) use the same reading.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from survlab.data.cohort.endpoint import Endpoint
from survlab.data.cohort.ids import _header
from survlab.data.cohort.split_set import FoldSplit, SplitSet
from survlab.data.cohort.splits import ensure_splits
from survlab.data.cohort.splits_import import from_config as import_from_config
from survlab.data.cohort.table import Cohort
from survlab.data.cohort.targets import parse_labels
from survlab.data.options import DataOptions, SplitOptions, option_dict, plain, under

ENDPOINT_KEYS = ("time", "censorship", "event")


def parse_endpoints(
    endpoint: str,
    time_col: str | None,
    censorship_col: str | None,
    event_col: str | None,
    endpoints: dict[str, dict[str, str]] | None,
) -> tuple[Endpoint | None, tuple[Endpoint, ...]]:
    """(primary, secondary endpoints) of the data config. `endpoints` absent and `time_col: null` -> (None, ()):
    a cohort without survival. Without `endpoints` the primary is built from time_col/censorship_col as before."""
    endpoints = dict(endpoints or {})
    for name, spec in endpoints.items():
        spec = dict(spec or {})
        if (
            "time" not in spec
            or ("censorship" in spec) == ("event" in spec)
            or set(spec) - set(ENDPOINT_KEYS)
        ):
            raise ValueError(
                f"endpoints.{name}={spec}: give time and exactly one of censorship (1 = censored) / event (1 = event)"
            )
    if time_col is None and not endpoints:
        return None, ()
    if time_col is None and endpoint not in endpoints:
        endpoint = next(iter(endpoints))  # no default columns: the first listed endpoint is the primary
    primary = Endpoint.resolve(endpoint, time_col or "survival_months", censorship_col, event_col, endpoints)
    secondary = tuple(Endpoint.resolve(n, endpoints=endpoints) for n in endpoints if n != primary.name)
    return primary, secondary


class CohortSpec:
    """The cohort table and split a data config describes (`o`: its DataOptions)."""

    fold: int  # set by the data module (the fold this instance serves)

    def _init_cohort(self, o: DataOptions) -> None:
        self.name, self.root = o.name, Path(os.path.expanduser(str(o.root)))
        self.clinical_csv = under(self.root, o.clinical_csv)
        self.case_col, self.slide_col = o.case_col, o.slide_col
        self.endpoint, self.secondary = parse_endpoints(
            o.endpoint, o.time_col, o.censorship_col, o.event_col, plain(o.endpoints)
        )
        self.has_survival = self.endpoint is not None
        clinical = plain(o.clinical) or {}
        self.clin_cols: list[str] = list(clinical.get("columns") or [])
        self.clin_categorical: list[str] = list(clinical.get("categorical") or [])
        self.clin_table: str | None = clinical.get("table")  # covariates in their own CSV (data.covariates)
        self.subgroups = [str(c) for c in (plain(o.subgroups) or [])]  # columns kept for per-group metrics
        self.label_specs = parse_labels(plain(o.labels), list(plain(o.label_cols) or []))
        self.slide_label_specs = parse_labels(plain(o.slide_labels), (), "slide_labels")
        self.label_cols = list(self.label_specs)  # label (head) names
        self.split_cfg = option_dict(SplitOptions, o.splits or {}, "splits")
        self.split_root = (
            o.split_root
        )  # where split dirs go (None: <root>/splits, for cohorts survlab wrote itself)
        self.stratify_label = self._stratify_label()

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """Every survival endpoint (the primary first); empty when the cohort has no survival."""
        return ((self.endpoint,) if self.endpoint else ()) + self.secondary

    @property
    def covariates_csv(self) -> Path | None:
        """`clinical.table` resolved under the cohort root (None when covariates live in `clinical_csv`)."""
        return under(self.root, self.clin_table) if self.clin_table else None

    def _stratify_label(self) -> str | None:
        """Label name the splits are stratified by: `splits.stratify_label`, else the first label of a cohort
        without survival, else None (event x time)."""
        name = self.split_cfg["stratify_label"]
        if name is not None and name not in self.label_specs:
            raise ValueError(
                f"data={self.name}: splits.stratify_label={name!r} is not a label; labels: {list(self.label_specs)}"
            )
        if name is None and not self.has_survival and self.label_specs:
            name = next(iter(self.label_specs))
        return name

    def missing_table_error(self) -> FileNotFoundError:
        """The one-line error of a clinical CSV that is not there, naming the columns it should have."""
        cols = [self.case_col, *([self.slide_col] if self.slide_col else [])]
        cols += [c for e in self.endpoints for c in e.outcome_cols]
        cols += [sp.column for sp in [*self.label_specs.values(), *self.slide_label_specs.values()]]
        kind = "MCAT/SurvPath" if self.has_survival else "CLAM dataset_csv-style"
        return FileNotFoundError(
            f"data={self.name}: expected {kind} clinical CSV at {self.clinical_csv} (columns "
            f"{', '.join(dict.fromkeys(cols))}); see README 'Real data layout'"
        )

    # ------------------------------------------------------------------ the table
    def read_cohort_table(self, findings: list | None = None, split_columns: bool = True) -> Cohort:
        """The cohort table (`clinical_csv`, checked by `Cohort.from_csv`) with the columns the config uses — labels,
        clinical covariates (joined by case_id from `clinical.table` when kept apart), subgroups and, with
        `split_columns`, the site column the split stratifies on. `findings`: collect problems instead of raising
        the first (`survlab check`)."""
        site = self.split_cfg["stratify_site"] if split_columns and self.split_cfg else None
        group = self.split_cfg.get("group") if split_columns and self.split_cfg else None
        if group and (self.split_cfg.get("stratify_site") or self.split_cfg.get("import")):
            raise ValueError(
                f"data={self.name}: splits.group={group} keeps every {group} in one fold; splits.stratify_site spreads "
                "a site over all folds and splits.import takes a peer's folds: unset those, or splits.group"
            )
        if group and self.clinical_csv.is_file() and group not in _header(self.clinical_csv):
            group = None  # not a column: splits.group_column derives it (TCGA barcodes) or names the problem
        keep = [
            *(sp.column for sp in self.label_specs.values()),
            *([] if self.clin_table else self.clin_cols),
            *([site] if site else []),
            *([group] if group else []),
            *self.subgroups,
        ]
        full = Cohort.from_csv(
            self.clinical_csv,
            self.case_col,
            self.slide_col,
            self.endpoint,
            list(dict.fromkeys(keep)),
            survival=self.has_survival,
            secondary=self.secondary,
            slide_keep_cols=[sp.column for sp in self.slide_label_specs.values()],
            findings=findings,
        )
        if self.clin_table:  # covariates kept apart from the outcomes: joined by case_id
            from survlab.data.cohort.covariates import join_covariates

            full = join_covariates(full, under(self.root, self.clin_table), self.clin_cols, self.case_col)
        return full

    def used_columns(self) -> set[str]:
        """Columns of `clinical_csv` this config reads: case / slide ids, every endpoint's time and censorship /
        event columns, labels, slide labels, clinical covariates (unless kept in `clinical.table`), subgroups and the
        site the split stratifies on."""
        endpoints = [e for e in (self.endpoint, *self.secondary) if e is not None]
        return {
            c
            for c in (
                self.case_col,
                self.slide_col,
                *(x for e in endpoints for x in (e.time_col, e.censorship_col, e.event_col)),
                *(sp.column for sp in self.label_specs.values()),
                *(sp.column for sp in self.slide_label_specs.values()),
                *([] if self.clin_table else self.clin_cols),
                *self.subgroups,
                (self.split_cfg or {}).get("stratify_site"),
                (self.split_cfg or {}).get("group"),  # site-preserved folds read their group column
            )
            if c
        }

    def unused_columns_line(self) -> str | None:
        """'<clinical.csv>: N column(s) not used by data=<name>: age, stage, ...; add covariates under
        data.clinical.columns, ...' or None when every column is read (or the file cannot be read)."""
        try:
            header = [str(c).strip() for c in pd.read_csv(self.clinical_csv, nrows=0).columns]
        except (OSError, ValueError):
            return None
        unused = [c for c in header if c not in self.used_columns()]
        if not unused:
            return None
        return (
            f"{self.clinical_csv}: {len(unused)} column(s) not used by data={self.name}: {', '.join(unused[:12])}"
            f"{' ...' if len(unused) > 12 else ''}; to use them add covariates under data.clinical.columns "
            f"(+ clinical.categorical), labels under data.labels, per-group metrics under data.subgroups"
        )

    # ------------------------------------------------------------------ the split
    def _split_base(self) -> Path:
        """Folder the split dirs go in: `splits.dir` itself, else `split_root`, else <root>/splits."""
        return Path(os.path.expanduser(str(self.split_root))) if self.split_root else self.root / "splits"

    @property
    def split_dir(self) -> Path:
        cfg = self.split_cfg
        if cfg["dir"]:
            return under(self.root, cfg["dir"])
        site = f"_site-{cfg['stratify_site']}" if cfg["stratify_site"] else ""
        if self.endpoint is not None:  # unchanged names for survival cohorts without the new options
            head = self.endpoint.name + (f"_strat-{self.stratify_label}" if self.stratify_label else "")
        else:
            head = f"label-{self.stratify_label}" if self.stratify_label else "nolabel"
        cal = f"_cal{cfg['calibration_fraction']:g}" if cfg["calibration_fraction"] else ""
        rep = f"_rep{int(cfg['repeat'])}" if cfg["repeat"] else ""  # repeat 0: the dir it always was
        grp = (
            f"_group-{cfg['group']}" if cfg.get("group") else ""
        )  # likewise: no group, the dir it always was
        return self._split_base() / f"{head}_k{cfg['folds']}_seed{cfg['seed']}{site}{grp}{cal}{rep}"

    def split_args(self) -> tuple[Any, ...]:
        """The split settings, in the order `ensure_splits` / `draw_splits` take them after the cohort table (and the
        split dir): folds, val_fraction, seed, stratify_site, the stratify label's column, calibration_fraction,
        survival, repeat, group."""
        cfg = self.split_cfg
        return (
            cfg["folds"],
            cfg["val_fraction"],
            cfg["seed"],
            cfg["stratify_site"],
            self.label_specs[self.stratify_label].column if self.stratify_label else None,
            cfg["calibration_fraction"],
            self.has_survival,
            int(cfg["repeat"]),
            cfg.get("group"),
        )

    def _split_set(self, full: Cohort) -> SplitSet:
        """The persisted split of the cohort (imported, or written once by `ensure_splits` and reused)."""
        return self._imported_splits(full) or ensure_splits(full.table, self.split_dir, *self.split_args())

    def _imported_splits(self, full: Cohort) -> SplitSet | None:
        """The SplitSet of `splits.import` (a peer's split files written as survlab splits), else None."""
        spec, cfg = self.split_cfg["import"], self.split_cfg
        if not spec:
            return None
        if cfg["stratify_site"] or cfg["calibration_fraction"] or cfg["repeat"]:
            raise ValueError(
                f"data={self.name}: splits.import takes the peer's assignment; unset splits.stratify_site, "
                "splits.calibration_fraction and splits.repeat"
            )
        base = under(self.root, cfg["dir"]) if cfg["dir"] else self._split_base()
        return import_from_config(
            dict(spec), full.table, base, self.root, cfg["val_fraction"], cfg["seed"], self.has_survival
        )

    def events_of(self, full: Cohort) -> dict[str, Any] | None:
        """case_id -> event of the primary endpoint (None for a cohort without survival)."""
        return (
            dict(zip(full.table["case_id"], full.table["event"], strict=False)) if self.has_survival else None
        )

    def fold_split(self) -> FoldSplit:
        """Fold `fold` of the persisted split over every patient of the cohort table (before any patient is dropped
        for a missing modality): what `setup` uses, without reading any modality (e.g. for a segmentor trained on
        the same folds, survlab.data.segmentation)."""
        full = self.read_cohort_table()
        return self._split_set(full).fold(self.fold, full.case_ids, self.events_of(full))
