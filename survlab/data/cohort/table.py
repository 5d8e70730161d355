"""The validated patient table (`Cohort`) and discrete-time bins (`TimeBins`).

The clinical CSV is MCAT/SurvPath style, one row per SLIDE (patient fields repeated); `Cohort.from_csv` collapses it
to one row per patient and rejects inconsistent input with a one-line error naming the file, the case and the fix.

Example:
    >>> cohort = Cohort.from_csv("clinical.csv", label_cols=["label"])          # doctest: +SKIP
    >>> bins = TimeBins.fit(cohort.times_of(train_ids), cohort.events_of(train_ids), n_bins=4)  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survlab.data.cohort.checks import Finding, delimiter_problem, describe_number, parse_problem, report
from survlab.utils.files import read_json

log = logging.getLogger(__name__)


def _first_ids(ids: Sequence[Any], k: int = 5) -> str:
    """'a, b, c (+n more)' for error messages."""
    ids = [str(i) for i in ids]
    more = f" (+{len(ids) - k} more)" if len(ids) > k else ""
    return ", ".join(ids[:k]) + more


def _spellings(raw: pd.Series, stripped: pd.Series, case_id: str) -> str:
    """ " (spelled 'T1', 'T1 ')" when `case_id` occurs in several raw spellings (whitespace variants), else ""."""
    spelled = sorted(set(raw[stripped == case_id].astype(str)))
    return f" (spelled {', '.join(repr(x) for x in spelled)})" if len(spelled) > 1 else ""


def _header(path: Path) -> list[str]:
    """The raw column names of a CSV (pandas renames a repeated name 'G' to 'G.1', so read them ourselves)."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        return next(csv.reader(f), [])


def _reject_repeated(
    names: Sequence[str], path: Path, what: str, fix: str, only: Sequence[str] | None = None
) -> None:
    """ValueError naming the `what` (column, gene group) that occurs twice in `names` after stripping
    (restricted to the names in `only` when given)."""
    counts = Counter(str(n).strip() for n in names)
    repeated = [n for n, k in counts.items() if k > 1 and n and (only is None or n in only)]
    if repeated:
        raise ValueError(
            f"{path}: {what}(s) {_first_ids(repeated)} appear more than once in the header; {fix}"
        )


@dataclass(frozen=True)
class Endpoint:
    """Which columns hold the outcome. Exactly one of `censorship_col` (1 = censored) / `event_col` (1 = event)."""

    name: str = "os"
    time_col: str = "survival_months"
    censorship_col: str | None = "censorship"
    event_col: str | None = None

    @classmethod
    def resolve(
        cls,
        endpoint: str = "os",
        time_col: str = "survival_months",
        censorship_col: str | None = "censorship",
        event_col: str | None = None,
        endpoints: dict[str, dict[str, str]] | None = None,
    ) -> Endpoint:
        """`os` uses the given columns; other names use `endpoints[name]` or `<name>_months` / `<name>_censorship`."""
        if endpoints and endpoint in endpoints:
            spec = dict(endpoints[endpoint])
            return cls(
                name=endpoint,
                time_col=spec["time"],
                censorship_col=spec.get("censorship"),
                event_col=spec.get("event"),
            )
        if endpoint.lower() == "os":
            if event_col is not None:
                censorship_col = None
            return cls(endpoint, time_col, censorship_col, event_col)
        return cls(endpoint, f"{endpoint.lower()}_months", f"{endpoint.lower()}_censorship", None)

    @property
    def outcome_cols(self) -> list[str]:
        return [self.time_col, self.censorship_col or self.event_col]  # type: ignore[list-item]


