"""The preprocessing a run fitted on its training patients, as plain JSON (`<run dir>/preprocessing.json`), and a
stand-in for the trained data module rebuilt from it (`FittedData`), so that a trained model can be applied to
another cohort later without the training cohort's files (`survlab.runner.evaluate`).

Saved: time-bin edges and training outcomes (IPCW reference) per endpoint, the class order (and training counts) of
every label, the gene groups (exact gene order) and the gene scaler, the clinical encoder (imputation, z-score,
category levels, column order), the CT/PET table encoders, the modality dims the network was built with, and the
split hash. No pickles: every value is a JSON number, string or list.

Example:
    >>> write_preprocessing(dm, run_dir / "preprocessing.json")                    # doctest: +SKIP
    >>> fitted = FittedData.from_state(read_preprocessing(run_dir / "preprocessing.json"))  # doctest: +SKIP
    >>> setup_external(ext_dm, fitted)                                            # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from survlab.data.cohort.clinical import ClinicalEncoder
from survlab.data.cohort.table import TimeBins
from survlab.data.cohort.targets import LabelSpec
from survlab.data.dims import ModalityDims
from survlab.data.modalities.genomics import GeneGroups, GeneScaler
from survlab.utils.files import read_json

FORMAT = "survlab.preprocessing/1"
FILENAME = "preprocessing.json"


def dims_to_dict(dims: ModalityDims) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(dims)))


def dims_from_dict(d: dict[str, Any]) -> ModalityDims:
    """The inverse of `dims_to_dict` (tuples where ModalityDims has tuples)."""
    d = dict(d)
    for key in ("genomic_sizes", "genomic_names", "clinical_names", "endpoints"):
        if d.get(key) is not None:
            d[key] = tuple(d[key])
    d["prompts"] = {n: {c: tuple(s) for c, s in p.items()} for n, p in (d.get("prompts") or {}).items()}
    return ModalityDims(**d)


def preprocessing_state(dm: Any, task: Any = None) -> dict[str, Any]:
    """Everything the set-up CohortDataModule `dm` fitted on its fold's training patients (JSON-safe); with the
    tested `task`, also each Cox objective's training risks (its Breslow baseline for survival curves)."""
    src = dm.sources
    state: dict[str, Any] = {
        "format": FORMAT,
        "cohort": dm.name,
        "fold": int(dm.fold),
        "split_hash": dm.split_hash,
        "modalities": list(dm.modalities),
        "clinical_columns": list(dm.clin_cols),
        "endpoints": [e.name for e in dm.endpoints],
        "time_bins": {n: b.to_dict() for n, b in dm.endpoint_bins.items()},
        "train_survival": {},
        "labels": {},
        "slide_labels": {n: list(c) for n, c in src.slide_classes.items()},
        "primary_label": dm.primary_label,
        "genomics": None,
        "clinical": None,
        "imaging": None,
        "dims": dims_to_dict(dm.dims),
        "cox_baseline": {},
    }
    for name in state["endpoints"]:
        time, event = dm.train_survival(None if name == state["endpoints"][0] else name)
        state["train_survival"][name] = {"time": time.tolist(), "event": event.astype(int).tolist()}
    for name, spec in dm.label_specs.items():
        state["labels"][name] = {
            "column": spec.column,
            "classes": list(src.classes[name]),
            "ordinal": spec.ordinal,
            "train_counts": dm.train_label_counts(name).tolist(),
        }
    if src.genomics is not None:
        state["genomics"] = {"groups": dm.gene_groups.to_dict(), "scaler": dm.gene_scaler.to_dict()}
    if src.clinical is not None:
        state["clinical"] = dm.clinical_encoder.to_dict()
    if src.imaging is not None:
        state["imaging"] = {
            "dims": dict(dm.imaging.dims),
            "encoders": {n: e.to_dict() for n, e in dm.imaging.encoders.items()},
        }
    for name, objective in (getattr(task, "objectives", None) or {}).items():
        risk = getattr(objective, "train_risk", None)
        if getattr(objective, "kind", None) == "cox" and risk is not None:
            state["cox_baseline"][name] = {
                "train_risk": np.asarray(risk, float).tolist(),
                "train_time": np.asarray(objective.train_time, float).tolist(),
                "train_event": np.asarray(objective.train_event, int).tolist(),
            }
    return state


