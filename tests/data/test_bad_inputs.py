"""Every bad input named in DESIGN.md 'Reliability' gets a one-line error naming the file, the case and the fix."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from survlab.data.cohort.endpoint import Endpoint
from survlab.data.cohort.splits import ensure_splits
from survlab.data.cohort.table import Cohort
from survlab.data.modalities.genomics import (
    GeneScaler,
    check_coverage,
    fit_genomics,
    genomic_tensors,
    match_groups,
    read_expression,
    read_signatures,
)
from survlab.data.modalities.wsi import BagStore
from survlab.data.modalities.wsi_availability import check_availability
from survlab.data.modalities.wsi_files import read_bag

ROWS = [
    dict(case_id="A", slide_id="A-1", survival_months=10.0, censorship=0),
    dict(case_id="A", slide_id="A-2", survival_months=10.0, censorship=0),
    dict(case_id="B", slide_id="B-1", survival_months=5.0, censorship=1),
    dict(case_id="C", slide_id="C-1", survival_months=7.0, censorship=0),
]


def _cohort_with(tmp_path: Path, edit: Callable[[pd.DataFrame], None], **kw: Any) -> Cohort:
    df = pd.DataFrame(ROWS)
    edit(df)
    path = tmp_path / "clinical.csv"
    df.to_csv(path, index=False)
    return Cohort.from_csv(path, **kw)


def _one_line(err: pytest.ExceptionInfo) -> None:
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------- cohort table
@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (
            lambda d: d.__setitem__("survival_months", [10.0, 12.0, 5.0, 7.0]),
            r"clinical.csv: conflicting outcomes .* case\(s\) A; make the patient fields identical",
        ),
        (lambda d: d.__setitem__("censorship", [0, 1, 1, 0]), r"conflicting outcomes .*case\(s\) A"),
        (
            lambda d: d.__setitem__("survival_months", [10.0, 10.0, -1.0, 7.0]),
            r"clinical.csv: survival time 'survival_months' must be a positive number of months; case\(s\) B: -1 "
            r"\(negative\); fix the values",
        ),
        (
            lambda d: d.__setitem__("survival_months", [10.0, 10.0, 5.0, 0.0]),
            r"must be a positive number of months; case\(s\) C: 0 \(zero\);",
        ),
        (
            lambda d: d.__setitem__("survival_months", [10.0, 10.0, np.nan, 7.0]),
            r"must be a positive number of months; case\(s\) B: empty;",
        ),
        (
            lambda d: d.__setitem__("censorship", [0, 0, 2, 0]),
            r"'censorship' must be 0 or 1 .* case\(s\) B have 2; recode it",
        ),
        (
            lambda d: d.__setitem__("slide_id", ["A-1", "A-2", "B-1", "B-1"]),
            r"slide_id\(s\) B-1 listed under two patients .*B-1 -> B, C",
        ),
        (
            lambda d: d.__setitem__("censorship", [1, 1, 1, 1]),
            r"no events at all in 'censorship' \(3 patients all censored\); check the coding",
        ),
    ],
)
def test_bad_clinical_table(tmp_path: Path, edit: Callable, match: str) -> None:
    with pytest.raises(ValueError, match=match) as err:
        _cohort_with(tmp_path, edit)
    _one_line(err)


def test_missing_columns_lists_what_the_file_has(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"missing required column\(s\) \['OS_time'\] .*the file has \['case_id', 'slide_id'"
    ):
        _cohort_with(tmp_path, lambda d: None, endpoint=Endpoint.resolve("os", time_col="OS_time"))
    with pytest.raises(ValueError, match=r"missing required column\(s\) \['dfs_months', 'dfs_censorship'\]"):
        _cohort_with(tmp_path, lambda d: None, endpoint=Endpoint.resolve("dfs"))


# ---------------------------------------------------------------------------------------------- splits
def _cohort_table(n: int = 12) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "case_id": [f"P{i}" for i in range(n)],
            "time": np.arange(1, n + 1, dtype=float),
            "event": [i % 2 == 0 for i in range(n)],
        }
    )


def _tamper(split_dir: Path, k: int, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    """Edit a split file and update meta.json's checksum (as a careless user might)."""
    import hashlib

    path = split_dir / f"splits_{k}.csv"
    data = edit(pd.read_csv(path, dtype={"case_id": str})).to_csv(index=False).encode()
    path.write_bytes(data)
    meta = json.loads((split_dir / "meta.json").read_text())
    meta["files"][path.name] = hashlib.sha256(data).hexdigest()
    (split_dir / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: pd.concat([d, d.iloc[[0]].assign(split="test")]), r"patient\(s\) P0 appear in two splits"),
        (
            lambda d: pd.concat([d, pd.DataFrame({"case_id": ["ZZ"], "split": ["train"]})]),
            r"1 unknown case_id\(s\) not in the cohort: ZZ",
        ),
        (lambda d: d.iloc[1:], r"1 cohort patient\(s\) missing from the split file: P0"),
        (
            lambda d: d.assign(
                split=np.where(d["case_id"].isin(["P0", "P2", "P4", "P6", "P8", "P10"]), "train", d["split"])
            ),
            r"fold 0 (val|test) part \(\d+ patients\) has NO events; .*use fewer folds, another splits.seed",
        ),
    ],
)
def test_bad_split_files(tmp_path: Path, edit: Callable, match: str) -> None:
    table = _cohort_table()
    ensure_splits(table, tmp_path / "s", folds=2, val_fraction=0.2)
    _tamper(tmp_path / "s", 0, edit)
    split_set = ensure_splits(table, tmp_path / "s", folds=2, val_fraction=0.2)  # reads the edited meta.json
    with pytest.raises(ValueError, match=match) as err:
        split_set.fold(
            0, table["case_id"].tolist(), dict(zip(table["case_id"], table["event"], strict=False))
        )
    _one_line(err)


