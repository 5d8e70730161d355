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
SLIDE_LABEL_KEYS = (*LABEL_KEYS, "patient")
RULE_KEYS = ("label", "negative", "normal")


@dataclass(frozen=True)
class PatientRule:
    """How a slide label must agree with a patient label (the MIL assumption): a patient whose `label` is one of the
    `negative` classes has only slides of the `normal` classes; a patient of any other class whose slides are all
    labelled has at least one slide outside `normal`. E.g. {label: label, negative: [negative], normal: [normal]}."""

    label: str
    negative: tuple[str, ...]
    normal: tuple[str, ...]


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
    patient: PatientRule | None = None  # slide labels only: the rule tying it to a patient label

    def fit(self, train_values: pd.Series) -> tuple[str, ...]:
        """Class order: the configured classes, else the sorted unique values of the TRAINING patients [N_train]."""
        return self.classes if self.classes is not None else tuple(sorted_values(train_values))


def parse_labels(
    labels: Mapping[str, Any] | None, label_cols: Sequence[str] = (), what: str = "labels"
) -> dict[str, LabelSpec]:
    """`labels:` config (name -> {column, classes, ordinal}) + the `label_cols` shorthand -> name -> LabelSpec."""
    out = {str(c): LabelSpec(str(c), str(c)) for c in label_cols}
    allowed = SLIDE_LABEL_KEYS if what == "slide_labels" else LABEL_KEYS
    for name, spec in (labels or {}).items():
        spec = dict(spec or {})
        unknown = sorted(set(spec) - set(allowed))
        if unknown:
            raise ValueError(f"{what}.{name}: unknown option(s) {unknown}; allowed: {list(allowed)}")
        classes = spec.get("classes")
        if classes is not None:
            classes = tuple(label_key(c) for c in classes)
            if len(set(classes)) != len(classes) or len(classes) < 2:
                raise ValueError(f"{what}.{name}.classes={list(classes)}: give >= 2 distinct classes")
        out[str(name)] = LabelSpec(
            str(name),
            str(spec.get("column") or name),
            classes,
            bool(spec.get("ordinal")),
            _parse_rule(spec.get("patient"), f"{what}.{name}.patient"),
        )
    return out


def _parse_rule(rule: Mapping[str, Any] | None, where: str) -> PatientRule | None:
    """`slide_labels.<name>.patient: {label, negative, normal}` -> PatientRule (None when absent)."""
    if rule is None:
        return None
    rule = dict(rule)
    if sorted(rule) != sorted(RULE_KEYS):
        raise ValueError(
            f"{where}: give exactly {list(RULE_KEYS)} (e.g. {{label: label, negative: [negative], normal: [normal]}}), "
            f"got {sorted(rule)}"
        )

    def keys(v: Any) -> tuple[str, ...]:
        return tuple(label_key(x) for x in ([v] if isinstance(v, (str, int, float)) else list(v)))

    return PatientRule(str(rule["label"]), keys(rule["negative"]), keys(rule["normal"]))


def case_variants(values: pd.Series) -> list[tuple[str, ...]]:
    """Groups of label values [N] that differ only in letter case ('Positive', 'positive'), which would be separate
    classes; [] when every value is spelled one way."""
    by_lower: dict[str, set[str]] = {}
    for v in values.dropna().unique().tolist():
        key = label_key(v)
        by_lower.setdefault(key.lower(), set()).add(key)
    return [tuple(sorted(v)) for _, v in sorted(by_lower.items()) if len(v) > 1]


def spelling_problem(spec: LabelSpec, values: pd.Series, path: Path | str, what: str = "labels") -> str:
    """'' or a one-line message when a label WITHOUT configured classes holds values that differ only in letter case
    (they would become separate classes). With configured classes a wrong spelling is an unknown value already."""
    if spec.classes is not None:
        return ""
    groups = case_variants(values)
    if not groups:
        return ""
    counts = values.dropna().map(label_key).value_counts()
    shown = "; ".join(" / ".join(f"{v!r} ({int(counts.get(v, 0))}x)" for v in g) for g in groups[:3])
    return (
        f"{path}: label column '{spec.column}' spells a class in several letter cases ({shown}), which would become "
        f"separate classes of label '{spec.name}'; spell each class one way, or list the classes in "
        f"{what}.{spec.name}.classes"
    )


def untrained_classes(classes: Sequence[str], train_codes: np.ndarray) -> list[str]:
    """The classes [K] that no training patient (slide) has, given their class indices [N] (-1 = missing)."""
    seen = set(np.asarray(train_codes)[np.asarray(train_codes) >= 0].tolist())
    return [c for i, c in enumerate(classes) if i not in seen]


def untrained_problem(
    spec: LabelSpec,
    classes: Sequence[str],
    train_codes: np.ndarray,
    path: Path | str,
    where: str,
    what: str = "labels",
) -> str:
    """'' or a one-line message when a configured class has no training example (`where`: e.g. 'the training
    patients of fold 0'): its head would be trained with zero examples of it and scored on it."""
    absent = untrained_classes(classes, train_codes)
    if not absent:
        return ""
    return (
        f"{path}: class(es) {absent} of label '{spec.name}' ({what}.{spec.name}.classes = {list(classes)}) occur in "
        f"none of {where}, so the head would learn them from zero examples; remove them from "
        f"{what}.{spec.name}.classes, or add patients that have them"
    )