def write_preprocessing(dm: Any, path: Path, task: Any = None) -> None:
    """Write `preprocessing_state(dm, task)` to `path` (plain JSON)."""
    from survlab.utils.outputs import write_json

    write_json(Path(path), preprocessing_state(dm, task))


def read_preprocessing(path: Path) -> dict[str, Any]:
    """A preprocessing.json -> its state; one-line ValueError for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"{path}: no preprocessing.json; the run predates saved preprocessing, re-run it with this "
            f"survlab version"
        )
    try:
        state = read_json(path)  # a key given twice is refused, not silently the last value
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); re-run the training job to rewrite it") from None
    if state.get("format") != FORMAT:
        raise ValueError(
            f"{path}: format {state.get('format')!r}, expected {FORMAT!r}; re-run the training job"
        )
    return state


class FittedData:
    """The trained data module as far as applying the model needs it, rebuilt from a preprocessing state: what
    `setup_external` and `OutcomeTask.fit_references` read (class orders, bins, encoders, training outcomes)."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.name, self.fold = str(state["cohort"]), int(state["fold"])
        self.modalities = tuple(state["modalities"])
        self.clin_cols = list(state["clinical_columns"])
        self.endpoints = tuple(SimpleNamespace(name=n) for n in state["endpoints"])
        self.endpoint = self.endpoints[0] if self.endpoints else None
        self.endpoint_bins = {n: TimeBins.from_dict(b) for n, b in state["time_bins"].items()}
        self.time_bins = self.endpoint_bins[self.endpoint.name] if self.endpoint else None
        self.label_specs = {
            n: LabelSpec(n, d["column"], tuple(d["classes"]), bool(d["ordinal"]))
            for n, d in state["labels"].items()
        }
        self.slide_label_specs = {n: None for n in state["slide_labels"]}
        self.sources = SimpleNamespace(
            classes={n: tuple(d["classes"]) for n, d in state["labels"].items()},
            slide_classes={n: tuple(c) for n, c in state["slide_labels"].items()},
        )
        self.primary_label = state["primary_label"]
        gen = state.get("genomics")
        self.gene_groups = GeneGroups.from_dict(gen["groups"]) if gen else None
        self.gene_scaler = GeneScaler.from_dict(gen["scaler"]) if gen else None
        self.clinical_encoder = (
            ClinicalEncoder.from_dict(state["clinical"]) if state.get("clinical") else None
        )
        img = state.get("imaging")
        self.imaging = (
            SimpleNamespace(
                dims=img["dims"],
                encoders={n: ClinicalEncoder.from_dict(e) for n, e in img["encoders"].items()},
            )
            if img
            else None
        )
        self.dims = dims_from_dict(state["dims"])

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FittedData:
        return cls(state)

    def _endpoint_name(self, endpoint: str | None) -> str:
        names = [e.name for e in self.endpoints]
        if not names:
            raise ValueError(f"the model trained on {self.name} has no survival endpoint")
        return names[0] if endpoint is None else endpoint

    @property
    def bin_edges(self) -> np.ndarray:
        return self.bin_edges_of(None)

    def bin_edges_of(self, endpoint: str | None) -> np.ndarray:
        return self.endpoint_bins[self._endpoint_name(endpoint)].edges

    def train_survival(self, endpoint: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(time [N_train], event [N_train] bool) of the training patients (IPCW reference of the metrics)."""
        ref = self.state["train_survival"][self._endpoint_name(endpoint)]
        return np.asarray(ref["time"], float), np.asarray(ref["event"], bool)

    def train_label_counts(self, label: str, level: str = "patient") -> np.ndarray:
        if level != "patient":
            raise ValueError("slide-level class weights are not saved in preprocessing.json")
        return np.asarray(self.state["labels"][label]["train_counts"], dtype=np.int64)

    @property
    def targets(self) -> dict[str, Any]:
        return {
            "endpoints": [e.name for e in self.endpoints],
            "primary_endpoint": self.endpoint.name if self.endpoint else None,
            "labels": {n: list(c) for n, c in self.sources.classes.items()},
            "ordinal": {n: sp.ordinal for n, sp in self.label_specs.items()},
            "slide_labels": {n: list(c) for n, c in self.sources.slide_classes.items()},
        }


__all__ = ["FILENAME", "FittedData", "preprocessing_state", "read_preprocessing", "write_preprocessing"]
