"""summary.md of a sweep summary (`to_markdown`): the jobs count, metrics over folds, the paired comparison with
the reference model, the site and availability sections, and the failed / refused / incomplete jobs.

    atomic_write(out / "summary.md", to_markdown(summary))
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from survlab.report.groups import availability_markdown
from survlab.report.sweep_table import PREFERRED_METRICS, SweepSummary


def _sites_markdown(s: SweepSummary) -> list[str]:
    """summary.md sections of site-preserved folds: the site-leak gap and the per-site metrics."""
    lines: list[str] = []
    gap = s.site_gap
    if not gap.empty:
        pooled = "pooled_cindex" if "pooled_cindex_random" in gap else "pooled_auc"
        lines += [
            "## Site-leak gap: random vs site-preserved folds",
            "",
            f"The same model under random folds and under folds that keep every site (`data.splits.group`) in one "
            f"fold; gap = random − site-preserved. A positive gap is accuracy that came from seeing a test patient's "
            f"site in training. Pooled gap CI: paired percentile bootstrap over the patients both pooled "
            f"({s.n_boot} resamples).",
            "",
            f"| cohort | model | group | {s.metric} random | {s.metric} site-preserved | gap | {pooled} random "
            f"| {pooled} site-preserved | gap (95% CI) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in gap.to_dict("records"):
            lines.append(
                f"| {r['cohort']} | `{r['model']}` | {r['group']} | {_fmt(r[f'{s.metric}_random'])} "
                f"| {_fmt(r[f'{s.metric}_grouped'])} | {_fmt(r[f'gap_{s.metric}'], 4)} | {_fmt(r[f'{pooled}_random'])} "
                f"| {_fmt(r[f'{pooled}_grouped'])} | {_fmt(r[f'gap_{pooled}'], 4)}"
                f"{_fmt_ci(r['gap_pooled_ci_low'], r['gap_pooled_ci_high'], 4)} |"
            )
        lines.append("")
    if not s.sites.empty:
        value_cols = [c for c in s.sites.columns if c.endswith(("/cindex", "/auroc"))]
        lines += [
            "## Per-site test metrics (site-preserved folds)",
            "",
            "Each site is tested in exactly one fold (per repeat); a site with too few events (or patients per class) "
            "is reported as such, not as a number. All rows: sites.csv.",
            "",
            "| model | cohort | repeat | fold | site | n | events | "
            + " | ".join(value_cols)
            + " | status |",
            "|" + "---|" * (8 + len(value_cols)),
        ]
        for r in s.sites.to_dict("records"):
            vals = [_fmt(r.get(c)) if r.get(c) is not None else "–" for c in value_cols]
            ev = r.get("n_events")
            lines.append(
                f"| `{r['variant']}` | {r['cohort']} | {r['repeat']} | {r['fold']} | {r['site']} | {r.get('n')} "
                f"| {'–' if ev is None or (isinstance(ev, float) and math.isnan(ev)) else int(ev)} | "
                + " | ".join(vals)
                + f" | {r.get('status', '')} |"
            )
        lines.append("")
    return lines


def _not_done(row: dict[str, Any]) -> str:
    """' (+1 failed, +1 incomplete)': the row's jobs that are not in its fold means and pooled C-index (its folds
    missing from them), '' when every job completed."""
    parts = [
        f"+{int(row[k])} {word}"
        for k, word in (("n_failed", "failed"), ("n_incomplete", "incomplete"), ("n_refused", "refused"))
        if row.get(k)
    ]
    return f" ({', '.join(parts)})" if parts else ""


def _fmt(x: float, digits: int = 3) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _fmt_ci(lo: Any, hi: Any, digits: int = 3) -> str:
    """' [lo, hi]' when both are finite, else ''."""
    ok = lo is not None and hi is not None and np.isfinite(lo) and np.isfinite(hi)
    return f" [{lo:.{digits}f}, {hi:.{digits}f}]" if ok else ""


def _fmt_p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "–"
    return f"{p:.2g}" if p >= 1e-3 else "<0.001"


def to_markdown(s: SweepSummary, auto_reference: bool = False) -> str:
    """summary.md: main table, paired comparison, per-fold differences, failed and incomplete jobs."""
    lines = [f"# Sweep summary: `{s.sweep_dir}`", ""]
    jobs = s.jobs
    n = {
        k: int((jobs["status"] == k).sum()) if not jobs.empty else 0
        for k in ("done", "failed", "refused", "incomplete")
    }
    lines += [
        f"Jobs: {len(jobs)} — {n['done']} completed, {n['failed']} failed, {n['refused']} refused (not run, "
        f"their dirs left as they were), {n['incomplete']} incomplete."
        if n["refused"]
        else f"Jobs: {len(jobs)} — {n['done']} completed, {n['failed']} failed, {n['incomplete']} incomplete.",
        "",
    ]
    if s.table.empty:
        return "\n".join(lines + ["No jobs found.", ""])
    shown = [m for m in PREFERRED_METRICS if m in s.metrics and m not in {"n_test", "wall_s"}]
    auc = "pooled_auc" in s.table and s.table["pooled_auc"].notna().any()
    header = ["model", "cohort", "folds"] + [f"{m} (mean ± std)" for m in shown] + ["pooled C-index (95% CI)"]
    header += ["pooled AUC (95% CI)"] if auc else []
    repeats = "n_repeats" in s.table and (s.table["n_repeats"] > 1).any()
    lines += [
        "## Metrics over folds",
        "",
        "Mean ± sample std (ddof=1) over completed folds"
        + (" × repeats (repeated k-fold, `data.splits.repeat`)" if repeats else "")
        + "; pooled C-index = Harrell C of the out-of-fold predictions over the pairs within a fold (each fold's model "
        "has its own risk scale)"
        + (
            ", one pool per repeat, averaged (per repeat: summary.csv `pooled_cindex_by_repeat`)"
            if repeats
            else ""
        )
        + f"; 95% CI: percentile bootstrap over patients ({s.n_boot} seeded resamples, seed {s.boot_seed}); "
        "(n=k): the metric was defined in k folds only; folds (+failed / incomplete / refused): jobs left out of "
        "the means and the pool. All metrics: summary.csv.",
        "",
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in s.table.to_dict("records"):
        cells = [
            f"`{r['variant']}`",
            r["cohort"],
            f"{r['n_folds']}"
            + (f" ({r['n_repeats']} repeats)" if r.get("n_repeats", 0) > 1 else "")
            + _not_done(r),
        ]
        for m in shown:
            mean, std = r.get(f"{m}_mean", math.nan), r.get(f"{m}_std", math.nan)
            n_m = int(r.get(f"{m}_n", 0))
            cells.append(
                _fmt(mean)
                + (f" ± {_fmt(std)}" if np.isfinite(std) else "")
                + (f" (n={n_m})" if 0 < n_m < r["n_folds"] else "")
            )
        cells.append(
            _fmt(r["pooled_cindex"]) + _fmt_ci(r.get("pooled_cindex_ci_low"), r.get("pooled_cindex_ci_high"))
        )
        if auc:
            cells.append(
                _fmt(r.get("pooled_auc", math.nan))
                + _fmt_ci(r.get("pooled_auc_ci_low"), r.get("pooled_auc_ci_high"))
            )
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if s.reference is not None:
        how = (
            " (chosen automatically: first model alphabetically; set it with `--reference`)"
            if auto_reference
            else ""
        )
        lines += [
            f"## Paired comparison vs `{s.reference}` on `{s.metric}`{how}",
            "",
            "Per-fold differences (model − reference) over the folds (× repeats) both completed. **p (corrected)**: "
            "two-sided corrected resampled t-test (Nadeau & Bengio 2003; Bouckaert & Frank 2004): variance "
            "(1/(k·r) + n_test/n_train)·s², n_test/n_train = 1/(k − 1), k·r − 1 df. **p (Holm)**: the corrected p "
            "adjusted over the models compared with the reference on the cohort (Holm 1979). **Δ pooled**: "
            "pooled C-index / AUC of the model minus the reference's, on the patients both predicted, with a "
            "percentile bootstrap 95% CI (the same patient resamples for both). The uncorrected paired t-test and "
            "Wilcoxon (n ≥ 5) p-values treat folds as independent although their training sets overlap: they are "
            "anti-conservative, shown for reference only.",
            "",
            "| cohort | model | n | mean diff | std diff | p (corrected) | p (Holm) | Δ pooled (95% CI) "
            "| p (t-test, uncorrected) | p (Wilcoxon, uncorrected) | per-fold diffs |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in s.table.to_dict("records"):
            if r["model"] == s.reference:
                continue
            ref_done = s.jobs[
                (s.jobs["model"] == s.reference)
                & (s.jobs["cohort"] == r["cohort"])
                & (s.jobs["status"] == "done")
            ]
            if ref_done.empty:
                lines.append(
                    f"| {r['cohort']} | `{r['variant']}` | 0 | – | – | – | – | – | – | – | `{s.reference}` not run on this "
                    "cohort |"
                )
                continue
            per_fold = s.paired[(s.paired["model"] == r["model"]) & (s.paired["cohort"] == r["cohort"])]
            for k in s.group_keys:
                per_fold = per_fold[per_fold[k] == r[k]]
            several = per_fold["repeat"].nunique() > 1 if len(per_fold) else False
            diffs = ", ".join(
                (f"r{int(rp)}" if several else "") + f"f{int(f)}: {d:+.3f}"
                for f, rp, d in zip(per_fold["fold"], per_fold["repeat"], per_fold["diff"], strict=True)
            )
            pooled = _fmt(r.get("vs_ref_pooled_diff", math.nan), 4) + _fmt_ci(
                r.get("vs_ref_pooled_diff_ci_low"), r.get("vs_ref_pooled_diff_ci_high"), 4
            )
            lines.append(
                f"| {r['cohort']} | `{r['variant']}` | {int(r['vs_ref_n_paired']) if np.isfinite(r['vs_ref_n_paired']) else 0} "
                f"| {_fmt(r['vs_ref_diff_mean'], 4)} | {_fmt(r['vs_ref_diff_std'], 4)} | {_fmt_p(r['vs_ref_p_corrected'])} "
                f"| {_fmt_p(r['vs_ref_p_holm'])} | {pooled} | {_fmt_p(r['vs_ref_p_ttest_uncorrected'])} "
                f"| {_fmt_p(r['vs_ref_p_wilcoxon'])} | {diffs or '–'} |"
            )
        lines.append("")
    lines += _sites_markdown(s)
    lines += availability_markdown(s.availability_summary)
    bad = jobs[jobs["status"] != "done"]
    if not bad.empty:
        lines += [
            "## Failed, refused and incomplete jobs"
            if (bad["status"] == "refused").any()
            else "## Failed and incomplete jobs",
            "",
            "| status | model | cohort | fold | error | dir |",
            "|---|---|---|---|---|---|",
        ]
        for r in bad.to_dict("records"):
            err = (r.get("error") or "").replace("|", "\\|")[:200]
            rel = os.path.relpath(r["dir"], s.sweep_dir)
            lines.append(
                f"| {r['status']} | `{r.get('variant', r['model'])}` | {r['cohort']} | {r['fold']} | {err} | `{rel}` |"
            )
        lines.append("")
    return "\n".join(lines)
