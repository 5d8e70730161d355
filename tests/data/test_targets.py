"""Targets (issue 10): patient / slide labels with a fixed class order, several endpoints, survival optional,
the calibration split part and the classification-only synthetic cohort."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from survlab.data.batch import collate

MakeDM = Callable[..., Any]
CLS_SPEC: dict[str, Any] = dict(
    n_patients=40,
    feature_dim=8,
    patches_per_slide=(4, 10),
    slides_per_patient=(1, 4),
    tumor_slide_rate=0.4,
    missing_grade_rate=0.1,
    seed=0,
)
CLS_LABELS = {
    "label": {"column": "label"},
    "grade": {"column": "grade", "classes": ["G1", "G2", "G3"], "ordinal": True},
}
SLIDE_LABELS = {"slide_label": {"column": "slide_label"}}


@pytest.fixture(scope="module")
def cls_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from survlab.data.sources.synthetic_classification import (
        ClassificationSpec,
        generate_classification_cohort,
    )

    return generate_classification_cohort(
        tmp_path_factory.mktemp("cls") / "cohort", ClassificationSpec(**CLS_SPEC)
    )


def _cls_dm(root: Path, split_dir: Path, setup: bool = True, **overrides: Any) -> Any:
    from survlab.data.datamodule import CohortDataModule

    kwargs: dict[str, Any] = dict(
        name="cls",
        root=str(root),
        time_col=None,
        wsi={"encoder": "synthetic", "feature_dim": 8},
        labels=CLS_LABELS,
        slide_labels=SLIDE_LABELS,
        splits={"dir": str(split_dir), "folds": 3, "val_fraction": 0.2, "seed": 0},
        batch_size=4,
        max_patches=None,
    )
    kwargs.update(overrides)
    dm = CohortDataModule(**kwargs)
    if setup:
        dm.setup("fit")
    return dm


def _copy(src: Path, dst: Path, edit: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> Path:
    shutil.copytree(src, dst)
    if edit is not None:
        clin = pd.read_csv(dst / "clinical.csv", dtype=str, keep_default_na=False)
        edit(clin).to_csv(dst / "clinical.csv", index=False)
    return dst


def _one_line(err: pytest.ExceptionInfo) -> None:
    assert "\n" not in str(err.value)


def test_classification_only_cohort_sets_up_and_yields_batches(cls_cohort: Path, tmp_path: Path) -> None:
    dm = _cls_dm(cls_cohort, tmp_path / "s")
    assert not dm.has_survival and dm.dims.endpoints == ()
    assert dm.fitted.targets == {
        "endpoints": [],
        "primary_endpoint": None,
        "labels": {"label": ["negative", "positive"], "grade": ["G1", "G2", "G3"]},
        "ordinal": {"label": False, "grade": True},
        "slide_labels": {"slide_label": ["normal", "tumor"]},
    }
    assert dm.dims.n_classes == {"label": 2, "grade": 3} and dm.dims.slide_n_classes == {"slide_label": 2}
    json.dumps(dm.describe())
    batch = next(iter(dm.train_dataloader()))
    assert len(batch) == 4 and torch.isnan(batch.time).all() and not batch.event.any()
    assert batch.time_bin.eq(-1).all() and batch.endpoint_time == {}
    assert batch.labels["label"].dtype == torch.long and set(batch.labels["label"].tolist()) <= {0, 1}
    with pytest.raises(ValueError, match=r"data=cls has no survival endpoint") as err:
        dm.fitted.train_survival()
    _one_line(err)
    with pytest.raises(
        ValueError, match=r"no calibration part; set data.splits.calibration_fraction > 0"
    ) as err:
        dm.calibration_dataloader()
    _one_line(err)
    # splits stratified by the first label (no survival): positives in every test fold
    label = dict(zip(dm.cohort.case_ids, dm.cohort.table["label"], strict=True))
    assert any(label[c] == "positive" for c in dm.split.test) and any(
        label[c] == "negative" for c in dm.split.test
    )


def test_patient_and_slide_labels_match_the_csv_and_missing_is_minus_one(
    cls_cohort: Path, tmp_path: Path
) -> None:
    dm = _cls_dm(cls_cohort, tmp_path / "s")
    raw = pd.read_csv(cls_cohort / "clinical.csv", dtype=str, keep_default_na=False)
    grade_of = raw.groupby("case_id")["grade"].first()
    assert (grade_of == "").any()  # the cohort has missing grades
    items = [dm.datasets["test"][i] for i in range(len(dm.datasets["test"]))]
    for it in items:
        want = {"": -1, "G1": 0, "G2": 1, "G3": 2}[grade_of[it.case_id]]
        assert it.labels["grade"] == want


def test_slide_labels_align_with_their_patches_in_a_padded_batch(cls_cohort: Path, tmp_path: Path) -> None:
    """For every real patch n of patient b: slide_labels[b, slide_index[b, n]] is the label of the patch's slide."""
    dm = _cls_dm(cls_cohort, tmp_path / "s")
    raw = pd.read_csv(cls_cohort / "clinical.csv", dtype=str)
    slide_label = dict(zip(raw["slide_id"], raw["slide_label"].map({"normal": 0, "tumor": 1}), strict=True))
    ds = dm.datasets["train"]
    by_slides = sorted((ds[i] for i in range(len(ds))), key=lambda it: (-it.n_slides, it.case_id))
    items = by_slides[:4] + by_slides[-2:]  # the most slides, and padding slots for the fewest
    assert items[0].n_slides >= 3 and items[-1].n_slides < items[0].n_slides
    assert {v for it in items for v in it.slide_labels["slide_label"]} == {0, 1}  # tumour and normal slides
    batch = collate(items)
    lab = batch.slide_labels["slide_label"]
    assert lab.shape == (6, items[0].n_slides) and batch.n_slides.tolist() == [it.n_slides for it in items]
    checked = 0
    for b, it in enumerate(items):
        slides = dm.cohort.rows([it.case_id])["slide_ids"].iloc[0]
        ends = np.cumsum([len(dm.sources.wsi.read_slide(s)[0]) for s in slides])
        for n in torch.nonzero(batch.wsi_mask[b]).flatten().tolist():
            j = int(batch.slide_index[b, n])
            slide = slides[int(np.searchsorted(ends, batch.patch_index[b, n].item(), side="right"))]
            assert (
                int(lab[b, j]) == slide_label[slide]
            )  # via slide_index == via the patch's own row in its file
            checked += 1
        assert lab[b, it.n_slides :].eq(-1).all()
    assert checked > 50