def test_split_dir_of_another_cohort(tmp_path: Path) -> None:
    ensure_splits(_cohort_table(12), tmp_path / "s", folds=2)
    with pytest.raises(
        ValueError,
        match=r"holds splits for a different set of patients \(12 vs 14.*delete .* or choose another splits.dir",
    ):
        ensure_splits(_cohort_table(14), tmp_path / "s", folds=2)
    with pytest.raises(ValueError, match=r"written with other settings .*'folds': \(2, 3\)"):
        ensure_splits(_cohort_table(12), tmp_path / "s", folds=3)


def test_edited_split_file_detected(tmp_path: Path) -> None:
    split_set = ensure_splits(_cohort_table(), tmp_path / "s", folds=2)
    (tmp_path / "s" / "splits_1.csv").write_text("case_id,split\nP0,train\n")
    with pytest.raises(ValueError, match=r"splits_1.csv was modified after .*meta.json was written"):
        split_set.fold(1)


# ---------------------------------------------------------------------------------------------- WSI bags
def _pt(tmp_path: Path, obj: Any, name: str = "s.pt") -> Path:
    path = tmp_path / name
    torch.save(obj, path)
    return path


@pytest.mark.parametrize(
    ("obj", "kw", "match"),
    [
        (torch.zeros(0, 4), {}, r"s.pt: empty bag \(0 patches\)"),
        (torch.zeros(4), {}, r"s.pt: features must be 2-D \[N, D\], got shape \(4,\)"),
        (
            torch.zeros(3, 5),
            {"feature_dim": 4},
            r"s.pt: feature dim 5 != configured feature_dim 4; set wsi.feature_dim",
        ),
        (
            torch.tensor([[1.0, float("nan")], [0.0, 0.0]]),
            {},
            r"s.pt: 1 patch\(es\) with NaN/Inf features; re-extract",
        ),
        ({"coords": torch.zeros(2, 2)}, {}, r"s.pt: dict without 'features' key"),
    ],
)
def test_bad_bags(tmp_path: Path, obj: Any, kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match) as err:
        read_bag(_pt(tmp_path, obj), **kw)
    _one_line(err)


