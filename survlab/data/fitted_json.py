"""A fold's preprocessing as plain JSON (`<run dir>/preprocessing.json`, format `survlab.preprocessing/1`, no
pickles): `to_json`, `from_json` and `changed_keys` (what differs from a saved state), a mixin of
`FoldPreprocessing`.
"""

from __future__ import annotations

import json
from typing import Any, Self

import numpy as np

from survlab.data.cohort.clinical import ClinicalEncoder
from survlab.data.cohort.targets import LabelSpec
from survlab.data.cohort.time_bins import TimeBins
from survlab.data.fitted_plan import (
    FORMAT,
    FoldFields,
    ImagingScalers,
    dims_from_dict,
    dims_to_dict,
)
from survlab.data.modalities.genomics import GeneGroups, GeneScaler


class FoldJson(FoldFields):
    """`FoldPreprocessing`'s JSON form (module doc)."""

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict[str, Any]:
        """The JSON-safe state (`preprocessing.json`, format survlab.preprocessing/1)."""
        if self.dims is None:
            raise ValueError(f"data={self.cohort} fold {self.fold}: dims not set (the data module sets them)")
        return {
            "format": FORMAT,
            "cohort": self.cohort,
            "fold": int(self.fold),
            "split_hash": self.split_hash,
            "modalities": list(self.modalities),
            "clinical_columns": list(self.clinical_columns),
            "endpoints": self.endpoints,
            "time_bins": {n: b.to_dict() for n, b in self.endpoint_bins.items()},
            "train_survival": {
                n: {"time": np.asarray(t, float).tolist(), "event": np.asarray(e, bool).astype(int).tolist()}
                for n, (t, e) in self.train_outcomes.items()
            },
            "labels": {
                n: {
                    "column": spec.column,
                    "classes": list(self.classes[n]),
                    "ordinal": spec.ordinal,
                    "train_counts": np.asarray(self.label_counts[n]).tolist(),
                }
                for n, spec in self.label_specs.items()
            },
            "slide_labels": {n: list(c) for n, c in self.slide_classes.items()},
            "primary_label": self.primary_label,
            "genomics": {"groups": self.gene_groups.to_dict(), "scaler": self.gene_scaler.to_dict()}
            if self.gene_groups is not None and self.gene_scaler is not None
            else None,
            "clinical": self.clinical_encoder.to_dict() if self.clinical_encoder is not None else None,
            "imaging": {
                "dims": dict(self.imaging.dims),
                "encoders": {n: e.to_dict() for n, e in self.imaging.encoders.items()},
            }
            if self.imaging is not None
            else None,
            "dims": dims_to_dict(self.dims),
            "cox_baseline": dict(self.cox_baseline),
            # only when some training patients lacked a modality (data.missing=keep): older files lack the key
            **({"absent_in_training": dict(self.absent_in_training)} if self.absent_in_training else {}),
        }

    def changed_keys(self, saved: dict[str, Any]) -> list[str]:
        """Keys of a saved state (`to_json()` of the same fold, e.g. a run's preprocessing.json) that this refit
        differs in: the cohort's files or split changed since. The Cox baseline is left out (recorded after testing)."""
        now = self.to_json()
        return [k for k in saved if k != "cox_baseline" and json.dumps(saved[k]) != json.dumps(now.get(k))]

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> Self:  # FoldPreprocessing (fitted.py imports this module)
        """The inverse of `to_json` (a preprocessing.json of any survlab version writing format
        survlab.preprocessing/1)."""
        if state.get("format") != FORMAT:
            raise ValueError(f"preprocessing state of format {state.get('format')!r}, expected {FORMAT!r}")
        labels = state.get("labels") or {}
        gen, img = state.get("genomics"), state.get("imaging")
        return cls(
            cohort=str(state["cohort"]),
            fold=int(state["fold"]),
            split_hash=str(state["split_hash"]),
            modalities=tuple(state["modalities"]),
            clinical_columns=list(state.get("clinical_columns") or []),
            endpoint_bins={n: TimeBins.from_dict(b) for n, b in state["time_bins"].items()},
            train_outcomes={
                n: (np.asarray(r["time"], float), np.asarray(r["event"], bool))
                for n, r in state["train_survival"].items()
            },
            label_specs={
                n: LabelSpec(n, d["column"], tuple(d["classes"]), bool(d["ordinal"]))
                for n, d in labels.items()
            },
            classes={n: tuple(d["classes"]) for n, d in labels.items()},
            label_counts={n: np.asarray(d["train_counts"], dtype=np.int64) for n, d in labels.items()},
            slide_classes={n: tuple(c) for n, c in (state.get("slide_labels") or {}).items()},
            primary_label=state.get("primary_label"),
            gene_groups=GeneGroups.from_dict(gen["groups"]) if gen else None,
            gene_scaler=GeneScaler.from_dict(gen["scaler"]) if gen else None,
            clinical_encoder=ClinicalEncoder.from_dict(state["clinical"]) if state.get("clinical") else None,
            imaging=ImagingScalers(
                dict(img["dims"]), {n: ClinicalEncoder.from_dict(e) for n, e in img["encoders"].items()}
            )
            if img
            else None,
            dims=dims_from_dict(state["dims"]),
            cox_baseline=dict(state.get("cox_baseline") or {}),
            absent_in_training={k: int(v) for k, v in (state.get("absent_in_training") or {}).items()},
        )
