"""Site-preserved folds in a sweep summary (`data.splits.group`): every site's test metrics per job (`site_table`,
sites.csv) and, for a sweep over `+data.splits.group=null,site`, the site-leak gap = random − site-preserved of the
fold mean and of the pooled C-index / AUC with a paired patient-bootstrap CI (`site_leak_gap`, site_gap.csv). Their
summary.md sections are written by survlab.report.sweep_markdown.

    gap = site_leak_gap(s.jobs, s.table, "test/cindex", s.group_keys)   # one row per cohort x model x group
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from survlab.metrics.stats import N_BOOT
from survlab.report.groups import job_group_table
from survlab.report.sweep_stats import _paired_ci

#: the override of site-preserved folds; a sweep over it (`+data.splits.group=null,site`) gives the site-leak gap
GROUP_KEYS = ("data.splits.group", "splits.group")
_NO_GROUP = {"", "null", "None", "none", "~"}


def site_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """One row per completed job x site of its metrics.json ``sites`` (site-preserved folds): cohort, model,
    variant, repeat, fold, site, n, n_events, status and the site's metrics (None = not measurable, see status)."""
    return job_group_table(jobs, "sites", "site")


def _group_key(group_keys: list[str]) -> str | None:
    return next((k for k in group_keys if k in GROUP_KEYS), None)


def site_leak_gap(
    jobs: pd.DataFrame,
    table: pd.DataFrame,
    metric: str,
    group_keys: list[str],
    n_boot: int = N_BOOT,
    boot_seed: int = 0,
) -> pd.DataFrame:
    """Per cohort x model (x other swept keys) x group column: the random-fold row (``data.splits.group`` unset /
    null) and the site-preserved one side by side, and the site-leak gap = random − site-preserved of the fold mean
    of `metric` and of the pooled C-index / AUC (with a paired bootstrap CI over the patients both pooled). Empty
    unless the sweep varied ``data.splits.group`` with a random-fold value."""
    key = _group_key(group_keys)
    if key is None or jobs.empty:
        return pd.DataFrame()
    others = [k for k in group_keys if k != key]
    done = jobs[jobs["status"] == "done"]
    is_random = done[key].astype(str).isin(_NO_GROUP)
    rows = []
    for ident, g in done.groupby(["cohort", "model", *others], sort=True):
        rnd = g[is_random[g.index]]
        if rnd.empty:
            continue
        for value, grp in g[~is_random[g.index]].groupby(key, sort=True):
            ids = dict(zip(["cohort", "model", *others], ident, strict=True))
            row: dict[str, Any] = {**ids, "group": value}
            pooled_col = (
                "pooled_cindex"
                if "pooled_cindex" in table and table["pooled_cindex"].notna().any()
                else "pooled_auc"
            )
            for name, part, val in (("random", rnd, rnd[key].iloc[0]), ("grouped", grp, value)):
                sel = table
                for k, v in {**ids, key: val}.items():
                    sel = sel[sel[k] == v]
                row[f"n_folds_{name}"] = int(len(part))
                row[f"{metric}_{name}"] = float(part[metric].mean()) if metric in part else math.nan
                row[f"{pooled_col}_{name}"] = (
                    float(sel[pooled_col].iloc[0]) if len(sel) and pooled_col in sel else math.nan
                )
            row[f"gap_{metric}"] = row[f"{metric}_random"] - row[f"{metric}_grouped"]
            row[f"gap_{pooled_col}"] = row[f"{pooled_col}_random"] - row[f"{pooled_col}_grouped"]
            ci = _paired_ci(rnd, grp, n_boot, boot_seed)  # random − grouped on the same patients
            row["gap_pooled_ci_low"] = ci.get("pooled_diff_ci_low", math.nan)
            row["gap_pooled_ci_high"] = ci.get("pooled_diff_ci_high", math.nan)
            row["gap_pooled_n"] = ci.get("pooled_diff_n", math.nan)
            rows.append(row)
    return pd.DataFrame(rows)
