"""JSON a user writes or edits (prompt files, preprocessing.json, split meta, a run's protocol / metrics) is read with
`survlab.utils.files.read_json`: a key given twice in one object is refused with the file and the key named (the
json module keeps the last value without a word)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from survlab.data.cohort.checks import DataFileError
from survlab.data.cohort.time_bins import TimeBins
from survlab.data.fitted import read_preprocessing
from survlab.data.modalities.text import read_prompts
from survlab.utils.files import DuplicateKeyError, read_json


def test_read_json_refuses_a_key_given_twice_at_any_depth(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"a": 1, "b": {"c": [1, {"d": 2, "d": 3}]}}')
    assert json.loads(path.read_text())["b"]["c"][1] == {
        "d": 3
    }  # what the json module does: the last one wins
    with pytest.raises(DuplicateKeyError, match=r"x\.json: key 'd' appears twice .*values 2 and 3") as err:
        read_json(path)
    assert "\n" not in str(err.value)
    path.write_text('{"a": 1, "b": {"a": 2}}')  # one key per object: the same name in two objects is fine
    assert read_json(path) == {"a": 1, "b": {"a": 2}}


def test_prompt_file_with_a_class_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"normal": ["no tumour"], "tumor": ["tumour cells"], "normal": ["benign tissue"]}')
    with pytest.raises(DataFileError, match=r"prompts file .*p\.json: key 'normal' appears twice"):
        read_prompts(path)


def test_preprocessing_json_with_a_key_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "preprocessing.json"
    path.write_text('{"format": "x", "time_bins": {"edges": [0, 1]}, "time_bins": {"edges": [0, 2]}}')
    with pytest.raises(ValueError, match=r"preprocessing\.json: key 'time_bins' appears twice"):
        read_preprocessing(path)


def test_saved_time_bins_with_a_key_twice_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bins.json"
    path.write_text('{"edges": [0, 5, "inf"], "edges": [0, 7, "inf"], "convention": "quantile"}')
    with pytest.raises(DuplicateKeyError, match="key 'edges'"):
        TimeBins.load(path)