def test_shuffled_clinical_table_gives_identical_labels(cls_cohort: Path, tmp_path: Path) -> None:
    shuffled = _copy(
        cls_cohort, tmp_path / "shuffled", lambda t: t.sample(frac=1.0, random_state=3)[t.columns[::-1]]
    )
    a, b = (_cls_dm(root, tmp_path / name) for name, root in (("a", cls_cohort), ("b", shuffled)))
    assert a.fitted.targets == b.fitted.targets and a.split.test == b.split.test
    for part in ("train", "val", "test"):
        ia = [a.datasets[part][i] for i in range(len(a.datasets[part]))]
        ib = [b.datasets[part][i] for i in range(len(b.datasets[part]))]
        assert [(x.case_id, x.labels, x.slide_labels) for x in ia] == [
            (x.case_id, x.labels, x.slide_labels) for x in ib
        ]


def test_class_order_from_training_values_and_unknown_values(cls_cohort: Path, tmp_path: Path) -> None:
    dm = _cls_dm(cls_cohort, tmp_path / "s0", labels={"grade": {"column": "grade"}})
    assert dm.fitted.targets["labels"] == {"grade": ["G1", "G2", "G3"]}  # sorted training values
    case = "CLS-0007"
    bad = _copy(
        cls_cohort, tmp_path / "bad", lambda t: t.assign(grade=t["grade"].where(t["case_id"] != case, "G9"))
    )
    with pytest.raises(
        ValueError,
        match=rf"clinical\.csv: case {case} has grade='G9', not one of \['G1', 'G2', 'G3'\] "
        r"\(the configured classes\) of label 'grade'",
    ) as err:
        _cls_dm(bad, tmp_path / "s1")
    _one_line(err)
    # classes from training: a value only a non-training patient has is an error too
    only = dm.split.test[0]
    bad2 = _copy(
        cls_cohort, tmp_path / "bad2", lambda t: t.assign(grade=t["grade"].where(t["case_id"] != only, "G7"))
    )
    with pytest.raises(
        ValueError,
        match=rf"case {only} has grade='G7', not one of \['G1', 'G2', 'G3'\] \(the values "
        r"of the training patients of fold 0\)",
    ) as err:
        _cls_dm(bad2, tmp_path / "s0", labels={"grade": {"column": "grade"}})
    _one_line(err)
    slide = "CLS-0003-S1"
    bad3 = _copy(
        cls_cohort,
        tmp_path / "bad3",
        lambda t: t.assign(slide_label=t["slide_label"].where(t["slide_id"] != slide, "ITC")),
    )
    with pytest.raises(
        ValueError, match=rf"slide {slide} has slide_label='ITC', not one of \['normal', 'tumor'\]"
    ):
        _cls_dm(
            bad3,
            tmp_path / "s3",
            slide_labels={"slide_label": {"column": "slide_label", "classes": ["normal", "tumor"]}},
        )


