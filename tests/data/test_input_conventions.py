"""Bad table input is refused saying what was found: a time cell '12,5' is a decimal comma (not "missing, zero or
negative"), a ';'-separated CSV is a delimiter problem (not a column-naming one), '1,5' in a gene or clinical column
is a decimal comma, inf is not a value."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from survlab.data.cohort.table import Cohort
from survlab.data.modalities.genomics import read_expression, read_signatures

MakeDM = Callable[..., Any]


def _one_line(err: pytest.ExceptionInfo) -> str:
    assert "\n" not in str(err.value), str(err.value)
    return str(err.value)


# ---------------------------------------------------------------------------------------------- survival times
@pytest.mark.parametrize(
    ("cell", "says"),
    [
        ('"12,5"', r"B: '12,5' \(decimal comma: write 12\.5\)"),
        ("twelve", r"B: 'twelve' \(text, not a number\)"),
        ("", r"B: empty"),
        ("0", r"B: 0 \(zero\)"),
        ("-3", r"B: -3 \(negative\)"),
        ("inf", r"B: inf \(not finite\)"),
    ],
)
def test_bad_time_cell_says_what_was_found(tmp_path: Path, cell: str, says: str) -> None:
    (tmp_path / "clinical.csv").write_text(
        f"case_id,slide_id,survival_months,censorship\nA,A-1,10.5,0\nB,B-1,{cell},1\nC,C-1,7,0\n"
    )
    with pytest.raises(ValueError) as err:
        Cohort.from_csv(tmp_path / "clinical.csv")
    assert re.search(
        rf"clinical\.csv: survival time 'survival_months' must be a positive number of months; case\(s\) {says}; "
        r"fix the values or remove these patients",
        _one_line(err),
    ), str(err.value)


def test_several_bad_times_are_listed_per_case(tmp_path: Path) -> None:
    (tmp_path / "clinical.csv").write_text(
        'case_id,slide_id,survival_months,censorship\nA,A-1,"3,25",0\nA,A-2,"3,25",0\nB,B-1,-1,1\nC,C-1,7,0\n'
    )
    with pytest.raises(
        ValueError, match=r"case\(s\) A: '3,25' \(decimal comma: write 3\.25\), B: -1 \(negative\);"
    ):
        Cohort.from_csv(tmp_path / "clinical.csv")


# ---------------------------------------------------------------------------------------------- delimiters
def test_semicolon_separated_clinical_csv(tmp_path: Path) -> None:
    (tmp_path / "clinical.csv").write_text(
        "case_id;slide_id;survival_months;censorship\nA;A-1;12,5;0\nB;B-1;3;1\n"
    )
    with pytest.raises(ValueError) as err:
        Cohort.from_csv(tmp_path / "clinical.csv")
    msg = _one_line(err)
    assert re.search(
        r"clinical\.csv: the file is semicolon-separated \(header 'case_id;slide_id;survival_months;"
        r"censorship'\), survlab reads comma-separated CSV; save it with ','",
        msg,
    ), msg
    assert "rename the columns" not in msg


def test_tab_separated_expression_and_signatures(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text("case_id\tG1\tG2\nA\t1.5\t2\n")
    with pytest.raises(ValueError, match=r"e\.csv: the file is tab-separated"):
        read_expression(tmp_path / "e.csv")
    (tmp_path / "s.csv").write_text("immune;prolif\nCD8A;MKI67\n")
    with pytest.raises(ValueError, match=r"s\.csv: the file is semicolon-separated"):
        read_signatures(tmp_path / "s.csv")


def test_expression_with_decimal_commas_or_infinite_values(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text('case_id,G1,G2\nA,"1,5",2\nB,3,4\n')
    with pytest.raises(ValueError) as err:
        read_expression(tmp_path / "e.csv")
    assert re.search(
        r"e\.csv: gene column\(s\) G1 are not numeric \(case A: '1,5' \(decimal comma: write 1\.5\)\)",
        _one_line(err),
    ), str(err.value)
    pd.DataFrame({"case_id": ["A", "B"], "G1": [1.0, np.inf], "G2": [2.0, 3.0]}).to_csv(
        tmp_path / "e.csv", index=False
    )
    with pytest.raises(ValueError) as err:
        read_expression(tmp_path / "e.csv")
    assert re.search(
        r"e\.csv: non-finite expression value\(s\) \(case B, gene G1: inf; 1 in all\); fix", _one_line(err)
    )


def test_numeric_clinical_column_with_decimal_commas(tmp_path: Path) -> None:
    """'62,5' made the whole 'age' column categorical without a word (one one-hot feature per distinct age)."""
    from survlab.data.cohort.clinical import ClinicalEncoder

    rows = pd.DataFrame({"case_id": ["A", "B", "C"], "age": ["62,5", "70", None]})
    with pytest.raises(ValueError) as err:
        ClinicalEncoder(["age"]).fit(rows)
    assert re.search(
        r"clinical column 'age' is not numeric: case A has '62,5' \(decimal comma: write 62\.5\); fix "
        r"the values or list 'age' under clinical\.categorical",
        _one_line(err),
    ), str(err.value)
    assert ClinicalEncoder(["age"], categorical=["age"]).fit(rows).dim == 2  # declared categorical: accepted


# ---------------------------------------------------------------------------------------------- more broken input
def test_expression_file_that_is_empty_or_not_text(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_bytes(b"")
    with pytest.raises(
        ValueError, match=r"e\.csv: cannot parse as CSV \(.*\); fix or regenerate the file"
    ) as err:
        read_expression(tmp_path / "e.csv")
    _one_line(err)
    (tmp_path / "e.csv").write_bytes("case_id,G1\nA,1\n".encode("utf-16"))
    with pytest.raises(ValueError, match=r"e\.csv: cannot parse as CSV") as err:
        read_expression(tmp_path / "e.csv")
    _one_line(err)


def test_clinical_csv_with_a_header_and_no_rows(tmp_path: Path) -> None:
    (tmp_path / "clinical.csv").write_text("case_id,slide_id,survival_months,censorship\n")
    with pytest.raises(
        ValueError, match=r"clinical\.csv: no patient rows \(only a header\); fill in the table"
    ) as err:
        Cohort.from_csv(tmp_path / "clinical.csv")
    _one_line(err)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (  # every cell empty: named by the missing-cell counts (survlab.data.cohort.counts), before the classes
            "",
            r"clinical\.csv: label 'grade' \(column 'grade'\) has no value for any of the 40 patients of fold 0 "
            r"\(empty column\); fill in 'grade', or remove 'grade' from data\.labels \(or data\.label_cols\)",
        ),
        (
            "G2",
            r"clinical\.csv: label column 'grade' has one class \(G2\); a label needs >= 2 classes: fix the column "
            r"or remove it from label_cols",
        ),
    ],
)
def test_label_column_without_two_classes(
    make_datamodule: MakeDM, tiny_cohort: Path, tmp_path: Path, value: str, says: str
) -> None:
    """A label column with one class (or none) gave a 1- (or 0-) way classification head, found in training."""
    root = tmp_path / "cohort"
    shutil.copytree(tiny_cohort, root)
    clin = pd.read_csv(root / "clinical.csv", dtype=str)
    clin["grade"] = value
    clin.to_csv(root / "clinical.csv", index=False)
    with pytest.raises(
        ValueError,
        match=says,
    ) as err:
        make_datamodule(root=root, modalities=("genomics",))
    _one_line(err)


def test_synthetic_and_public_config_errors(tmp_path: Path) -> None:
    from survlab.data.datamodule import CohortDataModule

    with pytest.raises(ValueError, match=r"data=x: set either synthetic: or public:, not both") as err:
        CohortDataModule(name="x", root=str(tmp_path), synthetic={"n_patients": 10}, public="gse7390")
    _one_line(err)
    with pytest.raises(
        ValueError, match=r"data=x: unknown synthetic option\(s\) \['n_patient'\]; allowed: .*n_patients"
    ) as err:
        CohortDataModule(name="x", root=str(tmp_path), synthetic={"n_patient": 10})
    _one_line(err)


def test_semicolon_separated_csv_with_several_decimal_commas_per_row(tmp_path: Path) -> None:
    """Rows with more ','-fields than the one-cell header: pandas moves the extra fields into the index (or fails
    to tokenize rows of unequal length); either way the message is the delimiter, not the column names."""
    (tmp_path / "clinical.csv").write_text(
        "case_id;slide_id;survival_months;censorship;age\nA;A-1;12,5;0;61,5\nB;B-1;3,0;1;70,2\n"
    )
    with pytest.raises(ValueError, match=r"clinical\.csv: the file is semicolon-separated") as err:
        Cohort.from_csv(tmp_path / "clinical.csv")
    _one_line(err)
    (tmp_path / "e.csv").write_text("case_id;G1;G2\nA;1,5;2,5\n")
    with pytest.raises(ValueError, match=r"e\.csv: the file is semicolon-separated"):
        read_expression(tmp_path / "e.csv")
