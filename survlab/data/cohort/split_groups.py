"""Site-preserved folds (`splits.group`, e.g. the tissue-source site): every group's patients land in ONE fold's test
part, and the inner validation (and calibration) part is carved from whole groups of the training part too, each
draw balancing the same strata as the random folds across folds as well as the groups allow (StratifiedGroupKFold's
greedy, best of several orders: `_group_kfold`). A group holding more than a fold's share of the patients is an error
naming it. The group of each patient is a cohort column, or for `site` the tissue-source site of TCGA barcodes
(`group_column`, `tcga_sites`).

    >>> tcga_sites(["TCGA-A7-0001", "TCGA-BH-0002"]).tolist()
    ['A7', 'BH']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from survlab.data.cohort.ids import _first_ids
from survlab.data.cohort.split_parts import calibration_rng


def _group_kfold(
    strata: np.ndarray, groups: np.ndarray, n_splits: int, rng: np.random.Generator, n_candidates: int = 16
) -> np.ndarray:
    """Fold index 0..n_splits-1 per item [N]: whole groups per fold, the count of every stratum and the fold sizes
    balanced across folds as well as the groups allow. What scikit-learn's StratifiedGroupKFold does (greedy: each
    group to the fold where it adds least imbalance), but with larger groups placed first, improved by swapping
    groups between folds, and the best of `n_candidates` randomised orders kept (StratifiedGroupKFold's own greedy left test-fold event rates of 0.31..0.63
    on a cohort that allows 0.42..0.48). Deterministic given `rng`."""
    g_names, g = np.unique(groups.astype(str), return_inverse=True)
    _, y = np.unique(strata.astype(str), return_inverse=True)
    counts = np.zeros((len(g_names), y.max() + 1))
    np.add.at(counts, (g, y), 1.0)
    counts = np.hstack([counts, counts.sum(1, keepdims=True)])  # the last column: group size
    target = counts.sum(0) / n_splits
    best, best_cost = None, np.inf
    for _ in range(n_candidates):
        order = np.argsort(-counts[:, -1] * rng.uniform(0.7, 1.3, len(g_names)), kind="stable")
        fold_counts, assign = np.zeros((n_splits, counts.shape[1])), np.empty(len(g_names), dtype=int)
        for j in order:
            gain = ((fold_counts + counts[j] - target) ** 2 - (fold_counts - target) ** 2).sum(1)
            assign[j] = int(np.argmin(gain))
            fold_counts[assign[j]] += counts[j]
        _improve(assign, fold_counts, counts, target)
        cost = float(((fold_counts - target) ** 2).sum())
        if cost < best_cost - 1e-9 and (fold_counts[:, -1] > 0).all():
            best, best_cost = assign.copy(), cost
    if best is None:
        raise ValueError(
            f"cannot spread {len(g_names)} groups over {n_splits} folds with every fold non-empty"
        )
    return best[g]


def _improve(assign: np.ndarray, fold_counts: np.ndarray, counts: np.ndarray, target: np.ndarray) -> None:
    """Local search in place: swap two groups of different folds while that lowers the squared imbalance
    sum((fold_counts - target)^2) (for each group, the best swap partner over all groups at once)."""
    sq = lambda x: ((x - target) ** 2).sum(-1)  # noqa: E731
    improved, passes = True, 0
    while improved and passes < 100:
        improved, passes = False, passes + 1
        for i in range(len(assign)):
            a, b = assign[i], assign
            moved = counts - counts[i]  # [G, S]: what fold a gains (and fold b loses) by swapping i with j
            delta = (
                sq(fold_counts[a] + moved)
                - sq(fold_counts[a])
                + sq(fold_counts[b] - moved)
                - sq(fold_counts[b])
            )
            delta[b == a] = np.inf
            j = int(np.argmin(delta))
            if delta[j] < -1e-9:
                fold_counts[a] += moved[j]
                fold_counts[b[j]] -= moved[j]
                assign[i], assign[j] = b[j], a
                improved = True


def _carve_groups(
    split: np.ndarray,
    rows: np.ndarray,
    inner: np.ndarray,
    groups: np.ndarray,
    fraction: float,
    part: str,
    group_name: str,
    fold: int,
    rng: np.random.Generator,
) -> None:
    """Mark about `fraction` of `rows` (indices into `split` [N]) as `part` in place, by whole groups, `inner`
    strata balanced: the first of round(1 / fraction) StratifiedGroupKFold folds of those rows."""
    if fraction <= 0:
        return
    n_splits = max(2, int(round(1.0 / fraction)))
    n_groups = len(set(groups[rows].tolist()))
    if n_groups < n_splits:
        raise ValueError(
            f"splits.group={group_name}: fold {fold}'s training part has {n_groups} {group_name} value(s), too few "
            f"to carve a {part} part of {fraction:g} by whole groups (needs {n_splits}); use fewer folds or a larger "
            f"{'val_fraction' if part == 'val' else 'calibration_fraction'}"
        )
    k = _group_kfold(inner[rows], groups[rows], n_splits, rng)
    split[rows[k == 0]] = part


def _group_splits(
    case_ids: np.ndarray,
    strata: np.ndarray,
    inner: np.ndarray,
    groups: np.ndarray,
    group_name: str,
    folds: int,
    val_fraction: float,
    calibration_fraction: float,
    rng: np.random.Generator,
    seed: int,
    repeat: int,
) -> list[pd.DataFrame]:
    """Site-preserved outer folds + inner val / calibration parts (module doc); arrays [N] sorted by case_id."""
    missing = [c for c, g in zip(case_ids, groups, strict=True) if pd.isna(g) or str(g) == ""]
    if missing:
        raise ValueError(
            f"splits.group={group_name}: {len(missing)} patient(s) have no {group_name} value: "
            f"{_first_ids(missing)}; fill the column (every patient needs a group)"
        )
    groups = np.asarray([str(g) for g in groups], dtype=object)
    sizes = pd.Series(groups).value_counts()
    share = len(case_ids) / folds
    if len(sizes) < folds:
        raise ValueError(
            f"splits.group={group_name}: only {len(sizes)} {group_name} value(s) ({_first_ids(sorted(sizes.index))}) "
            f"for {folds} folds; use at most {len(sizes)} folds"
        )
    big = sizes[sizes > share]
    if len(big):
        raise ValueError(
            f"splits.group={group_name}: {group_name} {big.index[0]!r} has {int(big.iloc[0])} of {len(case_ids)} "
            f"patients, more than a fold's share ({share:.0f} = {len(case_ids)}/{folds}): a {group_name} must fit in one "
            f"fold's test part; use fewer folds"
        )
    outer = _group_kfold(strata, groups, folds, rng)
    out = []
    for k in range(folds):
        split = np.where(outer == k, "test", "train").astype(object)
        train = np.flatnonzero(outer != k)
        _carve_groups(split, train, inner, groups, val_fraction, "val", group_name, k, rng)
        if calibration_fraction > 0:
            rest = train[split[train] == "train"]
            _carve_groups(
                split,
                rest,
                inner,
                groups,
                calibration_fraction,
                "calibration",
                group_name,
                k,
                calibration_rng(seed, k, repeat),
            )
        out.append(pd.DataFrame({"case_id": case_ids, "split": split}))
    return out


#: the regular expression of a TCGA barcode; its second field is the tissue-source site (TSS) code
TCGA_BARCODE = r"^TCGA-([A-Za-z0-9]{2})-[A-Za-z0-9]{4}"


def tcga_sites(case_ids: Sequence[str]) -> np.ndarray | None:
    """The tissue-source site `XX` of every `TCGA-XX-YYYY` case id [N], or None when any id is not a TCGA barcode."""
    sites = pd.Series(list(map(str, case_ids)), dtype=object).str.extract(TCGA_BARCODE, expand=False)
    return None if sites.isna().any() or not len(sites) else sites.to_numpy(dtype=object)


def group_column(cohort: pd.DataFrame, group: str) -> tuple[np.ndarray, str]:
    """The group of every row of `cohort` [N] and where it came from: the column `group` ("column"), else for
    `site` the tissue-source site of TCGA barcodes ("tcga_barcode"); anything else is a one-line error."""
    if group in cohort.columns:
        return cohort[group].to_numpy(dtype=object), "column"
    if group == "site":
        sites = tcga_sites(cohort["case_id"])
        if sites is not None:
            return sites, "tcga_barcode"
        raise ValueError(
            "splits.group=site: the cohort table has no 'site' column and its case ids are not all TCGA barcodes "
            "(TCGA-XX-YYYY, site XX); add a site column to the clinical CSV or name another column in splits.group"
        )
    raise ValueError(
        f"splits.group={group!r} is not a column of the cohort table; name a column (e.g. site, centre) or set "
        f"splits.group=null for random folds"
    )
