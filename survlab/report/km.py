"""KM figures by risk group (`km.png`, `plot_km_by_risk`) and their risk-group cutoffs, fitted on the fold's
TRAINING patients with the selected model.

The figure is drawn by lifelines (`KaplanMeierFitter` per risk group with its 95% confidence band, the at-risk table
from `lifelines.plotting.add_at_risk_counts`, the time unit on the x axis), with the log-rank p and the high-vs-low
hazard ratio of survlab.metrics.km.

A run's test patients are put in risk groups by cutoffs (median, or tertiles: `km_groups`) of the predicted risks of
the training patients of the same outer fold — the inner-train AND inner-validation patients, never the test fold —
predicted by the selected (tested) weights: their rows of the run's one prediction pass (survlab.runner.predict),
nothing here runs the network. So a test patient's group does not depend on who else is in the test fold, and an
external cohort is grouped by the same numbers as the internal test fold.

    cutoffs = training_cutoffs(task.objectives, [rows["train"], rows["val"]], "median")  # {objective: cutoffs}
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from survlab.metrics.km import (
    ArrayLike,
    as_numpy,
    hazard_ratio,
    logrank_note,
    logrank_test,
    risk_cutoffs,
    risk_groups,
)
from survlab.report.rows import PatientRows, merged
from survlab.tasks.objective_survival import SurvivalObjective
from survlab.utils.files import atomic_path

log = logging.getLogger("survlab.run")

__all__ = ["km_figure", "km_stats_text", "plot_km_by_risk", "training_risks", "training_cutoffs"]


def training_risks(
    objectives: Mapping[str, Any], parts: Sequence[PatientRows | None]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per survival objective: (row index in the full cohort [n], predicted risk [n]) of the training patients'
    rows `parts` (inner-train, inner-validation: their rows of the run's one prediction pass), each patient once,
    sorted by index; {} without training rows (e.g. an external cohort's data module)."""
    rows = merged(*parts)
    out = {}
    for name, objective in objectives.items():
        r = rows.get(name)
        if not isinstance(objective, SurvivalObjective) or r is None:
            continue
        out[name] = (r["index"].astype(int), r["risk"].astype(float))
    return out


def training_cutoffs(
    objectives: Mapping[str, Any], parts: Sequence[PatientRows | None], method: str = "median"
) -> dict[str, np.ndarray]:
    """Risk-group cutoffs (`survlab.metrics.km.risk_cutoffs`) per survival objective, fitted on `training_risks`."""
    out = {}
    for name, (_, risk) in training_risks(objectives, parts).items():
        out[name] = risk_cutoffs(risk, method)  # type: ignore[arg-type]
        log.debug("KM %s cutoffs %s from %d training patients", name, out[name], len(risk))
    return out


def km_stats_text(p: float, hr: dict[str, float] | None, note: str | None = None) -> str:
    """The statistics on a KM figure: 'HR high vs low 2.31 (95% CI 1.20–4.45)' (when `hr` is given) and
    'log-rank p = 0.012'; an undefined test shows `note` (why there is no p), never 'p=nan'."""
    lines = []
    if hr is not None:
        h = hr.get("hr_high_vs_low", float("nan"))
        lines.append(
            f"HR high vs low {h:.3g} (95% CI {hr['hr_ci_low']:.3g}\u2013{hr['hr_ci_high']:.3g})"
            if np.isfinite(h)
            else "HR high vs low: undefined (a group empty or without events)"
        )
    lines.append(f"log-rank p = {p:.3g}" if np.isfinite(p) else (note or "log-rank: undefined"))
    return "\n".join(lines)