def rule_conflicts(
    spec: LabelSpec, slides: pd.DataFrame, patient_values: Mapping[str, Any]
) -> tuple[dict[str, list[str]], list[str]]:
    """Slides [S] (slide_id, case_id, spec.column) against the patient label values (case_id -> raw cell) under
    `spec.patient` -> ({case of a negative class: its slides outside `normal`}, [cases of another class whose slides
    are all labelled and all `normal`]). Missing cells are never a conflict."""
    rule = spec.patient
    if rule is None:
        return {}, []
    negative, normal = set(rule.negative), set(rule.normal)
    bad_negative: dict[str, list[str]] = {}
    bad_positive: list[str] = []
    for case, rows in slides.groupby("case_id", sort=True):
        value = patient_values.get(str(case))
        if value is None or pd.isna(value):
            continue
        slide_vals = [(s, v) for s, v in zip(rows["slide_id"], rows[spec.column], strict=True)]
        labelled = [(s, label_key(v)) for s, v in slide_vals if not pd.isna(v)]
        if label_key(value) in negative:
            odd = sorted(s for s, v in labelled if v not in normal)
            if odd:
                bad_negative[str(case)] = odd
        elif labelled and len(labelled) == len(slide_vals) and all(v in normal for _, v in labelled):
            bad_positive.append(str(case))
    return bad_negative, bad_positive


def rule_problems(
    spec: LabelSpec,
    slides: pd.DataFrame,
    patient_values: Mapping[str, Any],
    patient_column: str,
    path: Path | str,
) -> list[tuple[str, str, tuple[str, ...]]]:
    """The contradictions of `rule_conflicts` as (check, one-line message, cases) [0..2]."""
    rule = spec.patient
    if rule is None:
        return []
    bad_negative, bad_positive = rule_conflicts(spec, slides, patient_values)
    fix = f"fix the labels (or slide_labels.{spec.name}.patient if the rule is wrong)"
    out = []
    if bad_negative:
        case = next(iter(bad_negative))
        out.append(
            (
                f"slide label '{spec.name}' contradicts patient label '{rule.label}'",
                f"{path}: {len(bad_negative)} patient(s) of class {list(rule.negative)} in '{patient_column}' have slides "
                f"that are not {list(rule.normal)} in '{spec.column}' ({_shown(list(bad_negative))}; e.g. {case}: slide(s) "
                f"{', '.join(bad_negative[case][:3])}); {fix}",
                tuple(bad_negative),
            )
        )
    if bad_positive:
        out.append(
            (
                f"slide label '{spec.name}' contradicts patient label '{rule.label}'",
                f"{path}: {len(bad_positive)} patient(s) NOT of class {list(rule.negative)} in '{patient_column}' have "
                f"only {list(rule.normal)} slides in '{spec.column}' ({_shown(bad_positive)}); {fix}",
                tuple(bad_positive),
            )
        )
    return out


def _shown(ids: Sequence[str], k: int = 5) -> str:
    more = f" (+{len(ids) - k} more)" if len(ids) > k else ""
    return ", ".join(map(str, ids[:k])) + more


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


def label_problems(
    specs: Mapping[str, LabelSpec],
    slide_specs: Mapping[str, LabelSpec],
    table: pd.DataFrame,
    slides: pd.DataFrame | None,
    train_ids: Sequence[str],
    path: Path | str,
    where: str,
) -> list[tuple[str, str, tuple[str, ...]]]:
    """Every label problem that would train on silently different data, as (check, one-line message, cases): class
    spellings differing only in letter case (unconfigured classes), configured classes no training patient / slide
    has (`train_ids`: the fold's training patients, `where` names them), slide labels contradicting their patient
    label (`slide_labels.<name>.patient`). `table`: patient rows [N] (case_id + label columns); `slides`: slide rows."""
    out: list[tuple[str, str, tuple[str, ...]]] = []
    train = set(map(str, train_ids))
    levels = [("labels", specs, table, "case_id", "patients")]
    if slides is not None:
        levels.append(("slide_labels", slide_specs, slides, "case_id", "slides"))
    for what, level_specs, rows, case_col, unit in levels:
        in_train = rows[case_col].astype(str).isin(train)
        for name, spec in level_specs.items():
            values = rows[spec.column]
            if msg := spelling_problem(spec, values, path, what):
                out.append((f"label '{name}' classes in several letter cases", msg, ()))
            if spec.classes is not None:
                codes = np.array(
                    [
                        spec.classes.index(label_key(v)) if label_key(v) in spec.classes else -1
                        for v in values[in_train]
                        if not pd.isna(v)
                    ],
                    dtype=np.int64,
                )
                msg = untrained_problem(
                    spec, spec.classes, codes, path, where.replace("patients", unit), what
                )
                if msg:
                    out.append((f"label '{name}': configured classes without training examples", msg, ()))
    for name, spec in slide_specs.items():
        if spec.patient is None or slides is None:
            continue
        if spec.patient.label not in specs:
            out.append(
                (
                    f"slide label '{name}': unknown patient label",
                    f"slide_labels.{name}.patient.label={spec.patient.label!r} is not a patient label {list(specs)}; "
                    f"name one of data.labels",
                    (),
                )
            )
            continue
        column = specs[spec.patient.label].column
        values = dict(zip(table["case_id"].astype(str), table[column], strict=True))
        out += rule_problems(spec, slides, values, column, path)
    return out