def test_calibration_split_is_disjoint_reproducible_and_hashed(
    make_datamodule: MakeDM, tmp_path: Path
) -> None:
    plain = make_datamodule()
    cal = make_datamodule(
        splits={
            "dir": str(tmp_path / "cal"),
            "folds": 3,
            "val_fraction": 0.2,
            "seed": 0,
            "calibration_fraction": 0.25,
        }
    )
    parts = {p: set(cal.split.part(p)) for p in ("train", "val", "test", "calibration")}
    assert len(parts["calibration"]) >= 4
    names = list(parts)
    for i, p in enumerate(names):
        for q in names[i + 1 :]:
            assert not parts[p] & parts[q], (p, q)
    assert set().union(*parts.values()) == set(cal.cohort.case_ids)
    # carved from the training part: val and test are those of the run without calibration
    assert cal.split.test == plain.split.test and cal.split.val == plain.split.val
    assert set(plain.split.train) == parts["train"] | parts["calibration"]
    assert cal.split_hash != plain.split_hash
    again = make_datamodule(
        splits={
            "dir": str(tmp_path / "cal2"),
            "folds": 3,
            "val_fraction": 0.2,
            "seed": 0,
            "calibration_fraction": 0.25,
        }
    )
    assert again.split_hash == cal.split_hash and again.split.calibration == cal.split.calibration
    df = pd.read_csv(cal.split_path)
    assert set(df["split"]) == {"train", "val", "test", "calibration"}
    meta = json.loads((tmp_path / "cal" / "meta.json").read_text())
    assert meta["calibration_fraction"] == 0.25
    assert meta["files"][cal.split_path.name] == hashlib.sha256(cal.split_path.read_bytes()).hexdigest()
    batch_ids = [c for b in cal.calibration_dataloader() for c in b.case_ids]
    assert sorted(batch_ids) == sorted(parts["calibration"])


