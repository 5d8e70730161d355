"""Sweep summary: one table (model × cohort × metric) from the job dirs of a Hydra multirun.

A sweep dir holds one output dir per job (``<model>/<cohort>/fold<k>`` by default). Each job dir has, when it
finished, ``metrics.json`` + ``predictions.csv`` + a ``DONE`` marker; when it raised, a ``FAILED`` marker; and when
it was started but neither (killed, still running) it is *incomplete*. A job the latest multirun *refused* (its dir
holds another configuration's job, left untouched; listed in ``outcomes.jsonl``) is counted as refused, not as
completed, whatever its dir holds. :func:`summarize_sweep` scans all of them and builds:

Rows are grouped by model × cohort × every other key the sweep varied (read from each job's ``job.json``: e.g.
``seed`` or ``model.task.lr``), so ``-m seed=0,1`` gives one row per seed; ``over=["seed"]`` (``--over seed``)
pools the seeds of a row instead (mean ± std over folds × seeds, pooled C-index per seed, averaged). The repeats of
repeated k-fold (``-m ... data.splits.repeat=0,1,2``: column ``repeat``) are always pooled: mean ± std over folds ×
repeats, one pooled C-index per repeat (``pooled_cindex_by_repeat``), averaged in ``pooled_cindex``.

- ``summary.csv`` — one row per model × cohort (× swept values): ``n_folds`` (completed jobs), ``n_failed``, ``n_refused``, ``n_incomplete``, for
  every numeric metric ``<metric>_mean`` / ``<metric>_std`` (sample std, ddof=1, over completed folds; NaN values,
  e.g. an undefined IBS, are left out and counted in ``<metric>_n``), ``pooled_cindex`` (Harrell C of the
  out-of-fold predictions over the pairs within a fold, `survlab.metrics.stats.pooled_statistic`) with its patient-bootstrap 95% CI (``pooled_cindex_ci_low/_high``; for
  classification ``pooled_auc`` and its CI) and the paired comparison against the reference model (``vs_ref_*``).
- ``paired.csv`` — the per-fold differences behind the comparison (model − reference, paired by fold, seed and
  repeat).
- ``summary.md`` — the same as Markdown, plus the failed and incomplete jobs (model, cohort, fold, first error line).
- ``comparison.png`` — the chosen metric by model, grouped by cohort: mean ± std bars with per-fold points.
- ``sites.csv`` — site-preserved folds (``data.splits.group``): every site's test metrics from its job's
  metrics.json ``sites`` (C-index / AUROC, or None with the reason, e.g. too few events), one row per job × site.
- ``availability.csv`` — cohorts with patients missing a modality: every availability pattern's test metrics
  (metrics.json ``availability``: ``wsi+genomics`` / ``wsi`` / ...), one row per job × pattern; summary.md's
  "Metrics per availability pattern" gives per model × cohort × pattern the fold mean ± sd and n.
- ``site_gap.csv`` — a sweep over ``+data.splits.group=null,site``: per model × cohort the random-fold and the
  site-preserved rows side by side and the site-leak gap (random − site-preserved) of the fold mean and of the
  pooled C-index / AUC, with a paired patient-bootstrap CI (same patients, same resamples).

Paired comparison (per cohort, each model vs the reference, on ``metric``, default ``test/cindex``): per-fold
differences d_j = model_j − reference_j over the folds (× repeats) both completed; mean difference;
``p_corrected``: the two-sided Nadeau–Bengio corrected resampled t-test (survlab.metrics.stats; folds' training
sets overlap, so the plain t-test is anti-conservative), n_test/n_train = 1/(k − 1) with k from the jobs'
protocol.json; ``p_holm``: ``p_corrected`` Holm-adjusted over the models compared with the reference on the cohort;
``pooled_diff``: the difference of pooled C-index / AUC on the patients both models predicted, with a percentile
bootstrap CI on the same patient resamples. Kept for reference and labelled as such: ``p_ttest_uncorrected``
(``scipy.stats.ttest_rel``) and, only when n ≥ 5, the Wilcoxon signed-rank p (``p_wilcoxon``), both treating folds
as independent.

Example:
    >>> from survlab.report.sweep import summarize_sweep          # doctest: +SKIP
    >>> s = summarize_sweep("logs/multiruns/2026-01-01_12-00-00", reference="abmil")  # doctest: +SKIP
    >>> s.table[["model", "cohort", "n_folds", "test/cindex_mean", "pooled_cindex"]]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

from survlab.metrics.stats import N_BOOT, holm
from survlab.report.groups import availability_summary, job_group_table
from survlab.report.sites import site_leak_gap, site_table
from survlab.report.sweep_jobs import collect_jobs
from survlab.report.sweep_markdown import to_markdown
from survlab.report.sweep_plot import plot_comparison
from survlab.report.sweep_stats import PAIRED_COLUMNS, _paired
from survlab.report.sweep_table import (
    PREFERRED_METRICS,
    SweepSummary,
    _group_keys,
    _group_table,
    _metric_columns,
    _variant,
)
from survlab.utils.files import atomic_path, atomic_write

log = logging.getLogger(__name__)

__all__ = ["SUMMARY_FILES", "summarize_sweep"]

SUMMARY_FILES = (
    "summary.csv",
    "summary.md",
    "paired.csv",
    "comparison.png",
    "sites.csv",
    "site_gap.csv",
    "availability.csv",
)


def summarize_sweep(
    sweep_dir: str | os.PathLike,
    reference: str | None = None,
    metric: str | None = None,
    out_dir: str | os.PathLike | None = None,
    write: bool = True,
    plot: bool = True,
    over: Sequence[str] = (),
    n_boot: int = N_BOOT,
    boot_seed: int = 0,
) -> SweepSummary:
    """Scan ``sweep_dir`` and build (and by default write into ``out_dir`` = ``sweep_dir``) the summary.

    ``reference``: the model the others are compared with, per cohort, on ``metric``. ``None`` picks the first
    model in alphabetical order (stated in summary.md); a name absent from the sweep raises ``ValueError``.
    ``over``: swept keys to pool within a row instead of splitting rows by (e.g. ``["seed"]``); the repeats of
    repeated k-fold (``data.splits.repeat``) are always pooled. ``n_boot`` patient bootstrap resamples (seed
    ``boot_seed``; 0 skips the bootstrap) give the CIs of the pooled C-index / AUC and of the paired differences.
    """
    sweep = Path(sweep_dir)
    if not sweep.is_dir():
        raise FileNotFoundError(f"sweep dir {sweep} does not exist")
    jobs = collect_jobs(sweep)
    metrics = _metric_columns(jobs) if not jobs.empty else []
    if (
        metric is None
    ):  # the headline metric the jobs report: C-index for survival, balanced accuracy for labels
        metric = next((m for m in PREFERRED_METRICS if m in metrics), "test/cindex")
    models = sorted(jobs["model"].unique()) if not jobs.empty else []
    auto_ref = False
    if reference is None and models:
        reference, auto_ref = models[0], True
    elif reference is not None and reference not in models:
        raise ValueError(f"reference model {reference!r} is not in the sweep (models: {models})")
    group_keys = _group_keys(jobs, over)
    if not jobs.empty:
        jobs["variant"] = [_variant(r, group_keys) for r in jobs.to_dict("records")]
    table = _group_table(jobs, metrics, group_keys, n_boot, boot_seed)
    if not table.empty:
        table.insert(0, "variant", [_variant(r, group_keys) for r in table.to_dict("records")])
    paired, stats_by_group = _paired(jobs, reference, metric, group_keys, n_boot, boot_seed)
    keys = [tuple([r["cohort"], r["model"], *(r[k] for k in group_keys)]) for r in table.to_dict("records")]
    for k in PAIRED_COLUMNS:
        table[f"vs_ref_{k}"] = [stats_by_group.get(key, {}).get(k, math.nan) for key in keys]
    if not table.empty:  # Holm over the models compared with the reference, per cohort
        adjusted = table.groupby("cohort")["vs_ref_p_corrected"].transform(lambda p: holm(p.to_numpy()))
        table.insert(table.columns.get_loc("vs_ref_p_corrected") + 1, "vs_ref_p_holm", adjusted)
    table.insert(2 + len(group_keys), "reference", reference if reference is not None else "")
    summary = SweepSummary(
        sweep, jobs, table, paired, reference, metric, metrics, group_keys, n_boot=n_boot, boot_seed=boot_seed
    )
    summary.sites = site_table(jobs)
    summary.site_gap = site_leak_gap(jobs, table, metric, group_keys, n_boot, boot_seed)
    summary.availability = job_group_table(jobs, "availability", "pattern")
    summary.availability_summary = availability_summary(summary.availability)
    if write:
        out = Path(out_dir) if out_dir is not None else sweep
        out.mkdir(parents=True, exist_ok=True)
        for name, frame in (("summary.csv", table), ("paired.csv", paired)):
            with atomic_path(out / name) as tmp:
                frame.to_csv(tmp, index=False)
        atomic_write(out / "summary.md", to_markdown(summary, auto_reference=auto_ref))
        summary.files = {
            "summary.csv": out / "summary.csv",
            "paired.csv": out / "paired.csv",
            "summary.md": out / "summary.md",
        }
        for name, frame in (
            ("sites.csv", summary.sites),
            ("site_gap.csv", summary.site_gap),
            ("availability.csv", summary.availability),
        ):
            if not frame.empty:  # only for sweeps with site-preserved folds / patients missing a modality
                with atomic_path(out / name) as tmp:
                    frame.to_csv(tmp, index=False)
                summary.files[name] = out / name
        if plot and not jobs.empty:
            try:
                summary.files["comparison.png"] = plot_comparison(summary, out / "comparison.png")
            except Exception as e:  # noqa: BLE001 - a plotting problem must not lose the tables
                log.warning("comparison plot failed: %s", e)
    return summary
