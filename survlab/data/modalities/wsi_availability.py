"""`check_availability`: keep only the slides with a feature file in every store (multi-scale: every scale), and
drop / keep / refuse the patients left without slides (data.missing), returning the filtered cohort and its
`DropReport` (what was dropped or kept without slides; the protocol card's counts).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from survlab.data.cohort.ids import _first_ids
from survlab.data.cohort.table import Cohort
from survlab.data.modalities.wsi import BagStore
from survlab.data.modalities.wsi_files import (
    _FIX,
)

log = logging.getLogger("survlab.data.modalities.wsi")  # the records keep the name they had


@dataclass
class DropReport:
    """What was dropped while checking feature availability, and why."""

    dropped_slides: dict[str, str] = field(default_factory=dict)  # slide_id -> reason
    dropped_patients: list[str] = field(default_factory=list)
    kept_without: list[str] = field(default_factory=list)  # data.missing=keep: patients kept with no slide

    def summary(self) -> str:
        if not self.dropped_slides and not self.dropped_patients and not self.kept_without:
            return "no slides dropped"
        example = next(iter(self.dropped_slides.items()), ("-", "-"))
        left = (
            f"{len(self.kept_without)} patient(s) kept without slides ({_first_ids(self.kept_without)})"
            if self.kept_without
            else f"{len(self.dropped_patients)} patient(s) left without slides ({_first_ids(self.dropped_patients)})"
        )
        return f"dropped {len(self.dropped_slides)} slide(s) (e.g. {example[0]}: {example[1]}) and {left}"

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "n_slides_dropped": len(self.dropped_slides),
            "n_patients_dropped": len(self.dropped_patients),
            "slides": dict(self.dropped_slides),
            "patients": list(self.dropped_patients),
        }
        if self.kept_without:  # only with data.missing=keep: older protocol cards keep their keys
            out["n_patients_kept_without"] = len(self.kept_without)
            out["patients_kept_without"] = list(self.kept_without)
        return out


def check_availability(
    cohort: Cohort,
    stores: Sequence[BagStore],
    allow_missing: bool = False,
    partial_ok: bool = False,
    keep: bool = False,
) -> tuple[Cohort, DropReport]:
    """Keep only slides with a file in EVERY store; return the filtered cohort + report.

    A slide missing in all stores is an error (naming the slide and dirs) unless allow_missing, `keep` or
    `partial_ok` (multi-scale: slides missing some scale are always dropped with a report). Patients left with no
    slide are dropped if allow_missing, kept with an empty slide list if `keep` (data.missing=keep: marked absent,
    `report.kept_without`), else an error. A store whose folders are missing altogether (wrong encoder, scale or
    format) and two slide ids resolving to one file ('X' and 'X.svs') are always errors.
    """
    for st in stores:
        st.check_layout()
    report = DropReport()
    kept: dict[str, list[str]] = {}
    owner: dict[Path, tuple[str, str]] = {}  # file -> (slide_id, case_id) that resolved to it first
    for case, slides in zip(cohort.table["case_id"], cohort.table["slide_ids"], strict=False):
        kept[case] = []
        for s in slides:
            paths = [st.path_of(s) for st in stores]
            for p in paths:
                first = owner.setdefault(p, (s, case)) if p is not None else (s, case)
                if first != (s, case):
                    raise ValueError(
                        f"{cohort.path}: slide_id {s} of case {case} and {first[0]} of case {first[1]} both resolve "
                        f"to {p}; list each slide once (a slide_id with and without its .svs extension is one slide)"
                    )
            absent = [st for st, p in zip(stores, paths, strict=True) if p is None]
            if not absent:
                kept[case].append(s)
                continue
            if not (allow_missing or keep or partial_ok):
                raise FileNotFoundError(f"{cohort.path}: case {case}: " + absent[0].missing_message(s))
            names = [st.scale or "features" for st in absent]
            report.dropped_slides[s] = f"missing {', '.join(names)}"
    empty = [c for c, ss in kept.items() if not ss]
    if empty and keep:
        report.kept_without = empty
    elif empty:
        if not allow_missing:
            first = empty[0]
            raise ValueError(
                f"{cohort.path}: {len(empty)} patient(s) have no slide with features at all scales "
                f"({_first_ids(empty)}; e.g. {first}: slides {cohort.rows([first])['slide_ids'].iloc[0]}); "
                f"{_FIX}, or set data.missing=drop to drop them or data.missing=keep to keep them"
            )
        report.dropped_patients = empty
    if report.dropped_slides or report.dropped_patients:
        log.warning("WSI availability: %s", report.summary())
    return cohort.with_slides(kept).drop(report.dropped_patients), report