def test_survival_split_files_unchanged_without_new_options(tiny_cohort: Path, tmp_path: Path) -> None:
    """Pinned before issue 10: survival cohorts' split files and hashes stay byte-identical."""
    from survlab.data.cohort.splits import ensure_splits
    from survlab.data.cohort.table import Cohort

    cohort = Cohort.from_csv(tiny_cohort / "clinical.csv", keep_cols=["site"])
    split_set = ensure_splits(cohort.table, tmp_path / "s", folds=3, val_fraction=0.2, seed=0)
    digests = [
        hashlib.sha256((tmp_path / "s" / f"splits_{k}.csv").read_bytes()).hexdigest()[:16] for k in range(3)
    ]
    assert digests == ["df0753f3e60c30d1", "b3f1eb956532c24a", "affb6c8578d0e47f"]
    assert split_set.fold_hash(0).startswith("06c83aabdf5e2f5f")


def _with_dfs(t: pd.DataFrame, missing: str) -> pd.DataFrame:
    months = pd.to_numeric(t["survival_months"])
    t = t.assign(
        dfs_months=(months * 0.6).round(1).astype(str),
        dfs_event=(1 - pd.to_numeric(t["censorship"])).astype(str),
    )
    t.loc[t["case_id"] == missing, ["dfs_months", "dfs_event"]] = ""
    return t


def test_several_endpoints_with_a_patient_missing_dfs(
    make_datamodule: MakeDM, tiny_cohort: Path, tmp_path: Path
) -> None:
    case = sorted(pd.read_csv(tiny_cohort / "clinical.csv", dtype=str)["case_id"])[5]
    root = _copy(tiny_cohort, tmp_path / "c", lambda t: _with_dfs(t, case))
    endpoints = {
        "os": {"time": "survival_months", "censorship": "censorship"},
        "dfs": {"time": "dfs_months", "event": "dfs_event"},
    }
    dm = make_datamodule(root=root, endpoints=endpoints, modalities=("genomics",))
    plain = make_datamodule(
        root=root,
        modalities=("genomics",),
        splits={"dir": str(tmp_path / "p"), "folds": 3, "val_fraction": 0.2, "seed": 0},
    )
    assert dm.dims.endpoints == ("os", "dfs") and dm.fitted.targets["primary_endpoint"] == "os"
    assert dm.split_hash == plain.split_hash and np.array_equal(dm.fitted.bin_edges, plain.fitted.bin_edges)
    part = next(p for p in ("train", "val", "test") if case in dm.split.part(p))
    ds = dm.datasets[part]
    batch = collate([ds[i] for i in range(len(ds))])
    b = ds.case_ids.index(case)
    assert torch.isnan(batch.endpoint_time["dfs"][b]) and not batch.endpoint_event["dfs"][b]
    assert batch.endpoint_time_bin["dfs"][b] == -1 and batch.endpoint_time_bin["os"][b] >= 0
    assert torch.equal(batch.endpoint_time["os"], batch.time) and torch.equal(
        batch.endpoint_event["os"], batch.event
    )
    others = [i for i in range(len(ds)) if i != b]
    assert (
        not torch.isnan(batch.endpoint_time["dfs"][others]).any()
        and batch.endpoint_time_bin["dfs"][others].ge(0).all()
    )
    t, e = dm.fitted.train_survival("dfs")
    n_train_dfs = len(dm.split.train) - (case in dm.split.train)
    assert len(t) == n_train_dfs and not np.isnan(t).any() and len(dm.fitted.bin_edges_of("dfs")) == 5
    assert dm.fitted.train_survival("os")[0].shape == (len(dm.split.train),)
    # the primary endpoint must be present for every patient
    with pytest.raises(
        ValueError,
        match=r"survival time 'dfs_months' must be a positive number of months; case\(s\) "
        rf"{case}: empty",
    ) as err:
        make_datamodule(
            root=root,
            endpoints=endpoints,
            endpoint="dfs",
            modalities=("genomics",),
            splits={"dir": str(tmp_path / "d"), "folds": 3},
        )
    _one_line(err)