def test_corrupt_bag_files(tmp_path: Path) -> None:
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"bad.pt: corrupt or unreadable feature file .*re-extract features"):
        read_bag(tmp_path / "bad.pt")
    (tmp_path / "bad.h5").write_bytes(b"\x89HDF\r\n\x1a\ntruncated")
    with pytest.raises(ValueError, match=r"bad.h5: corrupt or unreadable feature file"):
        read_bag(tmp_path / "bad.h5")
    import fractions

    torch.save(fractions.Fraction(1, 3), tmp_path / "obj.pt")  # arbitrary pickled object: refused
    with pytest.raises(ValueError, match=r"obj.pt: corrupt or unreadable"):
        read_bag(tmp_path / "obj.pt")


def test_feature_dim_differs_across_slides(tmp_path: Path) -> None:
    base = tmp_path / "f" / "pt_files"
    base.mkdir(parents=True)
    torch.save(torch.zeros(3, 4), base / "a.pt")
    torch.save(torch.zeros(3, 6), base / "b.pt")
    with pytest.raises(ValueError, match=r"b.pt: feature dim 6 != configured feature_dim 4"):
        BagStore(tmp_path / "f").load_patient(["a", "b"])


def test_missing_feature_file_names_dirs_and_fix(tmp_path: Path) -> None:
    cohort = _cohort_with(tmp_path, lambda d: None)
    (tmp_path / "f" / "enc" / "h5_files").mkdir(parents=True)
    with h5py.File(tmp_path / "f" / "enc" / "h5_files" / "A-1.h5", "w") as f:
        f.create_dataset("features", data=np.zeros((2, 4), np.float32))
    store = BagStore(tmp_path / "f", "enc")
    with pytest.raises(
        FileNotFoundError,
        match=r"case A: no feature file for slide A-2 \(searched .*enc/h5_files, "
        r".*enc/pt_files\); extract features with CLAM/TRIDENT or fix slide_id",
    ) as err:
        check_availability(cohort, [store])
    _one_line(err)
    with pytest.raises(ValueError, match=r"2 patient\(s\) have no slide .*\(B, C; .*set data.missing=drop"):
        check_availability(cohort, [store], partial_ok=True)
    kept, report = check_availability(cohort, [store], allow_missing=True)
    assert kept.case_ids == ["A"] and report.dropped_patients == ["B", "C"]


# ---------------------------------------------------------------------------------------------- genomics
def test_group_without_matched_genes() -> None:
    with pytest.raises(
        ValueError,
        match=r"sig.csv: gene group 'immune' has no gene in the expression table "
        r"\(e.g. CD8A, CD4\); check the gene symbols \(exact match",
    ):
        match_groups(["CD8", "TP53"], {"ok": ["TP53"], "immune": ["CD8A", "CD4"]}, source="sig.csv")


def test_expression_missing_patients_and_duplicates(tmp_path: Path) -> None:
    df = pd.DataFrame({"case_id": ["a", "b"], "G": [1.0, 2.0]})
    df.to_csv(tmp_path / "e.csv", index=False)
    expr = read_expression(tmp_path / "e.csv")
    with pytest.raises(
        ValueError, match=r"e.csv: expression table lacks 2 cohort patient\(s\) \(c, d\); .*data.missing=drop"
    ):
        check_coverage(expr, ["a", "c", "d"], tmp_path / "e.csv")
    assert check_coverage(expr, ["a", "c"], tmp_path / "e.csv", allow_missing=True) == ["c"]
    pd.concat([df, df.iloc[[1]]]).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(ValueError, match=r"d.csv: duplicate case row\(s\) b; keep one expression profile"):
        read_expression(tmp_path / "d.csv")


# ---------------------------------------------------------------------------------------------- data module
def test_model_needs_modality_the_data_lacks(tmp_path: Path) -> None:
    from survlab.data.datamodule import CohortDataModule

    with pytest.raises(ValueError, match=r"^model needs wsi but data=gse7390 provides clinical\+genomics"):
        CohortDataModule(
            name="gse7390",
            root=str(tmp_path),
            genomics={},
            clinical={"columns": ["age"]},
            modalities=("wsi", "genomics"),
        )


def test_missing_real_cohort_files(tmp_path: Path) -> None:
    from survlab.data.datamodule import CohortDataModule

    dm = CohortDataModule(name="tcga_luad", root=str(tmp_path / "tcga_luad"), wsi={"encoder": "uni"})
    with pytest.raises(
        FileNotFoundError,
        match=r"data=tcga_luad: expected MCAT/SurvPath clinical CSV at .*"
        r"tcga_luad/clinical.csv .*see README 'Real data layout'",
    ):
        dm.setup()


