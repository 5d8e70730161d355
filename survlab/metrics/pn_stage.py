"""CAMELYON17's rule-based pN stage from slide (lymph node) stages: the baseline a pathologist expects beside a learned
patient head.

The challenge's rule (camelyon17.grand-challenge.org, "Evaluation"; TNM 8th edition, sentinel / axillary nodes), from
the counts of a patient's slides per stage (negative | itc | micro | macro; ITC are not metastases):

    pN0      no micro- or macro-metastasis and no ITC
    pN0(i+)  only ITC
    pN1mi    micro-metastases, no macro-metastasis
    pN1      metastases (micro or macro) in 1-3 nodes, at least one a macro-metastasis
    pN2      metastases (micro or macro) in 4-9 nodes, at least one a macro-metastasis

(CAMELYON17 patients have 5 nodes, so pN2 means 4 or 5 metastatic nodes.) The challenge scores pN stages with
Cohen's kappa, quadratic weights over the ordered stages pN0 < pN0(i+) < pN1mi < pN1 < pN2.

Example:
    >>> pn_stage(["negative", "itc", "micro", "macro", "negative"])
    'pN1'
    >>> pn_stage(["itc", "negative"]), pn_stage(["micro", "micro", "macro", "micro", "negative"])
    ('pN0(i+)', 'pN2')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from survlab.metrics.classification import classification_metrics

SLIDE_STAGES = ("negative", "itc", "micro", "macro")
PN_STAGES = ("pN0", "pN0(i+)", "pN1mi", "pN1", "pN2")


def pn_stage(slide_stages: Sequence[str]) -> str:
    """The challenge's pN stage of one patient from its slides' stages (each one of `SLIDE_STAGES`)."""
    stages = [str(s) for s in slide_stages]
    unknown = sorted(set(stages) - set(SLIDE_STAGES))
    if unknown:
        raise ValueError(f"pN rule: slide stage(s) {unknown} unknown; expected {list(SLIDE_STAGES)}")
    macro, micro, itc = (stages.count(s) for s in ("macro", "micro", "itc"))
    if macro:
        return "pN1" if macro + micro <= 3 else "pN2"
    if micro:
        return "pN1mi"
    return "pN0(i+)" if itc else "pN0"


def pn_rule_table(slides: pd.DataFrame, stage_col: str = "pred") -> pd.DataFrame:
    """Per patient (rows of `slides`: case_id, `stage_col` = a slide's stage) -> DataFrame case_id, n_negative,
    n_itc, n_micro, n_macro, pn_rule (sorted by case_id)."""
    missing = [c for c in ("case_id", stage_col) if c not in slides.columns]
    if missing:
        raise ValueError(f"pN rule: slide table lacks column(s) {missing} (has {list(slides.columns)})")
    rows = []
    for case, group in slides.groupby("case_id", sort=True):
        stages = group[stage_col].astype(str).tolist()
        rows.append(
            {
                "case_id": case,
                **{f"n_{s}": stages.count(s) for s in SLIDE_STAGES},
                "pn_rule": pn_stage(stages),
            }
        )
    return pd.DataFrame(rows)


def pn_rule_metrics(predicted: Sequence[str], truth: Sequence[str]) -> dict[str, Any]:
    """Classification metrics of rule-based pN stages against the true ones (ordinal: kappa is quadratic) -> dict
    (accuracy, balanced_accuracy, ..., kappa, n)."""
    index = {s: i for i, s in enumerate(PN_STAGES)}
    bad = sorted({str(s) for s in [*predicted, *truth]} - set(PN_STAGES))
    if bad:
        raise ValueError(f"pN rule metrics: stage(s) {bad} unknown; expected {list(PN_STAGES)}")
    pred = np.array([index[str(s)] for s in predicted], dtype=int)
    labels = np.array([index[str(s)] for s in truth], dtype=int)
    probs = np.eye(len(PN_STAGES))[pred]  # one-hot: the rule gives a stage, not a probability
    metrics = classification_metrics(probs, labels, ordinal=True)
    metrics.pop("auroc", None)  # undefined for hard decisions
    return {**metrics, "n": int(len(labels))}


__all__ = ["PN_STAGES", "SLIDE_STAGES", "pn_rule_metrics", "pn_rule_table", "pn_stage"]
