"""Site-preserved folds (`splits.group`): whole groups per fold, inner val by groups, balance, errors, TCGA sites."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from survlab.data.cohort.split_draw import make_splits
from survlab.data.cohort.split_groups import tcga_sites
from survlab.data.cohort.splits import ensure_splits


def _site_table(n_sites: int = 12, per_site: int = 25, seed: int = 0) -> pd.DataFrame:
    """TCGA-barcoded patients of `n_sites` sites whose event rates differ strongly (0.1 .. 0.8)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sites):
        rate = 0.1 + 0.7 * s / (n_sites - 1)
        for i in range(per_site + (s % 3)):  # unequal site sizes
            rows.append((f"TCGA-{s:02d}-{i:04d}", rng.exponential(30.0), rng.random() < rate, f"{s:02d}"))
    return pd.DataFrame(rows, columns=["case_id", "time", "event", "site"])


def _parts(frame: pd.DataFrame, site_of: pd.Series) -> dict[str, set[str]]:
    return {
        p: set(site_of[frame.loc[frame["split"] == p, "case_id"]])
        for p in ("train", "val", "test", "calibration")
    }


@pytest.mark.parametrize("calibration_fraction", [0.0, 0.2])
def test_every_site_in_one_test_fold_and_inner_parts_respect_sites(calibration_fraction: float) -> None:
    t = _site_table()
    site_of = t.set_index("case_id")["site"]
    frames = make_splits(
        t["case_id"],
        t["time"],
        t["event"],
        folds=5,
        val_fraction=0.2,
        seed=0,
        group=t["site"].to_numpy(),
        group_name="site",
        calibration_fraction=calibration_fraction,
    )
    tested = [s for f in frames for s in _parts(f, site_of)["test"]]
    assert sorted(tested) == sorted(t["site"].unique())  # every site tested in exactly one fold
    for f in frames:
        parts = _parts(f, site_of)
        assert parts["val"] and parts["train"]
        for a, b in [
            ("test", "train"),
            ("test", "val"),
            ("val", "train"),
            ("calibration", "train"),
            ("calibration", "val"),
            ("calibration", "test"),
        ]:
            assert not parts[a] & parts[b], (a, b)  # no site in two parts of a fold
        assert bool(parts["calibration"]) == (calibration_fraction > 0)
    ev = t.set_index("case_id")["event"]
    rates = [ev[f.loc[f["split"] == "test", "case_id"]].mean() for f in frames]
    # balanced as the sites allow: site event rates span 0.1..0.8; scikit-learn's StratifiedGroupKFold and
    # GroupKFold leave test-fold rates 0.18 and 0.22 from the cohort's, survlab's stay within 0.13
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    y, g = t["event"].to_numpy(int), t["site"].to_numpy()
    for cv in (GroupKFold(5), StratifiedGroupKFold(5)):
        ref = [y[te].mean() for _, te in cv.split(y, y, g)]
        assert max(abs(r - ev.mean()) for r in rates) < max(abs(r - ev.mean()) for r in ref) - 0.04
    assert max(abs(r - ev.mean()) for r in rates) < 0.13, rates
    sizes = [int((f["split"] == "test").sum()) for f in frames]
    assert max(sizes) - min(sizes) <= 30  # ~1 site of ~25 patients


def test_a_site_bigger_than_a_folds_share_and_too_few_sites_are_one_line_errors() -> None:
    t = _site_table(n_sites=6, per_site=10)
    big = pd.concat(
        [
            t,
            pd.DataFrame(
                {
                    "case_id": [f"TCGA-00-9{i:03d}" for i in range(40)],
                    "time": 5.0,
                    "event": True,
                    "site": "00",
                }
            ),
        ]
    )
    with pytest.raises(
        ValueError, match=r"splits.group=site: site '00' has 50 of 106 patients, more than a fold's"
    ):
        make_splits(
            big["case_id"],
            big["time"],
            big["event"],
            folds=5,
            group=big["site"].to_numpy(),
            group_name="site",
        )
    with pytest.raises(ValueError, match=r"only 6 site value\(s\) .* for 8 folds; use at most 6 folds"):
        make_splits(
            t["case_id"], t["time"], t["event"], folds=8, group=t["site"].to_numpy(), group_name="site"
        )