def test_bayes_accuracy_matches_the_bayes_rule_on_a_large_cohort(tmp_path: Path) -> None:
    """oracle.json's bayes_accuracy = accuracy of 'positive iff a slide carries the marker' (within sampling error),
    and the marker is what the features show: max projection on the marker direction separates signal slides."""
    from survlab.data.sources.synthetic_classification import (
        ClassificationSpec,
        generate_classification_cohort,
    )

    spec = ClassificationSpec(n_patients=600, feature_dim=4, patches_per_slide=(5, 10), seed=2)
    root = generate_classification_cohort(tmp_path / "c", spec)
    oracle = json.loads((root / "oracle.json").read_text())
    truth = pd.read_csv(root / "truth_slides.csv")
    clin = pd.read_csv(root / "clinical.csv")
    per = truth.groupby("case_id").agg(signal=("signal", "any"), n=("signal", "size"))
    label = clin.groupby("case_id")["label"].first() == "positive"
    pi, q = spec.tumor_slide_rate, spec.detectable_rate
    # Bayes rule without a marked slide: positive iff (1 - pi q)^n - (1 - pi)^n > (1 - pi)^n
    guess_no_marker = (1 - pi * q) ** per["n"] - (1 - pi) ** per["n"] > (1 - pi) ** per["n"]
    rule = per["signal"] | guess_no_marker
    empirical = float((rule == label.loc[per.index]).mean())
    assert 0.75 < oracle["bayes_accuracy"] < 0.95
    assert abs(empirical - oracle["bayes_accuracy"]) < 0.04  # 3 sd of a mean of 600 Bernoullis
    assert oracle["bayes_accuracy_slide"] == pytest.approx(pi * q + max(pi * (1 - q), 1 - pi))
    import h5py

    top = []
    for sid in truth["slide_id"][:200]:
        with h5py.File(root / "features" / "synthetic" / "h5_files" / f"{sid}.h5") as f:
            top.append(np.linalg.norm(f["features"][:], axis=1).max())  # largest patch norm of the slide
    top = np.asarray(top)
    sig = truth["signal"][:200].to_numpy()
    assert sig.sum() >= 20 and top[sig].mean() > top[~sig].mean() + 1.5
    assert np.mean((top > 5.0) == sig) > 0.9


# ---------------------------------------------------------------------------------------------------- issue 25: labels
RULE = {"label": "label", "negative": ["negative"], "normal": ["normal"]}


def _problems(dm: Any) -> list[str]:
    from survlab.data.audit import audit_cohort

    return [f.message for f in audit_cohort(dm).findings]


def test_class_spellings_differing_in_letter_case_are_refused(cls_cohort: Path, tmp_path: Path) -> None:
    def recase(clin: pd.DataFrame) -> pd.DataFrame:
        first = clin["case_id"].isin(clin.loc[clin["label"] == "positive", "case_id"].unique()[:3])
        clin.loc[first, "label"] = "Positive"  # 3 patients spelled otherwise: a third class without the check
        return clin

    root = _copy(cls_cohort, tmp_path / "c", recase)
    with pytest.raises(
        ValueError, match=r"label column 'label' spells a class in several letter cases \('Positive'"
    ) as err:
        _cls_dm(root, tmp_path / "s")
    _one_line(err)
    assert any("several letter cases" in m for m in _problems(_cls_dm(root, tmp_path / "s2", setup=False)))
    # with the classes configured the odd spelling is an unknown value (the existing check), not a third class
    with pytest.raises(ValueError, match=r"has label='Positive', not one of \['negative', 'positive'\]"):
        _cls_dm(
            root,
            tmp_path / "s3",
            labels={**CLS_LABELS, "label": {"column": "label", "classes": ["negative", "positive"]}},
        )


