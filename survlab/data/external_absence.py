"""An external cohort's patients missing a modality (survlab.data.external.setup_external).

The EXTERNAL cohort's own `data.missing` decides what happens to its patients lacking a modality the model reads; the
run's `data.missing` only said how the training patients were handled (and, with keep, trained the network's
stand-ins for an absent modality):

- error: such a patient is a one-line error of the reader naming data.missing=drop / keep;
- drop: they are left out and counted (`dropped_card`: the protocol card says the model was scored on the patients
  with every modality it reads only);
- keep: every patient is scored, the absent modalities marked in `Batch.present` exactly as in training — when the
  model can take them: its network accepts the absence (`accepts_absent`) AND its stand-in was trained (training
  patients lacked that modality under data.missing=keep, or model.net.modality_dropout > 0). Otherwise a one-line
  `AbsentModalityError` before any prediction, naming how many patients lack what and the fix (data.missing=drop).

Example:
    >>> mark_absent(ext, cohort, expr, sources, {"genomics": "model=abmil reads no absent genomics"})  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from survlab.data.absence import PRESENCE, AbsentModalityError
from survlab.data.cohort.ids import _first_ids
from survlab.data.cohort.table import Cohort
from survlab.data.dataset import ModalitySources


def refuse_absent(ext: Any, cohort: Cohort, cannot_take: Mapping[str, str] | None) -> None:
    """A one-line AbsentModalityError when some patient of the external cohort `ext` (data.missing=keep) lacks a
    modality in `cannot_take` (modality -> why the model cannot take it absent; None: not checked)."""
    if cannot_take is None:
        return
    refused = {m: cs for m, cs in ext.absent.items() if cs and m in cannot_take}
    if not refused:
        return
    n = len(cohort.case_ids)
    complete = n - len(set().union(*(set(cs) for cs in ext.absent.values())))
    first, cases = next(iter(refused.items()))
    lack = ", ".join(f"{len(cs)} lack {m} (e.g. {_first_ids(cs, 3)})" for m, cs in refused.items())
    raise AbsentModalityError(
        first,
        f"external data={ext.name}: {lack} of its {n} patients, but {cannot_take[first]}; score only the "
        f"{complete} patients with every modality the model reads with data.missing=drop (survlab eval "
        f"run=<run dir> data={ext.name} data.missing=drop; in a training run "
        "'external_data_overrides={missing:drop}'; the protocol card states it)",
    )


def mark_absent(
    ext: Any,
    cohort: Cohort,
    expr: pd.DataFrame | None,
    sources: ModalitySources,
    cannot_take: Mapping[str, str] | None,
) -> dict[str, list[str]]:
    """The external cohort's availability patterns (`ext.availability`, as a training cohort's) and, under
    data.missing=keep, its absent patients marked in `sources` as in training (`sources.marked`, the WSI
    placeholder) after `refuse_absent`; -> modality -> patients kept without it ({} unless keep)."""
    kept = set(cohort.case_ids)
    ext.absent = {m: [c for c in cs if c in kept] for m, cs in ext.absent.items() if set(cs) & kept}
    ext.availability = ext._availability(cohort, expr)
    if ext.missing != "keep":
        return {}
    refuse_absent(ext, cohort, cannot_take)
    sources.marked = tuple(m for m in PRESENCE if ext._reads(m))
    if sources.wsi is not None and ext.absent.get("wsi"):
        sources.wsi_placeholder = ext._wsi_placeholder(sources.wsi)
    return dict(ext.absent)


def dropped_card(ext: Any, n_before: int) -> dict[str, Any] | None:
    """The protocol card's `dropped` (data.missing=drop): {missing, n_patients_before, n_dropped, per_modality:
    {modality: n}} of the patients left out for lacking a modality the model reads; None when nobody was."""
    per: dict[str, int] = {}
    who: set[str] = set()
    for modality, report in ext.drop_report.items():
        if isinstance(report, dict) and report.get("n_patients_dropped"):
            per[modality] = int(report["n_patients_dropped"])
            who |= {str(c) for c in report.get("patients", ())}
    if not per:
        return None
    return {
        "missing": str(ext.missing),
        "n_patients_before": int(n_before),
        "n_dropped": len(who) or sum(per.values()),
        "per_modality": per,
    }


def dropped_sentence(card: Mapping[str, Any]) -> str:
    """protocol.md's sentence on the patients an external cohort's data.missing=drop left out (`dropped_card`)."""
    per = ", ".join(f"{m} {n}" for m, n in card["per_modality"].items())
    kept = int(card["n_patients_before"]) - int(card["n_dropped"])
    return (
        f"Scored on the {kept} patients with every modality the model reads only: {card['n_dropped']} of "
        f"{card['n_patients_before']} left out for lacking one (data.missing={card['missing']}; {per})."
    )


__all__ = ["PRESENCE", "dropped_card", "dropped_sentence", "mark_absent", "refuse_absent"]