@dataclass
class Cohort:
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
    def _slide_rows(
        raw: pd.DataFrame,
        path: Path,
        case_col: str,
        slide_col: str,
        cols: Sequence[str],
        findings: list[Finding] | None = None,
    ) -> pd.DataFrame:
        """One row per slide_id (sorted): slide_id, case_id and the slide-level `cols` (one value per slide)."""
        raw = raw.dropna(subset=[slide_col]).assign(
            **{
                slide_col: lambda r: r[slide_col].astype(str).str.strip(),
                case_col: lambda r: r[case_col].astype(str).str.strip(),
            }
        )
        raw = raw[raw[slide_col] != ""]
        for col in cols:
            if not pd.api.types.is_numeric_dtype(raw[col]):
                raw[col] = raw[col].map(lambda v: (v.strip() or np.nan) if isinstance(v, str) else v)
        n_values = raw.groupby(slide_col)[list(cols)].nunique()
        for col in cols:
            bad = n_values.index[n_values[col] > 1]
            if len(bad):
                report(
                    findings,
                    Finding(
                        str(path),
                        f"slide column '{col}' differs within a slide",
                        (
                            f"{path}: slide-level column '{col}' differs across the rows of slide(s) {_first_ids(bad)}; "
                            f"give each slide one value"
                        ),
                        tuple(map(str, bad)),
                    ),
                )
        first = raw.groupby(slide_col).first().sort_index()
        out = pd.DataFrame({"slide_id": first.index.astype(str), "case_id": first[case_col].to_numpy()})
        for col in cols:
            out[col] = first[col].to_numpy()
        return out.reset_index(drop=True)

    @staticmethod
    def _outcome(
        raw: pd.DataFrame,
        path: Path,
        case_col: str,
        raw_ids: pd.Series,
        ep: Endpoint,
        required: bool,
        findings: list[Finding] | None = None,
    ) -> tuple[pd.Series, pd.Series]:
        """(time [rows] float, event [rows] bool) of endpoint `ep`, validated; a row of a non-`required` endpoint
        may have both cells empty (time NaN, event False)."""
        flag_col = ep.censorship_col or ep.event_col
        absent = (
            pd.Series(False, index=raw.index) if required else raw[ep.time_col].isna() & raw[flag_col].isna()  # type: ignore[index]
        )
        time = pd.to_numeric(raw[ep.time_col], errors="coerce")
        bad = ~((time > 0) & np.isfinite(time)) & ~absent  # empty, text, decimal comma, zero, negative, inf
        if bad.any():
            found = dict(
                sorted(
                    zip(raw.loc[bad, case_col], raw.loc[bad, ep.time_col].map(describe_number), strict=True)
                )
            )
            shown = ", ".join(f"{c}: {d}" for c, d in list(found.items())[:5])
            more = f" (+{len(found) - 5} more)" if len(found) > 5 else ""
            report(
                findings,
                Finding(
                    str(path),
                    f"survival time '{ep.time_col}' not a positive number",
                    (
                        f"{path}: survival time '{ep.time_col}' must be a positive number of months; case(s) {shown}{more}; "
                        f"fix the values or remove these patients"
                    ),
                    tuple(found),
                ),
            )
        flag = pd.to_numeric(raw[flag_col], errors="coerce")
        bad = raw.loc[~flag.isin([0, 1]) & ~absent, case_col]
        if len(bad):
            report(
                findings,
                Finding(
                    str(path),
                    f"'{flag_col}' not 0 or 1",
                    (
                        f"{path}: '{flag_col}' must be 0 or 1 (censorship: 1 = censored; event: 1 = event) but case(s) "
                        f"{_first_ids(bad.unique())} have {_first_ids(raw.loc[bad.index, flag_col].unique(), 3)}; recode it"
                    ),
                    tuple(map(str, bad.unique())),
                ),
            )
        event = (flag == 1) if ep.event_col and not ep.censorship_col else (flag == 0)
        time, event = time.astype(float).where(~absent), event.astype(bool) & ~absent
        per_case = pd.DataFrame({"c": raw[case_col], "t": time.fillna(-1.0), "e": event}).groupby(
            "c", sort=False
        )
        conflict = per_case.nunique().index[(per_case.nunique().t > 1) | (per_case.nunique().e > 1)]
        if len(conflict):
            report(
                findings,
                Finding(
                    str(path),
                    f"conflicting outcomes ({ep.name})",
                    (
                        f"{path}: conflicting outcomes ({ep.time_col}/{flag_col} differ across slide rows of the same "
                        f"patient) for case(s) {_first_ids(conflict)}{_spellings(raw_ids, raw[case_col], conflict[0])}; "
                        f"make the patient fields identical on every slide row"
                    ),
                    tuple(map(str, conflict)),
                ),
            )
        return time, event

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

    @staticmethod
    def _check_against_os(
        raw: pd.DataFrame,
        path: Path,
        case_col: str,
        endpoints: Sequence[Endpoint],
        findings: list[Finding] | None = None,
    ) -> None:
        """Refuse an endpoint time (DFS, PFS, DSS, ...) longer than the same patient's OS time. Every endpoint is
        followed from the same origin and ends at the latest at death or last contact, which is the OS time, so a
        longer one is impossible: swapped columns, rows of other patients or another time unit / origin. Refused (not
        warned) because training on it would give numbers without an error."""
        os_ep = next((e for e in endpoints if e.name.lower() == "os"), None)
        if os_ep is None:
            return
        os_time = raw[f"time:{os_ep.name}"]
        for ep in endpoints:
            if ep is os_ep:
                continue
            longer = raw[f"time:{ep.name}"] > os_time + 1e-9  # NaN (a missing cell) compares False
            if longer.any():
                cases = sorted(set(raw.loc[longer, case_col].astype(str)))
                first = raw.loc[longer].iloc[0]
                report(
                    findings,
                    Finding(
                        str(path),
                        f"{ep.name} longer than {os_ep.name}",
                        (
                            f"{path}: {ep.name} time '{ep.time_col}' is longer than the {os_ep.name} time "
                            f"'{os_ep.time_col}' for {len(cases)} patient(s) ({_first_ids(cases)}; e.g. "
                            f"{first[case_col]}: {first[ep.time_col]} > {first[os_ep.time_col]}), impossible when both "
                            f"are followed from the same date; check for swapped columns, shifted rows or another time "
                            f"unit"
                        ),
                        tuple(cases),
                    ),
                )

    @staticmethod
    def _check_patient_fields(
        raw: pd.DataFrame,
        path: Path,
        case_col: str,
        cols: Sequence[str],
        findings: list[Finding] | None = None,
    ) -> None:
        """A kept patient column must have one value per patient (missing cells aside); otherwise the value would
        be whichever slide row comes first in the file."""
        if not cols:
            return
        n_values = raw.groupby(case_col)[list(cols)].nunique()
        for col in cols:
            bad = n_values.index[n_values[col] > 1]
            if len(bad):
                values = raw.loc[raw[case_col] == bad[0], col].dropna().astype(str).unique()
                report(
                    findings,
                    Finding(
                        str(path),
                        f"column '{col}' differs within a patient",
                        (
                            f"{path}: column '{col}' differs across the slide rows of case(s) {_first_ids(bad)} "
                            f"({_first_ids(sorted(values), 3)} for {bad[0]}); make the patient fields identical on every "
                            f"slide row"
                        ),
                        tuple(map(str, bad)),
                    ),
                )

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


