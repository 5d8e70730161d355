"""The cohort CSV's per-row readers and consistency checks, as static methods of `Cohort` (a mixin): slide rows
and their slide-level columns, one endpoint's time / event coding, secondary endpoints against the primary one,
and patient fields that must be identical on every slide row. `Cohort._collapse` calls them; each problem is a
one-line finding naming the file, the case and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from survlab.data.cohort.checks import Finding, describe_number, report
from survlab.data.cohort.endpoint import Endpoint
from survlab.data.cohort.ids import _first_ids, _spellings


class CohortChecks:
    """Static readers and checks of `Cohort.from_csv` (module doc)."""

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
