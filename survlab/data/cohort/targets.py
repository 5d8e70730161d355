"""Classification targets: which columns hold patient / slide labels and their class order.

`labels: {name: {column, classes, ordinal}}` in the data config (or the shorthand `label_cols: [col, ...]`) becomes
one `LabelSpec` per label. The class order is the configured `classes` or, when absent, the sorted unique values of
the fold's TRAINING patients (`LabelSpec.fit`); `encode_labels` maps values to 0..K-1 (-1 = missing cell) and
rejects a value outside the classes with a one-line error naming the case, the column and the allowed values.

Example:
    >>> spec = parse_labels({"grade": {"column": "grade", "classes": ["G1", "G2", "G3"]}})["grade"]
    >>> spec.fit(pd.Series(["G2", "G1"]))
    ('G1', 'G2', 'G3')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

LABEL_KEYS = ("column", "classes", "ordinal")


def label_key(v: object) -> str:
    """The string a label value is known by: 2.0 (a float-read int column) and 2 are both '2'."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        v = int(v)
    return str(v)


def sorted_values(values: pd.Series) -> list[str]:
    """Sorted unique non-missing values (numbers numerically, else as text) as label keys."""
    vals = values.dropna().unique().tolist()
    try:
        vals = sorted(vals)
    except TypeError:
        vals = sorted(vals, key=str)
    return list(dict.fromkeys(label_key(v) for v in vals))


@dataclass(frozen=True)
class LabelSpec:
    """One classification target: `name` (the head name), the CSV `column`, the configured `classes` (None = the
    sorted training values) and whether the classes are ordered (`ordinal`, kept in the given order)."""

    name: str
    column: str
    classes: tuple[str, ...] | None = None
    ordinal: bool = False

    def fit(self, train_values: pd.Series) -> tuple[str, ...]:
        """Class order: the configured classes, else the sorted unique values of the TRAINING patients [N_train]."""
        return self.classes if self.classes is not None else tuple(sorted_values(train_values))


def parse_labels(
    labels: Mapping[str, Any] | None, label_cols: Sequence[str] = (), what: str = "labels"
) -> dict[str, LabelSpec]:
    """`labels:` config (name -> {column, classes, ordinal}) + the `label_cols` shorthand -> name -> LabelSpec."""
    out = {str(c): LabelSpec(str(c), str(c)) for c in label_cols}
    for name, spec in (labels or {}).items():
        spec = dict(spec or {})
        unknown = sorted(set(spec) - set(LABEL_KEYS))
        if unknown:
            raise ValueError(f"{what}.{name}: unknown option(s) {unknown}; allowed: {list(LABEL_KEYS)}")
        classes = spec.get("classes")
        if classes is not None:
            classes = tuple(label_key(c) for c in classes)
            if len(set(classes)) != len(classes) or len(classes) < 2:
                raise ValueError(f"{what}.{name}.classes={list(classes)}: give >= 2 distinct classes")
        out[str(name)] = LabelSpec(
            str(name), str(spec.get("column") or name), classes, bool(spec.get("ordinal"))
        )
    return out


def check_classes(spec: LabelSpec, classes: Sequence[str], path: Path | str) -> None:
    """A label needs >= 2 classes (a 1- or 0-way head cannot learn); one-line ValueError otherwise."""
    if len(classes) < 2:
        found = f"one class ({classes[0]})" if classes else "no value (empty column)"
        raise ValueError(
            f"{path}: label column '{spec.column}' has {found}; a label needs >= 2 classes: fix the column or "
            f"remove it from label_cols"
        )


def encode_labels(
    values: pd.Series,
    ids: Sequence[str],
    spec: LabelSpec,
    classes: Sequence[str],
    path: Path | str,
    what: str = "case",
    source: str = "the training patients",
) -> np.ndarray:
    """values [N] (raw cells, NaN = missing) of cases/slides `ids` [N] -> class indices [N] int64, -1 = missing.
    A value outside `classes` -> one-line ValueError naming the case (or slide), the column and the classes."""
    index = {c: i for i, c in enumerate(classes)}
    out = np.full(len(values), -1, dtype=np.int64)
    for j, (case, v) in enumerate(zip(ids, values, strict=True)):
        if pd.isna(v):
            continue
        key = label_key(v)
        if key not in index:
            origin = "the configured classes" if spec.classes is not None else f"the values of {source}"
            raise ValueError(
                f"{path}: {what} {case} has {spec.column}={key!r}, not one of {list(classes)} ({origin}) of label "
                f"'{spec.name}'; fix the value, or list it in labels.{spec.name}.classes"
            )
        out[j] = index[key]
    return out