def test_missing_patients_in_genomics_via_datamodule(
    tiny_cohort: Path, tmp_path: Path, make_datamodule
) -> None:
    root = tmp_path / "c"
    shutil.copytree(tiny_cohort, root)
    expr = pd.read_csv(root / "expression.csv", dtype={"case_id": str})
    expr.iloc[3:].to_csv(root / "expression.csv", index=False)
    with pytest.raises(ValueError, match=r"expression table lacks 3 cohort patient"):
        make_datamodule(root=root, modalities=("genomics",))
    dm = make_datamodule(root=root, modalities=("genomics",), allow_missing=True)
    assert sum(len(d) for d in dm.datasets.values()) == 37
    assert dm.describe()["dropped"]["genomics"]["n_patients_dropped"] == 3


def test_modality_hint_lists_cohorts_from_conf_dir(tmp_path: Path) -> None:
    from survlab.config.cohorts import cohorts_providing

    data = (
        tmp_path / "data"
    )  # a config root of the user's: data/*.yaml, composed by Hydra with their defaults
    data.mkdir()
    (data / "_base.yaml").write_text("wsi: {encoder: uni}\ngenomics: null\n")
    (data / "luad.yaml").write_text("defaults: [_base, _self_]\nname: luad\n")
    (data / "luad_ms.yaml").write_text("defaults: [_base, _self_]\nwsi: {scales: [x5, x20]}\n")
    (data / "table.yaml").write_text("wsi: null\ngenomics: {expression: e.csv}\n")
    (data / "broken.yaml").write_text("defaults: [_absent, _self_]\nwsi: {encoder: uni}\n")  # skipped
    assert cohorts_providing("wsi", [tmp_path]) == ["luad", "luad_ms"]
    assert cohorts_providing("scales", [tmp_path]) == ["luad_ms"]
    assert cohorts_providing("genomics", [tmp_path]) == ["table"]
    assert cohorts_providing("wsi", [tmp_path / "absent"]) is None


def test_expression_case_spelled_twice_with_whitespace(tmp_path: Path) -> None:
    """'T1' and 'T1 ' are one patient: two profiles for it must fail (it passed before and shifted profiles)."""
    pd.DataFrame({"case_id": ["T1", "T2", "T1 "], "G": [1.0, 2.0, 3.0]}).to_csv(
        tmp_path / "e.csv", index=False
    )
    with pytest.raises(
        ValueError,
        match=r"e.csv: duplicate case row\(s\) T1 \(spelled 'T1', 'T1 '\); keep one expression profile",
    ) as err:
        read_expression(tmp_path / "e.csv")
    _one_line(err)


@pytest.mark.parametrize("header", ["case_id,G1,G2,G1", "case_id,G1,G2, G1"])
def test_expression_duplicated_gene_column(tmp_path: Path, header: str) -> None:
    """pandas renames a repeated column to 'G1.1' and the second profile was silently dropped."""
    (tmp_path / "e.csv").write_text(f"{header}\nA,1,2,3\nB,4,5,6\n")
    with pytest.raises(ValueError, match=r"e.csv: gene column\(s\) G1 appear more than once") as err:
        read_expression(tmp_path / "e.csv")
    _one_line(err)