@dataclass
class TimeBins:
    """Discrete-time bins for hazard models, fitted on TRAINING patients only.

    Convention (MCAT-like): inner edges are the quantiles of the training EVENT times (uncensored), the outer
    edges are 0 and +inf, so every time (also test times beyond the training range) falls in a bin.
    Bin k holds edges[k] <= t < edges[k+1]; `edges` has n_bins + 1 entries. Tied quantiles give empty bins
    (n_bins is kept fixed because the network output size depends on it).
    """

    edges: np.ndarray

    @classmethod
    def fit(cls, times: np.ndarray, events: np.ndarray, n_bins: int = 4) -> TimeBins:
        """times [N] (months), events [N] (bool) -> TimeBins with n_bins + 1 edges."""
        times, events = np.asarray(times, float), np.asarray(events, bool)
        if n_bins < 1:
            raise ValueError(f"n_bins must be >= 1, got {n_bins}")
        event_times = times[events]
        if event_times.size == 0:
            raise ValueError("TimeBins.fit: no events among the training patients; cannot place bin edges")
        inner = np.quantile(event_times, np.linspace(0, 1, n_bins + 1)[1:-1]) if n_bins > 1 else np.array([])
        return cls(np.concatenate([[0.0], inner, [np.inf]]))

    @property
    def n_bins(self) -> int:
        return len(self.edges) - 1

    def transform(self, times: np.ndarray) -> np.ndarray:
        """times [N] -> bin indices [N] (int64, in 0..n_bins-1)."""
        idx = np.searchsorted(self.edges[1:-1], np.asarray(times, float), side="right")
        return idx.astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: +inf is written as the string 'inf'."""
        return {
            "edges": [e if np.isfinite(e) else "inf" for e in self.edges.tolist()],
            "convention": "quantile",
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TimeBins:
        return cls(np.array([float(e) for e in d["edges"]], dtype=float))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> TimeBins:
        return cls.from_dict(read_json(path))
