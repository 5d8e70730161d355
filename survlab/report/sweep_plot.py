"""comparison.png of a sweep summary (`plot_comparison`): the chosen metric by model, grouped by cohort: mean ± std
(◆ with whiskers), per-fold points and the pooled C-index (✕), the oracle C-index dashed when the cohort has one.

    plot_comparison(summary, out / "comparison.png")
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from survlab.report.sweep_table import SweepSummary
from survlab.utils.files import atomic_path


def plot_comparison(s: SweepSummary, path: str | os.PathLike) -> Path:
    """``metric`` by model, grouped by cohort: ◆ = mean with ± std whiskers, dots = folds, ✕ = pooled C."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    done = s.jobs[s.jobs["status"] == "done"]
    cohorts = sorted(s.jobs["cohort"].unique())
    models = sorted(s.jobs["variant"].unique())
    present = {
        c: [m for m in models if ((done["variant"] == m) & (done["cohort"] == c)).any()] for c in cohorts
    }
    width = 0.8 / max([len(v) for v in present.values()] + [1])
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 + 0.5 * sum(len(v) for v in present.values())) + 1.6, 3.6))
    lows: list[float] = []
    highs: list[float] = []
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    rng = np.random.default_rng(0)
    labelled: set[str] = set()
    for i, cohort in enumerate(cohorts):
        for k, model in enumerate(present[cohort]):
            color = colors[models.index(model) % len(colors)]
            x = i - width * len(present[cohort]) / 2 + width * (k + 0.5)
            vals = done[(done["variant"] == model) & (done["cohort"] == cohort)]
            vals = vals[s.metric].to_numpy(float) if s.metric in vals else np.array([])
            vals = vals[np.isfinite(vals)]
            if len(vals):
                lows.append(float(vals.min()))
                highs.append(float(vals.max()))
                # mean ± std as a point with whiskers, not a bar: a bar's length would depend on the axis floor
                ax.errorbar(
                    x,
                    vals.mean(),
                    yerr=vals.std(ddof=1) if len(vals) > 1 else None,
                    fmt="D",
                    ms=6,
                    color=color,
                    capsize=3,
                    elinewidth=1.5,
                    zorder=4,
                    label=None if model in labelled else model,
                )
                labelled.add(model)
                ax.scatter(
                    x + rng.uniform(-width * 0.25, width * 0.25, len(vals)),
                    vals,
                    s=9,
                    color=color,
                    alpha=0.6,
                    zorder=3,
                )
            row = s.table[(s.table["variant"] == model) & (s.table["cohort"] == cohort)]
            if s.metric == "test/cindex" and len(row) and np.isfinite(row["pooled_cindex"].iloc[0]):
                ax.scatter([x], [row["pooled_cindex"].iloc[0]], marker="x", color="crimson", s=25, zorder=4)
    if "oracle_cindex" in done and s.metric == "test/cindex":
        for i, cohort in enumerate(cohorts):
            o = done.loc[done["cohort"] == cohort, "oracle_cindex"].to_numpy(float)
            o = o[np.isfinite(o)]
            if len(o):
                ax.hlines(o.mean(), i - 0.45, i + 0.45, colors="grey", linestyles="--", linewidth=1)
                highs.append(float(o.mean()))
    ax.axhline(0.5, color="lightgrey", linewidth=0.8, zorder=0)
    ax.set_xticks(range(len(cohorts)), cohorts)
    ax.set_ylabel(s.metric)
    extra = ", pooled (✕), oracle (dashed)" if s.metric == "test/cindex" else ""
    ax.set_title(f"{s.metric}: mean ± std (◆), folds (dots){extra}", fontsize=9)
    if lows:  # the axis spans every fold's value (and chance, 0.5), with a margin; nothing is clipped
        lo, hi = min(min(lows), 0.5), max(max(highs), 0.5)
        pad = 0.05 * max(hi - lo, 0.1)
        ax.set_ylim(lo - pad, hi + pad)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return out
