"""Clinical covariates -> a float vector per patient, with preprocessing fitted on TRAINING patients only.

Numeric columns: median imputation + z-score. Categorical columns: most-frequent imputation + one-hot over the
training categories (an unseen category at test time maps to all zeros). Parameters are plain JSON.

Example:
    >>> enc = ClinicalEncoder(["age", "sex"], categorical=["sex"]).fit(train_rows)   # doctest: +SKIP
    >>> enc.transform(test_rows).shape, enc.feature_names                              # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survlab.data.cohort.checks import describe_number
from survlab.utils.files import read_json

log = logging.getLogger(__name__)


def _reject_decimal_commas(df: pd.DataFrame, col: str) -> None:
    """A text column whose every value is a number once ',' is read as '.' ('62,5') is a numeric column written with
    decimal commas: one-line ValueError, instead of silently one-hot encoding every distinct value."""
    values = df[col].dropna()
    if pd.api.types.is_numeric_dtype(values) or values.empty:
        return
    text = values.astype(str).str.strip()
    commas = text.str.fullmatch(r"[+-]?\d*,\d+")
    if commas.any() and pd.to_numeric(text.str.replace(",", ".", regex=False), errors="coerce").notna().all():
        row = commas.idxmax()
        case = f"case {df.loc[row, 'case_id']}" if "case_id" in df.columns else f"row {row}"
        raise ValueError(
            f"clinical column '{col}' is not numeric: {case} has {describe_number(text[row])}; fix the values or "
            f"list '{col}' under clinical.categorical"
        )


class ClinicalEncoder:
    """columns: clinical column names; categorical: those treated as categories (non-numeric columns are always)."""

    def __init__(self, columns: Sequence[str], categorical: Sequence[str] = ()) -> None:
        self.columns = list(columns)
        self.categorical = [c for c in self.columns if c in set(categorical)]
        self.params: dict[str, dict[str, Any]] = {}

    def fit(self, df: pd.DataFrame) -> ClinicalEncoder:
        """df: TRAINING patient rows containing `columns` -> self."""
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise ValueError(f"clinical columns {missing} not in the cohort table (has {list(df.columns)})")
        self.params = {}
        for col in self.columns:
            if col not in self.categorical:
                _reject_decimal_commas(df, col)
            numeric = col not in self.categorical and pd.api.types.is_numeric_dtype(df[col])
            if numeric:
                x = pd.to_numeric(df[col], errors="coerce").astype(float)
                med = float(np.nanmedian(x)) if x.notna().any() else 0.0
                x = x.fillna(med)
                std = float(x.std(ddof=0))
                self.params[col] = {
                    "kind": "numeric",
                    "median": med,
                    "mean": float(x.mean()),
                    "std": std if std > 1e-12 else 1.0,
                }
            else:
                s = df[col].dropna().astype(str)
                mode = str(s.mode().iloc[0]) if len(s) else "missing"
                cats = sorted(set(s.tolist()) | {mode})
                self.params[col] = {"kind": "categorical", "mode": mode, "categories": cats}
        return self

    @property
    def feature_names(self) -> list[str]:
        names: list[str] = []
        for col, p in self.params.items():
            names.extend([col] if p["kind"] == "numeric" else [f"{col}={c}" for c in p["categories"]])
        return names

    @property
    def dim(self) -> int:
        return len(self.feature_names)

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """df rows -> float32 [N, dim]."""
        if not self.params:
            raise RuntimeError("ClinicalEncoder.transform called before fit")
        blocks = []
        for col, p in self.params.items():
            if p["kind"] == "numeric":
                x = pd.to_numeric(df[col], errors="coerce").astype(float).fillna(p["median"])
                blocks.append(((x.to_numpy() - p["mean"]) / p["std"])[:, None])
            else:
                s = df[col].astype(object).where(df[col].notna(), p["mode"]).astype(str).to_numpy()
                blocks.append((s[:, None] == np.array(p["categories"], dtype=object)[None, :]).astype(float))
        return np.concatenate(blocks, axis=1).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "categorical": self.categorical, "params": self.params}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClinicalEncoder:
        enc = cls(d["columns"], d["categorical"])
        enc.params = d["params"]
        return enc

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> ClinicalEncoder:
        return cls.from_dict(read_json(path))