def test_expression_empty_case_id(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text("case_id,G1\nA,1\n,2\n")
    with pytest.raises(ValueError, match=r"e.csv: empty case_id at CSV line\(s\) 3") as err:
        read_expression(tmp_path / "e.csv")
    _one_line(err)


def test_genomic_lookup_fails_loudly_when_rows_do_not_match_patients() -> None:
    """A table whose lookup returns more rows than patients asked for must never be assigned by position."""
    expr = pd.DataFrame({"G": [1.0, 2.0, 3.0]}, index=pd.Index(["T1", "T2", "T1"], name="case_id"))
    groups = match_groups(["G"], None)
    with pytest.raises(ValueError, match=r"expression lookup returned 3 rows for 2 patients .*T1") as err:
        fit_genomics(expr, groups, ["T1", "T2"], "standard", False)
    _one_line(err)
    with pytest.raises(ValueError, match=r"expression lookup returned 3 rows for 2 patients .*T1"):
        genomic_tensors(expr, groups, GeneScaler("none").fit(np.zeros((1, 1))), ["T1", "T2"])


def test_signatures_with_a_duplicated_group_column(tmp_path: Path) -> None:
    """pandas renames a repeated group to 'immune.1', which became a separate, wrongly named group."""
    (tmp_path / "sig.csv").write_text("immune,prolif,immune \nCD8A,MKI67,CD4\n")
    with pytest.raises(ValueError, match=r"sig.csv: gene group\(s\) immune appear more than once") as err:
        read_signatures(tmp_path / "sig.csv")
    _one_line(err)


def test_signature_symbols_and_group_names_are_stripped(tmp_path: Path) -> None:
    (tmp_path / "sig.csv").write_text(" immune ,prolif\nCD8A , MKI67\nCD8A,\n")
    assert read_signatures(tmp_path / "sig.csv") == {"immune": ["CD8A", "CD8A"], "prolif": ["MKI67"]}
    groups = match_groups(["CD8A", "MKI67"], read_signatures(tmp_path / "sig.csv"))
    assert groups.genes == (("CD8A",), ("MKI67",))  # a gene listed twice in a group counts once


# ---------------------------------------------------------------------------------------------- whitespace ids
def test_case_id_whitespace_variant_is_the_same_patient(tmp_path: Path) -> None:
    """'A' and 'A ' with equal outcomes: one patient with both slides; a slide id spelled twice is one slide."""

    def edit(d: pd.DataFrame) -> None:
        d.loc[1, "case_id"] = "A "
        d.loc[2, "slide_id"] = " B-1"

    cohort = _cohort_with(tmp_path, edit)
    assert cohort.case_ids == ["A", "B", "C"]
    assert cohort.table["slide_ids"].tolist() == [["A-1", "A-2"], ["B-1"], ["C-1"]]


def test_case_id_whitespace_variant_with_other_outcome_conflicts(tmp_path: Path) -> None:
    def edit(d: pd.DataFrame) -> None:
        d.loc[1, "case_id"] = " A"
        d.loc[1, "survival_months"] = 12.0

    with pytest.raises(
        ValueError, match=r"conflicting outcomes .*case\(s\) A \(spelled ' A', 'A'\); make the patient fields"
    ) as err:
        _cohort_with(tmp_path, edit)
    _one_line(err)


def test_slide_id_whitespace_variant_under_two_patients(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"slide_id\(s\) A-1 listed under two patients .*A-1 -> A, B"):
        _cohort_with(tmp_path, lambda d: d.__setitem__("slide_id", ["A-1", "A-2", "A-1 ", "C-1"]))


def test_patient_field_differing_across_slide_rows(tmp_path: Path) -> None:
    """A label that differs across one patient's slide rows was taken from whichever row came first."""

    def edit(d: pd.DataFrame) -> None:
        d["label"] = ["x", "y", "y", "x"]

    with pytest.raises(
        ValueError,
        match=r"clinical.csv: column 'label' differs across the slide rows of case\(s\) A \(x, y for A\)",
    ) as err:
        _cohort_with(tmp_path, edit, keep_cols=["label"])
    _one_line(err)


def test_clinical_csv_with_a_repeated_required_column(tmp_path: Path) -> None:
    """pandas renames a second 'survival_months' to 'survival_months.1'; the first copy was used without a word."""
    (tmp_path / "clinical.csv").write_text(
        "case_id,slide_id,survival_months,censorship,survival_months ,note,note\n"
        "A,A-1,10,0,99,x,y\nB,B-1,5,1,98,x,y\n"
    )
    with pytest.raises(
        ValueError, match=r"clinical.csv: column\(s\) survival_months appear more than once in the header"
    ) as err:
        Cohort.from_csv(tmp_path / "clinical.csv")
    _one_line(err)
    (tmp_path / "clinical.csv").write_text("case_id,survival_months,censorship,note,note\nA,10,0,x,y\n")
    assert Cohort.from_csv(tmp_path / "clinical.csv").case_ids == [
        "A"
    ]  # a repeated column we do not read is ok