def km_figure(
    time: ArrayLike,
    event: ArrayLike,
    groups: np.ndarray,
    names: list[str],
    time_unit: str = "months",
    title: str = "",
    stats_text: str = "",
) -> tuple[Any, dict[str, Any]]:
    """A KM figure, one lifelines `KaplanMeierFitter` per non-empty group (step curve + 95% CI band + censor ticks),
    with the at-risk table (at risk / censored / events) under the axis, the legend and `stats_text` (HR, log-rank
    p; a text artist with gid 'km_stats') to the right of the axes so neither covers a curve
    -> (figure, {group name: fitted KaplanMeierFitter})."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from lifelines import KaplanMeierFitter
    from lifelines.plotting import add_at_risk_counts

    t, e = as_numpy(time), as_numpy(event).astype(bool)
    fig, ax = plt.subplots(figsize=(7.5, 6.4))
    fitters: dict[str, Any] = {}
    for k, name in enumerate(names):
        mask = groups == k
        if not mask.any():
            continue
        kmf = KaplanMeierFitter(label=f"{name} risk (n={int(mask.sum())})").fit(t[mask], e[mask])
        kmf.plot_survival_function(
            ax=ax, ci_show=True, ci_alpha=0.2, show_censors=True, censor_styles={"ms": 6, "marker": "|"}
        )
        fitters[name] = kmf
    ax.set(xlabel=f"time ({time_unit})", ylabel="survival probability", ylim=(0, 1.05))
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(title, fontsize=9)
    if fitters:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=9, title="risk group")
    if stats_text:
        ax.text(
            1.04, 0.62, stats_text, transform=ax.transAxes, ha="left", va="top", fontsize=9, gid="km_stats"
        )
    if fitters:
        add_at_risk_counts(*fitters.values(), ax=ax, labels=list(fitters))
    fig.tight_layout()
    return fig, fitters


def plot_km_by_risk(
    risk: ArrayLike,
    time: ArrayLike,
    event: ArrayLike,
    path: str | Path,
    method: Literal["median", "tertiles"] = "median",
    title: str = "",
    cutoffs: ArrayLike | None = None,
    time_unit: str = "months",
    vector: tuple[str, ...] = ("pdf",),
    dpi: int = 300,
) -> dict:
    """Plot KM curves per risk group (`km_figure`) to a PNG at `path` (`dpi`, print resolution) and, for each format
    in `vector`, the same figure beside it (km.pdf / km.svg); return {"logrank_p", "chi2", "logrank_note",
    "hr_high_vs_low", "hr_ci_low", "hr_ci_high", "hr_p", "n_per_group", "cutoffs", "curves"} (curves: group name ->
    (times, S(t)) from lifelines' `survival_function_`).

    Groups come from `risk_groups(risk, method, cutoffs)` (pass the training patients' `risk_cutoffs`). The figure
    shows the log-rank p and the high-vs-low hazard ratio with its 95% CI (lifelines Cox, `hazard_ratio`); when the
    test is undefined the p is NaN and the figure says why (`logrank_note`).
    """
    import matplotlib.pyplot as plt

    t, e = as_numpy(time), as_numpy(event).astype(bool)
    r = as_numpy(risk)
    cuts = risk_cutoffs(r, method) if cutoffs is None else np.sort(as_numpy(cutoffs).reshape(-1))
    groups = risk_groups(r, method, cuts)
    names = ["low", "high"] if method == "median" else ["low", "medium", "high"]
    note = logrank_note(groups, e, len(names))
    chi2, p = (float("nan"), float("nan")) if note else logrank_test(t, e, groups)
    if note:
        log.warning("KM %s: %s; no log-rank p", title or path, note)
    hr = hazard_ratio(r, t, e, method, cuts)
    source = "test-set" if cutoffs is None else "training"
    fig, fitters = km_figure(
        t,
        e,
        groups,
        names,
        time_unit,
        f"{title}\n(groups cut at the {source} {method})".strip(),
        stats_text=km_stats_text(p, hr, note),
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
    for fmt in vector:
        with atomic_path(Path(path).with_suffix(f".{fmt}")) as tmp:
            fig.savefig(tmp, format=fmt, bbox_inches="tight")
    plt.close(fig)
    counts = [int((groups == k).sum()) for k in range(len(names))]
    curves = {
        name: (
            kmf.survival_function_.index.to_numpy(float),
            kmf.survival_function_.iloc[:, 0].to_numpy(float),
        )
        for name, kmf in fitters.items()
    }
    return {
        "logrank_p": p,
        "chi2": chi2,
        "logrank_note": note,
        **hr,
        "n_per_group": counts,
        "cutoffs": [float(c) for c in cuts],
        "curves": curves,
    }
