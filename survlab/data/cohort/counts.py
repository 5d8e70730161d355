"""How many cells of each target (patient label, slide label, endpoint) a fold's parts have, and which are missing.

Missing label cells (-1), missing slide labels and missing endpoint cells (time NaN) are masked out of losses and
metrics; `target_counts` says how many, per target and part, so the run log, `survlab check`, metrics.json and the
protocol card can say so, and `count_problems` names every part left with no value to train or score on (training
refuses it, `survlab check` lists it).

Shape: {"labels" | "slide_labels" | "endpoints": {name: {part: {"n": int, "n_missing": int}}}} (kinds without a
target are left out); `n` counts patients (slides for slide labels) of the part, `n_missing` those without a value.

Example:
    >>> counts = target_counts(cohort, {"train": split.train, "test": split.test}, label_specs)  # doctest: +SKIP
    >>> counts["labels"]["grade"]["test"]                                                          # doctest: +SKIP
    {'n': 10, 'n_missing': 2}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from survlab.data.cohort.endpoint import Endpoint
from survlab.data.cohort.table import Cohort
from survlab.data.cohort.targets import LabelSpec

Counts = dict[str, dict[str, dict[str, dict[str, int]]]]
#: the config key each kind of target is declared under (named in the fixes)
KIND_KEY = {
    "labels": "data.labels (or data.label_cols)",
    "slide_labels": "data.slide_labels",
    "endpoints": "data.endpoints",
}
_KIND_WORD = {"labels": "label", "slide_labels": "slide label", "endpoints": "endpoint"}
_PART_USE = {"train": "train", "val": "validate", "test": "score", "calibration": "calibrate"}


def _cell_counts(values: pd.Series) -> dict[str, int]:
    return {"n": int(len(values)), "n_missing": int(values.isna().sum())}


def target_counts(
    cohort: Cohort,
    parts: Mapping[str, Sequence[str]],
    label_specs: Mapping[str, LabelSpec] | None = None,
    slide_label_specs: Mapping[str, LabelSpec] | None = None,
) -> Counts:
    """Per target and part (`parts`: part name -> case ids, e.g. train / val / test / calibration): the number of
    patients (slides of those patients, for slide labels: the ones listed in `cohort.table['slide_ids']`) and how
    many have no value. Endpoints are every endpoint of `cohort` (a missing cell: time NaN)."""
    out: Counts = {}
    rows = {p: cohort.rows(list(ids)) for p, ids in parts.items()}
    if label_specs:
        out["labels"] = {
            name: {p: _cell_counts(r[spec.column]) for p, r in rows.items()}
            for name, spec in label_specs.items()
        }
    if slide_label_specs and cohort.slides is not None:
        slides = cohort.slides.set_index("slide_id", drop=False)
        part_slides = {
            p: [s for ss in r["slide_ids"] for s in ss if s in slides.index] for p, r in rows.items()
        }
        out["slide_labels"] = {
            name: {p: _cell_counts(slides.loc[ids, spec.column]) for p, ids in part_slides.items()}
            for name, spec in slide_label_specs.items()
        }
    if cohort.endpoints:
        out["endpoints"] = {
            e.name: {p: _cell_counts(r[f"time:{e.name}"]) for p, r in rows.items()} for e in cohort.endpoints
        }
    return out


def target_columns(
    label_specs: Mapping[str, LabelSpec] | None = None,
    slide_label_specs: Mapping[str, LabelSpec] | None = None,
    endpoints: Sequence[Endpoint] = (),
) -> dict[tuple[str, str], str]:
    """(kind, name) -> the CSV column a target is read from (an endpoint: its time column), for messages."""
    out = {("labels", n): sp.column for n, sp in (label_specs or {}).items()}
    out.update({("slide_labels", n): sp.column for n, sp in (slide_label_specs or {}).items()})
    out.update({("endpoints", e.name): e.time_col for e in endpoints})
    return out


def count_problems(
    counts: Counts,
    path: Path | str,
    where: str,
    columns: Mapping[tuple[str, str], str] | None = None,
) -> list[tuple[str, str, str, str, str]]:
    """Every (kind, name, part) of `counts` whose part has patients (slides) but none with a value, as (check,
    one-line message, kind, name, part); `where` names the parts' fold ('fold 0'), `columns` maps (kind, name) -> the CSV
    column (default: the name). A target with no value in ANY part is one message (an empty column)."""
    columns = dict(columns or {})
    out: list[tuple[str, str, str, str, str]] = []
    for kind, targets in counts.items():
        word, key = _KIND_WORD[kind], KIND_KEY[kind]
        unit = "slides" if kind == "slide_labels" else "patients"
        for name, per_part in targets.items():
            column = columns.get((kind, name), name)
            what = f"{word} '{name}' (column '{column}')"
            have = {p: c["n"] - c["n_missing"] for p, c in per_part.items()}
            total = sum(c["n"] for c in per_part.values())
            if total and not any(have.values()):
                out.append(
                    (
                        f"{word} '{name}' without any value",
                        f"{path}: {what} has no value for any of the {total} {unit} of {where} (empty column); "
                        f"fill in '{column}', or remove '{name}' from {key}",
                        kind,
                        name,
                        "all",
                    )
                )
                continue
            for part, c in per_part.items():
                if c["n"] and not have[part]:
                    out.append(
                        (
                            f"{word} '{name}' missing in a whole part",
                            f"{path}: {what} has no value for any of the {c['n']} {part} {unit} of {where}, so "
                            f"there is nothing to {_PART_USE.get(part, 'use')} it on there; fill in '{column}' for "
                            f"them, or remove '{name}' from {key}",
                            kind,
                            name,
                            part,
                        )
                    )
    return out


def describe_counts(counts: Counts) -> str:
    """One log line: 'missing (of n): label grade train 3/28, val 0/5, test 1/7; endpoint DFS test 2/7' listing every
    target that has missing cells; 'no missing label / endpoint cells' when none has."""
    out = []
    for kind, targets in counts.items():
        for name, per_part in targets.items():
            if any(c["n_missing"] for c in per_part.values()):
                parts = ", ".join(f"{p} {c['n_missing']}/{c['n']}" for p, c in per_part.items())
                out.append(f"{_KIND_WORD[kind]} {name} {parts}")
    if not out:
        return "no missing label / endpoint cells"
    return "missing cells (masked out of losses and metrics; missing/total): " + "; ".join(out)


def missing_ids(cohort: Cohort, kind: str, column: str) -> list[str]:
    """The case (slide, for slide labels) ids whose `column` cell is missing (`kind`: labels / slide_labels /
    endpoints, `column`: the label column or the endpoint name)."""
    if kind == "slide_labels":
        if cohort.slides is None:
            return []
        s = cohort.slides
        return sorted(map(str, s.loc[s[column].isna(), "slide_id"]))
    t = cohort.table
    col = f"time:{column}" if kind == "endpoints" else column
    return sorted(map(str, t.loc[t[col].isna(), "case_id"]))


__all__ = ["Counts", "count_problems", "describe_counts", "missing_ids", "target_columns", "target_counts"]
