"""`PatientRows`: what ONE inference pass of the selected network gives for one set of patients (a fold's training
patients, its test patients, every patient of another cohort), and what every writer of survlab.report reads.

The pass itself is `survlab.runner.predict` (the test patients' rows come from `trainer.test`'s own pass); no writer
runs the network. The container lives here, below the runner, because the writers are its readers.

    rows.objectives["survival"]["risk"]   # [n] risk of each patient, sorted by `index` (row in the full cohort table)
    rows.attention["patches"]             # top-k patch records (dicts), the rows of attention/top_patches.csv
    rows.slide_attention                  # per slide: (slide id, patch_index [n], coords [n, 2], attention [n])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: the top-k attention tables: name -> file attention/top_<name>.csv
ATTENTION_TABLES = ("pathways", "patches", "slides", "slide_patches")

#: one slide's full patch attention (the h5 heatmap files): slide id, patch_index [n], coords [n, 2], attention [n],
#: rows in the slide's file order
SlideAttention = tuple[str, np.ndarray, np.ndarray, np.ndarray]


@dataclass
class PatientRows:
    """Per-patient outputs of one pass over one set of patients.

    objectives: objective name -> the arrays of `Objective.collect` (index [n], risk / time / event / hazard_logits
        [n, K] of a survival objective, probs [n, C] / label [n] of a classification one, probs [n, H] of a horizon
        one), each row (patient, or slide of a slide-level objective) once, sorted by index.
    attention: table name (`ATTENTION_TABLES`) -> top-k records in pass order; empty unless asked for.
    slide_attention: every slide's full patch attention; empty unless the h5 heatmaps are asked for.
    targets: what the batches carried for each patient, in pass order (empty unless asked for): index, case_id,
        time / event / time_bin of the primary endpoint, `label:<name>` (class index, -1 = missing) per label.
    """

    objectives: dict[str, dict[str, np.ndarray]]
    attention: dict[str, list[dict]] = field(default_factory=dict)
    slide_attention: list[SlideAttention] = field(default_factory=list)
    targets: dict[str, np.ndarray] = field(default_factory=dict)


def merged(*parts: PatientRows | None) -> dict[str, dict[str, np.ndarray]]:
    """The objectives' rows of several parts (e.g. inner-train + inner-validation) as one set: each row index once,
    sorted by index."""
    out: dict[str, dict[str, np.ndarray]] = {}
    names = dict.fromkeys(n for p in parts if p is not None for n in p.objectives)
    for name in names:
        pieces = [
            p.objectives[name]
            for p in parts
            if p is not None and len(p.objectives.get(name, {}).get("index", ()))
        ]
        if not pieces:
            continue
        joined = {k: np.concatenate([r[k] for r in pieces]) for k in pieces[0]}
        _, first = np.unique(joined["index"], return_index=True)
        out[name] = {k: v[first] for k, v in joined.items()}
    return out


__all__ = ["ATTENTION_TABLES", "PatientRows", "SlideAttention", "merged"]
