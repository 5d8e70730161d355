"""The validated patient table (`Cohort`): `Cohort.from_csv` and the table's accessors.

Its per-row readers and consistency checks are in table_checks.py (a mixin), the endpoint spec in endpoint.py,
the discrete-time bins (`TimeBins`) in time_bins.py and the one-line error helpers (`_first_ids`, ...) in ids.py.

The clinical CSV is MCAT/SurvPath style, one row per SLIDE (patient fields repeated); `Cohort.from_csv` collapses it
to one row per patient and rejects inconsistent input with a one-line error naming the file, the case and the fix.

Example:
    >>> cohort = Cohort.from_csv("clinical.csv", label_cols=["label"])          # doctest: +SKIP
    >>> from survlab.data.cohort.time_bins import TimeBins
    >>> bins = TimeBins.fit(cohort.times_of(train_ids), cohort.events_of(train_ids), n_bins=4)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from survlab.data.cohort.checks import Finding, delimiter_problem, parse_problem, report
from survlab.data.cohort.endpoint import Endpoint
from survlab.data.cohort.ids import _first_ids, _header, _reject_repeated
from survlab.data.cohort.table_checks import CohortChecks

log = logging.getLogger(__name__)


@dataclass
class Cohort(CohortChecks):
    """One row per patient: `table` has columns case_id, time (months, >0), event (bool), slide_ids (list[str],
    sorted) plus the requested label / clinical / extra columns (one value per patient). Rows are sorted by case_id,
    so `index` of a patient (its row position) depends on the content of the CSV, never on its row order."""

    table: pd.DataFrame
    path: Path
    endpoint: Endpoint | None = field(default_factory=Endpoint)  # primary endpoint; None = no survival
    secondary: tuple[
        Endpoint, ...
    ] = ()  # further endpoints: columns time:<name>, event:<name> (NaN/False = absent)
    slides: pd.DataFrame | None = None  # one row per slide: slide_id, case_id, slide-level label columns

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """Every loaded endpoint, the primary first (empty when the cohort has no survival)."""
        return ((self.endpoint,) if self.endpoint else ()) + self.secondary

    def _with_table(self, table: pd.DataFrame) -> Cohort:
        return Cohort(table, self.path, self.endpoint, self.secondary, self.slides)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_csv(
        cls,
        path: str | Path,
        case_col: str = "case_id",
        slide_col: str | None = "slide_id",
        endpoint: Endpoint | None = None,
        keep_cols: Sequence[str] = (),
        survival: bool = True,
        secondary: Sequence[Endpoint] = (),
        slide_keep_cols: Sequence[str] = (),
        findings: list[Finding] | None = None,
    ) -> Cohort:
        """Read + validate the slide-level CSV. `keep_cols` (labels, clinical, site) must exist in the file.

        `survival=False`: a classification-only cohort (no time/censorship columns; `time` NaN, `event` False).
        `secondary`: further endpoints (a patient may lack them: empty cells -> time NaN, event False).
        `slide_keep_cols`: slide-level columns (slide labels), kept per slide in `Cohort.slides`.
        `findings`: collect the row checks' problems there and go on (rows with an empty case id are skipped)
        instead of raising the first; a file that cannot be read as a table (missing, unparsable, missing columns)
        still raises."""
        path = Path(path)
        endpoint = (endpoint or Endpoint()) if survival else None
        if not path.is_file():
            raise FileNotFoundError(
                f"clinical CSV not found: {path}; expected an MCAT/SurvPath table with columns "
                f"case_id, slide_id, survival_months, censorship (see README 'Real data layout')"
            )
        try:
            raw = pd.read_csv(path, dtype={case_col: str, **({slide_col: str} if slide_col else {})})
        except Exception as err:  # noqa: BLE001 - re-raised with the file name
            raise ValueError(parse_problem(path, err)) from err
        endpoints = ([endpoint] if endpoint else []) + [
            e for e in secondary if endpoint is None or e != endpoint
        ]
        outcome_cols = [c for e in endpoints for c in e.outcome_cols]
        required = [case_col, *outcome_cols, *keep_cols, *slide_keep_cols]
        _reject_repeated(
            _header(path),
            path,
            "column",
            "keep one column of each name",
            only=[*required, *([slide_col] if slide_col else [])],
        )
        missing = [c for c in dict.fromkeys(required) if c not in raw.columns]
        if missing and delimiter_problem(path, _header(path)):
            raise ValueError(delimiter_problem(path, _header(path)))
        if missing:
            raise ValueError(
                f"{path}: missing required column(s) {missing} (endpoint(s)={[e.name for e in endpoints]}); the file has "
                f"{list(raw.columns)}; rename the columns or set the column names in the data config"
            )
        if raw.empty:
            raise ValueError(
                f"{path}: no patient rows (only a header); fill in the table or point to another file"
            )
        has_slides = slide_col is not None and slide_col in raw.columns
        if slide_keep_cols and not has_slides:
            raise ValueError(
                f"{path}: slide labels {list(slide_keep_cols)} need a '{slide_col}' column; add it"
            )
        table = cls._collapse(
            raw, path, case_col, slide_col if has_slides else None, endpoints, keep_cols, findings
        )
        slides = (
            cls._slide_rows(
                raw.dropna(subset=[case_col]), path, case_col, slide_col, slide_keep_cols, findings
            )
            if slide_keep_cols
            else None
        )
        return cls(table, path, endpoint, tuple(endpoints[1:]) if endpoint else tuple(endpoints), slides)

    @staticmethod
    def _collapse(
        raw: pd.DataFrame,
        path: Path,
        case_col: str,
        slide_col: str | None,
        endpoints: Sequence[Endpoint],
        keep_cols: Sequence[str],
        findings: list[Finding] | None = None,
    ) -> pd.DataFrame:
        """Slide rows -> patient rows, validating outcomes (the first endpoint is the primary: required) and slide
        ownership. No endpoints: a cohort without survival (time NaN, event False)."""
        raw = raw.copy()
        raw_ids = raw[case_col]
        if raw_ids.isna().any():
            rows = (np.flatnonzero(raw[case_col].isna().to_numpy()) + 2).tolist()
            report(
                findings,
                Finding(
                    str(path),
                    f"empty {case_col}",
                    (f"{path}: empty {case_col} at CSV line(s) {_first_ids(rows)}; fill in the case ids"),
                    tuple(f"line {r}" for r in rows),
                ),
            )
            raw = raw[raw_ids.notna()].copy()  # collecting: check the other rows
            raw_ids = raw[case_col]
        raw[case_col] = raw_ids.astype(str).str.strip()
        outcome_cols = []
        for k, ep in enumerate(endpoints):
            raw[f"time:{ep.name}"], raw[f"event:{ep.name}"] = Cohort._outcome(
                raw, path, case_col, raw_ids, ep, k == 0, findings
            )
            outcome_cols += [f"time:{ep.name}", f"event:{ep.name}"]
        Cohort._check_against_os(raw, path, case_col, endpoints, findings)
        if endpoints:
            raw["__time"], raw["__event"] = (
                raw[f"time:{endpoints[0].name}"],
                raw[f"event:{endpoints[0].name}"],
            )
        else:
            raw["__time"], raw["__event"] = np.nan, False
        kept = [c for c in dict.fromkeys(keep_cols) if c != case_col]
        for col in kept:  # 'LUAD' and 'LUAD ' are one class; a blank cell is missing
            if not pd.api.types.is_numeric_dtype(raw[col]):
                raw[col] = raw[col].map(lambda v: (v.strip() or np.nan) if isinstance(v, str) else v)
        Cohort._check_patient_fields(raw, path, case_col, kept, findings)
        if slide_col is not None:
            slides = raw.dropna(subset=[slide_col])
            slides = slides.assign(**{slide_col: slides[slide_col].astype(str).str.strip()})
            slides = slides[slides[slide_col] != ""]
            owners = slides.groupby(slide_col)[case_col].nunique()
            shared = owners.index[owners > 1]
            if len(shared):
                who = slides.loc[slides[slide_col] == shared[0], case_col].unique()
                report(
                    findings,
                    Finding(
                        str(path),
                        "slide listed under two patients",
                        (
                            f"{path}: slide_id(s) {_first_ids(shared)} listed under two patients (e.g. "
                            f"{shared[0]} -> {_first_ids(who)}); each slide must belong to exactly one case_id"
                        ),
                        tuple(map(str, shared)),
                    ),
                )
            slide_lists = slides.groupby(case_col)[slide_col].agg(lambda s: sorted(set(s)))
        first = raw.groupby(case_col).first().sort_index()  # canonical patient order: by case_id
        table = pd.DataFrame(
            {
                "case_id": first.index.astype(str),
                "time": first["__time"].to_numpy(float),
                "event": first["__event"].to_numpy(bool),
            }
        )
        table["slide_ids"] = [
            list(slide_lists.get(c, [])) if slide_col is not None else [] for c in table["case_id"]
        ]
        for col in outcome_cols:
            table[col] = first[col].to_numpy(float if col.startswith("time:") else bool)
        for col in dict.fromkeys(keep_cols):
            if col not in ("case_id", "time", "event", "slide_ids"):
                table[col] = first[col].to_numpy()
        if endpoints and not table["event"].any():
            flag_col = endpoints[0].censorship_col or endpoints[0].event_col
            report(
                findings,
                Finding(
                    str(path),
                    "no events",
                    (
                        f"{path}: no events at all in '{flag_col}' ({len(table)} patients all censored); check the coding "
                        f"(censorship: 1 = censored, 0 = event; use event_col for 1 = event) or choose another endpoint"
                    ),
                ),
            )
        return table.reset_index(drop=True)

    # ------------------------------------------------------------------ access
    @property
    def case_ids(self) -> list[str]:
        return self.table["case_id"].tolist()

    def __len__(self) -> int:
        return len(self.table)

    def rows(self, case_ids: Sequence[str]) -> pd.DataFrame:
        """Patient rows for `case_ids`, in that order (KeyError-free: unknown ids raise ValueError)."""
        t = self.table.set_index("case_id", drop=False)
        unknown = [c for c in case_ids if c not in t.index]
        if unknown:
            raise ValueError(f"{self.path}: unknown case_id(s) {_first_ids(unknown)}")
        return t.loc[list(case_ids)]

    def index_of(self) -> dict[str, int]:
        """case_id -> row index in the cohort table."""
        return {c: i for i, c in enumerate(self.table["case_id"])}

    def drop(self, case_ids: Sequence[str]) -> Cohort:
        """A new Cohort without `case_ids` (row order kept; indices re-numbered)."""
        gone = set(case_ids)
        return self._with_table(self.table[~self.table["case_id"].isin(gone)].reset_index(drop=True))

    def with_slides(self, slide_ids: dict[str, list[str]]) -> Cohort:
        """A new Cohort whose slide lists are replaced by `slide_ids[case_id]` (e.g. after dropping slides)."""
        table = self.table.copy()
        table["slide_ids"] = [list(slide_ids.get(c, [])) for c in table["case_id"]]
        return self._with_table(table)

    @property
    def slide_to_case(self) -> dict[str, str]:
        return {
            s: c for c, ss in zip(self.table["case_id"], self.table["slide_ids"], strict=False) for s in ss
        }
