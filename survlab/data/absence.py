"""Patients missing a modality (data.missing=keep): who lacks what, the availability pattern of every patient over
the modalities the data config provides, the one-line refusal of a network that cannot take an absent modality, and
the WSI placeholder's width. A mixin of `CohortDataModule` (it reads the data module's config, stores and `absent`)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from survlab.data.cohort.ids import _first_ids
from survlab.data.cohort.table import Cohort
from survlab.data.options import under

log = logging.getLogger("survlab.data.datamodule")


class AbsentModalityError(ValueError):
    """data.missing=keep: some patients lack a modality the network reads and cannot take absent (one line)."""

    def __init__(self, modality: str, message: str) -> None:
        super().__init__(message)
        self.modality = modality


#: the modalities a patient can lack under data.missing=keep (PatientItem.present keys), in pattern order
PRESENCE: tuple[str, ...] = ("wsi", "genomics", "pet")


def availability_pattern(present: dict[str, bool]) -> str:
    """'+'.join of the present modalities in PRESENCE order ("wsi+genomics", "wsi", ...); "none" if none."""
    return "+".join(m for m in PRESENCE if present.get(m)) or "none"


class Absence:
    """The data module's absent-modality part (methods of `CohortDataModule`; module doc)."""

    # set by CohortDataModule
    modalities: tuple[str, ...]
    absent: dict[str, list[str]]
    accepts_absent: Any
    absent_alternatives: Any
    network: str
    name: str
    root: Any
    case_col: str
    wsi_cfg: Any
    gen_cfg: Any
    imaging_cfg: Any
    imaging: Any
    cohort: Cohort

    def _reads(self, modality: str) -> bool:
        """Whether the network reads `modality` (PRESENCE keys; pet = the CT modality's PET table)."""
        if modality == "pet":
            return "ct" in self.modalities and bool((self.imaging_cfg or {}).get("pet"))
        return modality in self.modalities

    def _availability(self, cohort: Cohort, expr: pd.DataFrame | None) -> dict[str, str]:
        """case_id -> availability pattern (`availability_pattern`) over the modalities the DATA CONFIG provides among
        PRESENCE, whether or not the network reads them (so every model of a sweep reports the same patterns):
        genomics from the expression table's id column, slides from the slide lists and the stores' files, PET from
        its table. {} when every patient has every provided modality. Logged per pattern."""
        ids = cohort.case_ids
        have: dict[str, set[str]] = {}
        if self.wsi_cfg is not None:
            if (
                self._reads("wsi") or "scales" in self.modalities
            ):  # the bags were checked: who was kept without
                lacking = set(self.absent.get("wsi", ()))
                have["wsi"] = {c for c in ids if c not in lacking}
            else:
                have["wsi"] = self._cases_with_slides(cohort)
        if self.gen_cfg is not None:
            if expr is not None:
                have["genomics"] = set(expr.index)
            elif (ids_of := self._ids_of(self.gen_cfg["expression"])) is not None:
                have["genomics"] = ids_of
        pet_file = (self.imaging_cfg or {}).get("pet")
        if pet_file:
            if self.imaging is not None and "pet" in self.imaging.tables:
                have["pet"] = set(self.imaging.tables["pet"].index) - set(self.absent.get("pet", ()))
            elif (ids_of := self._ids_of(pet_file)) is not None:
                have["pet"] = ids_of
        if all(c in h for h in have.values() for c in ids):
            return {}
        out = {c: availability_pattern({m: c in h for m, h in have.items()}) for c in ids}
        counts = pd.Series(out).value_counts()
        log.info(
            "data %s: availability of %s over %d patients: %s",
            self.name,
            "+".join(have),
            len(ids),
            ", ".join(f"{p} {n}" for p, n in counts.items()),
        )
        return out

    def _ids_of(self, table: str) -> set[str] | None:
        """The case ids of a table the network does not read (its id column only), or None when it cannot be read
        (absent, no id column): that modality is then left out of the availability, with a warning."""
        from survlab.data.modalities.genomics import read_expression_ids

        path = under(self.root, table)
        try:
            return read_expression_ids(path, self.case_col)
        except (ValueError, OSError) as err:
            log.warning("data %s: availability without %s (%s)", self.name, path, str(err).splitlines()[0])
            return None

    def _cases_with_slides(self, cohort: Cohort) -> set[str]:
        """Patients with at least one slide whose features file exists (single-scale store; a network that does not
        read the bags: only file existence is checked)."""
        from survlab.data.modalities.stores import build_stores

        listed = {c for c, ss in zip(cohort.case_ids, cohort.table["slide_ids"], strict=True) if len(ss)}
        try:
            store, _ = build_stores(self.wsi_cfg, self.root, self.name, ("wsi",))
            if store is None:
                return listed
            store.check_layout()
            return {
                c
                for c, ss in zip(cohort.case_ids, cohort.table["slide_ids"], strict=True)
                if any(store.path_of(s) is not None for s in ss)
            }
        except (ValueError, OSError):  # no readable feature folder (e.g. multi-scale only): the slide lists
            return listed

    def _check_absent(self, cohort: Cohort) -> None:
        """data.missing=keep: log how many patients lack what; a modality the network reads but cannot take absent
        (`accepts_absent`, from build_datamodule) is a one-line AbsentModalityError naming the alternatives."""
        n = len(cohort.case_ids)
        for m, cases in self.absent.items():
            log.warning(
                "data %s: %d of %d patient(s) kept without %s (data.missing=keep; marked absent): %s",
                self.name,
                len(cases),
                n,
                m,
                _first_ids(cases),
            )
        if self.accepts_absent is None:
            return
        for m, cases in self.absent.items():
            if cases and m not in self.accepts_absent:
                others = self.absent_alternatives(m) if self.absent_alternatives is not None else []
                raise AbsentModalityError(
                    m,
                    f"{self.network} cannot take patients without {m} ({len(cases)} of data={self.name} lack it, "
                    f"e.g. {cases[0]}); use data.missing=drop, or a network that accepts "
                    f"an absent {m}: {', '.join(others) or 'none'}",
                )

    def _wsi_placeholder(self, store: Any) -> tuple[int, bool]:
        """(D, has coords) of the one zero patch standing for a patient without slides (the first slide's bag)."""
        first = next(ss[0] for ss in self.cohort.table["slide_ids"] if len(ss))
        bag = store.read_slide(first)
        return int(store.feature_dim or bag[0].shape[1]), bag[1] is not None