def test_tcga_site_derived_recorded_and_hashed_only_when_used(tmp_path: Path) -> None:
    t = _site_table()
    assert list(tcga_sites(["TCGA-A7-A0CE", "TCGA-BH-A18V-01"])) == ["A7", "BH"]
    assert tcga_sites(["TCGA-A7-A0CE", "SYN-1"]) is None
    no_col = t.drop(columns="site")
    derived = ensure_splits(no_col, tmp_path / "derived", folds=5, seed=0, group="site")
    column = ensure_splits(t, tmp_path / "column", folds=5, seed=0, group="site")
    plain = ensure_splits(t, tmp_path / "plain", folds=5, seed=0)
    meta = json.loads((tmp_path / "derived" / "meta.json").read_text())
    assert (meta["group"], meta["group_source"]) == ("site", "tcga_barcode")
    assert json.loads((tmp_path / "column" / "meta.json").read_text())["group_source"] == "column"
    assert not {"group", "group_source"} & set(json.loads((tmp_path / "plain" / "meta.json").read_text()))
    assert derived.fold(0).test == column.fold(0).test  # the barcode's site is the column's site here
    assert derived.fold(0).hash != plain.fold(0).hash and derived.fold(0).hash != column.fold(0).hash
    with pytest.raises(ValueError, match=r"other settings .*'group': \(None, 'site'\)"):
        ensure_splits(t, tmp_path / "plain", folds=5, seed=0, group="site")
    other = t.assign(case_id=[f"P{i}" for i in range(len(t))]).drop(columns="site")
    with pytest.raises(ValueError, match="no 'site' column and its case ids are not all TCGA barcodes"):
        ensure_splits(other, tmp_path / "x", folds=5, group="site")
    with pytest.raises(ValueError, match="splits.group='centre' is not a column of the cohort table"):
        ensure_splits(t, tmp_path / "y", folds=5, group="centre")


def test_no_group_keeps_the_job_identity() -> None:
    from survlab.utils.job_identity import identity_of

    base = {"data": {"splits": {"folds": 5}}, "model": {"name": "abmil"}}
    assert identity_of({"data": {"splits": {"folds": 5, "group": None}}, "model": {"name": "abmil"}}) == base
    assert (
        identity_of({"data": {"splits": {"folds": 5, "group": "site"}}, "model": {"name": "abmil"}}) != base
    )


def test_datamodule_site_preserved_fold_is_recorded_in_the_protocol_card(
    make_datamodule, tmp_path: Path
) -> None:
    """`splits.group=site` through the data module: whole sites per part of the fold, its own split dir, the
    protocol card's `split_group`; without it the card and dir name are those of before."""
    root = tmp_path / "split_root"  # never the (shared, read-only) cohort folder
    dm = make_datamodule(
        splits={"folds": 2, "val_fraction": 0.5, "seed": 0, "group": "site"}, split_root=root
    )
    site = dm.full_cohort.table.set_index("case_id")["site"].astype(str)
    parts = {p: set(site[dm.split.part(p)]) for p in ("train", "val", "test")}
    assert parts["test"] and not (parts["test"] & parts["train"] or parts["test"] & parts["val"])
    assert not parts["val"] & parts["train"]
    assert dm.split_dir.parent == root and dm.split_dir.name.endswith("_group-site")
    card = dm.describe()
    assert card["split_group"] == {"column": "site", "source": "column", "n_groups": site.nunique()}
    assert {dm.split_groups[c] for c in dm.split.test} == parts["test"]
    plain = make_datamodule(splits={"folds": 2, "val_fraction": 0.5, "seed": 0}, split_root=root)
    assert "split_group" not in plain.describe() and "_group" not in plain.split_dir.name
    assert plain.split_groups == {}
    # the group column is read by the split: `check` / the training log must not call it unused
    no_site = {"columns": ["age"], "categorical": []}
    grouped = make_datamodule(setup=False, clinical=no_site, splits={"folds": 2, "group": "site"})
    ungrouped = make_datamodule(setup=False, clinical=no_site, splits={"folds": 2})
    assert "site" in grouped.used_columns() and "site" not in ungrouped.used_columns()


def test_label_cohort_site_folds_keep_sites_whole_and_spread_the_classes() -> None:
    """A cohort without survival (labels): whole sites per test / val part, and every test fold holds both classes
    although half the sites hold one class only."""
    rng = np.random.default_rng(3)
    site = np.repeat([f"{s:02d}" for s in range(10)], 12)
    label = np.where(np.isin(site, ["00", "01", "02", "03", "04"]), 1, rng.integers(0, 2, len(site)))
    ids = [f"TCGA-{s}-{i:04d}" for i, s in enumerate(site)]
    frames = make_splits(
        ids,
        np.full(len(ids), np.nan),
        np.zeros(len(ids), bool),
        folds=5,
        val_fraction=0.25,
        group=site,
        group_name="site",
        label=label.astype(object),
        survival=False,
    )
    site_of = pd.Series(site, index=ids)
    lab = pd.Series(label, index=ids)
    for f in frames:
        parts = _parts(f, site_of)
        assert not parts["test"] & (parts["train"] | parts["val"]) and not parts["val"] & parts["train"]
        test = f.loc[f["split"] == "test", "case_id"]
        assert set(lab[test]) == {0, 1}
