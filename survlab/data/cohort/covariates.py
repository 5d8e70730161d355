"""Clinical covariates kept in their own table (`clinical.table`), joined to the cohort by case_id.

A cohort may keep its outcomes and its covariates apart — e.g. survival.csv (case_id, survival_months, censorship)
as `clinical_csv` and clinical.csv (case_id, age, stage, ...) as `clinical.table`. The covariate table holds one row
per patient; every cohort patient must have a row (empty cells are imputed by the fold's clinical encoder); rows
of patients not in the cohort are ignored. Joined by case_id, never by row position.

Example:
    >>> cohort = join_covariates(cohort, Path("clinical.csv"), ["age", "stage"])   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from survlab.data.cohort.checks import DataFileError, delimiter_problem, parse_problem
from survlab.data.cohort.ids import _first_ids, _header, _reject_repeated
from survlab.data.cohort.table import Cohort


def read_covariates(path: Path, columns: Sequence[str], case_col: str = "case_id") -> pd.DataFrame:
    """-> DataFrame with columns case_id (str, stripped) + `columns`, one row per patient (checked)."""
    if not path.is_file():
        raise DataFileError(
            f"clinical.table not found: {path}; expected a CSV with columns {case_col}, {', '.join(columns)} "
            f"(one row per patient)"
        )
    try:
        df = pd.read_csv(path, dtype={case_col: str})
    except Exception as err:  # noqa: BLE001 - empty, binary, wrong encoding: re-raised with the file name
        raise DataFileError(parse_problem(path, err)) from err
    _reject_repeated(_header(path), path, "column", "keep one column per covariate")
    absent = [c for c in [case_col, *columns] if c not in df.columns]
    if absent:
        raise DataFileError(
            delimiter_problem(path, _header(path))
            or f"{path}: no column(s) {', '.join(absent)} (columns: {_first_ids(list(df.columns), 8)}); add them or "
            f"fix clinical.columns"
        )
    ids = df[case_col].astype(str).str.strip()
    if df[case_col].isna().any():
        raise DataFileError(
            f"{path}: empty {case_col} in {int(df[case_col].isna().sum())} row(s); fill in the case ids"
        )
    dup = ids[ids.duplicated(keep=False)].unique()
    if len(dup):
        raise DataFileError(f"{path}: several rows for case(s) {_first_ids(dup)}; keep one row per patient")
    out = df[list(columns)].copy()
    out.insert(0, "case_id", ids.to_numpy())
    return out


def join_covariates(cohort: Cohort, path: Path, columns: Sequence[str], case_col: str = "case_id") -> Cohort:
    """The cohort with `columns` from the covariate table at `path`, joined by case_id (row order of the cohort
    kept); a cohort patient without a row is a one-line DataFileError naming the cases and the file."""
    table = read_covariates(path, columns, case_col)
    missing = sorted(set(cohort.table["case_id"]) - set(table["case_id"]))
    if missing:
        raise DataFileError(
            f"{path}: no row for {len(missing)} cohort patient(s) ({_first_ids(missing)}); add their rows (empty "
            f"cells are imputed on the training patients)"
        )
    clash = [c for c in columns if c in cohort.table.columns]
    base = cohort.table.drop(columns=clash)
    merged = base.merge(table, on="case_id", how="left", validate="one_to_one")
    return cohort._with_table(merged)
