"""Per-patient feature tables of MM-DLS imaging (``radiomics``, ``pet``): a CSV with a case_id column and numeric
feature columns, read and checked (`read_feature_table`), indexed by case_id so it is joined by id, never by row order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from survlab.data.cohort.checks import DataFileError, parse_problem


def read_feature_table(
    path: Path,
    case_col: str = "case_id",
    columns: Sequence[str] | None = None,
    expected: int | None = None,
    what: str = "table",
) -> pd.DataFrame:
    """A per-patient numeric CSV -> DataFrame indexed by case_id (sorted), with `columns` (None = all but the id).
    Missing file / id column / columns, duplicate ids, non-numeric cells and a wrong column count are one-line
    DataFileErrors naming the file and the fix. Empty cells stay NaN (imputed on the training patients)."""
    if not path.is_file():
        raise DataFileError(
            f"{what} table not found: {path}; expected a CSV with {case_col} + one column per "
            f"feature (see README 'PET/CT cohorts')"
        )
    try:
        df = pd.read_csv(path, dtype={case_col: str})
    except Exception as err:  # noqa: BLE001
        raise DataFileError(parse_problem(path, err)) from None
    if case_col not in df.columns:
        raise DataFileError(
            f"{path}: no '{case_col}' column (has {list(df.columns)[:6]}...); add the patient ids"
        )
    df[case_col] = df[case_col].astype(str).str.strip()
    dup = df[case_col][df[case_col].duplicated()].unique().tolist()
    if dup:
        raise DataFileError(
            f"{path}: case_id(s) {dup[:5]} appear on more than one row; keep one row per patient"
        )
    cols = [c for c in df.columns if c != case_col] if columns is None else list(columns)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataFileError(f"{path}: missing column(s) {missing}; the file has {list(df.columns)}")
    if expected is not None and len(cols) != expected:
        raise DataFileError(
            f"{path}: {len(cols)} feature columns, expected {expected} ({what}); fix the table or "
            f"set imaging.{what}_dim"
        )
    for col in cols:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = df[col].notna() & values.isna()
        if bad.any():
            row = bad.idxmax()
            raise DataFileError(
                f"{path}: column '{col}' of case {df.loc[row, case_col]} holds "
                f"{df.loc[row, col]!r}, not a number; fix the value (empty = missing)"
            )
        df[col] = values.astype(float)
    return df.set_index(case_col)[cols].sort_index()