def test_configured_class_without_training_patients_is_refused(cls_cohort: Path, tmp_path: Path) -> None:
    labels = {
        **CLS_LABELS,
        "grade": {"column": "grade", "classes": ["G1", "G2", "G3", "G4"], "ordinal": True},
    }
    with pytest.raises(
        ValueError,
        match=r"class\(es\) \['G4'\] of label 'grade' .* occur in none of the training patients of fold 0",
    ) as err:
        _cls_dm(cls_cohort, tmp_path / "s", labels=labels)
    _one_line(err)
    slide = {"slide_label": {"column": "slide_label", "classes": ["normal", "tumor", "itc"]}}
    with pytest.raises(
        ValueError, match=r"\['itc'\] of label 'slide_label' .* none of the training slides of fold 0"
    ):
        _cls_dm(cls_cohort, tmp_path / "s2", slide_labels=slide)
    assert any(
        "['G4'] of label 'grade'" in m
        for m in _problems(_cls_dm(cls_cohort, tmp_path / "s3", setup=False, labels=labels))
    )


def test_slide_label_contradicting_its_patient_label_is_refused(cls_cohort: Path, tmp_path: Path) -> None:
    slide_labels = {"slide_label": {"column": "slide_label", "patient": RULE}}
    dm = _cls_dm(
        cls_cohort, tmp_path / "ok", slide_labels=slide_labels
    )  # the generator's cohort obeys the rule
    assert dm.fitted.targets["slide_labels"] == {"slide_label": ["normal", "tumor"]}
    clin = pd.read_csv(cls_cohort / "clinical.csv", dtype=str, keep_default_na=False)
    neg = clin.loc[clin["label"] == "negative", "case_id"].iloc[0]
    pos = clin.loc[clin["label"] == "positive", "case_id"].iloc[0]

    def tumour_in_negative(c: pd.DataFrame) -> pd.DataFrame:
        c.loc[c.index[c["case_id"] == neg][0], "slide_label"] = "tumor"
        return c

    def positive_without_tumour(c: pd.DataFrame) -> pd.DataFrame:
        c.loc[c["case_id"] == pos, "slide_label"] = "normal"
        return c

    for k, (edit, pattern) in enumerate(
        [
            (
                tumour_in_negative,
                rf"1 patient\(s\) of class \['negative'\] in 'label' have slides that are not \['normal'\].*{neg}",
            ),
            (
                positive_without_tumour,
                rf"1 patient\(s\) NOT of class \['negative'\] in 'label' have only \['normal'\] slides.*{pos}",
            ),
        ]
    ):
        root = _copy(cls_cohort, tmp_path / f"c{k}", edit)
        with pytest.raises(ValueError, match=pattern) as err:
            _cls_dm(root, tmp_path / f"s{k}", slide_labels=slide_labels)
        _one_line(err)
        assert any(
            re.search(pattern, m)
            for m in _problems(_cls_dm(root, tmp_path / f"a{k}", setup=False, slide_labels=slide_labels))
        )

    # a missing slide label is never a contradiction: the positive patient with one slide unlabelled passes
    def one_unlabelled(c: pd.DataFrame) -> pd.DataFrame:
        c = positive_without_tumour(c)
        c.loc[c.index[c["case_id"] == pos][0], "slide_label"] = ""
        return c

    _cls_dm(_copy(cls_cohort, tmp_path / "c9", one_unlabelled), tmp_path / "s9", slide_labels=slide_labels)


def test_patient_rule_options_are_checked_and_leave_the_job_identity_alone() -> None:
    from survlab.data.cohort.targets import parse_labels
    from survlab.utils.job_identity import identity_of

    with pytest.raises(
        ValueError, match=r"slide_labels.s.patient: give exactly \['label', 'negative', 'normal'\]"
    ):
        parse_labels({"s": {"patient": {"label": "label"}}}, (), "slide_labels")
    with pytest.raises(ValueError, match=r"labels.s: unknown option\(s\) \['patient'\]"):
        parse_labels({"s": {"patient": RULE}})
    cfg = {"data": {"slide_labels": {"s": {"column": "s", "classes": ["a", "b"]}}}, "seed": 0}
    ruled = {
        "data": {"slide_labels": {"s": {"column": "s", "classes": ["a", "b"], "patient": RULE}}},
        "seed": 0,
    }
    assert identity_of(ruled) == identity_of(
        cfg
    )  # a rule only refuses input: finished jobs keep their identity
