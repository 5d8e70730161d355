"""Slide ids in the field's real conventions: CLAM / MCAT / TRIDENT keep the slide file's extension in the CSV's
slide_id ('X.svs') and drop it from the feature files ('X.h5', 'X.pt'); files named after the whole slide file name
('X.svs.h5') are read for slide_id 'X' too. Two files for one slide, or two slide ids for one file, are errors."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from survlab.data.cohort.table import Cohort
from survlab.data.modalities.wsi import BagStore
from survlab.data.modalities.wsi_availability import check_availability

MakeDM = Callable[..., Any]


def _one_line(err: pytest.ExceptionInfo) -> str:
    assert "\n" not in str(err.value), str(err.value)
    return str(err.value)


@pytest.fixture
def cohort(tiny_cohort: Path, tmp_path: Path) -> Path:
    root = tmp_path / "cohort"
    shutil.copytree(tiny_cohort, root)
    return root


def _all_bags(dm: Any) -> dict[str, torch.Tensor]:
    return {
        c: dm.sources.wsi.load_patient(s).features
        for c, s in zip(dm.cohort.case_ids, dm.cohort.table["slide_ids"], strict=True)
    }


def test_clam_slide_ids_with_svs_extension(make_datamodule: MakeDM, cohort: Path, tmp_path: Path) -> None:
    plain = _all_bags(make_datamodule(root=cohort, modalities=("wsi",)))
    clin = pd.read_csv(cohort / "clinical.csv", dtype=str)
    clin["slide_id"] = clin["slide_id"] + ".svs"
    clin.to_csv(cohort / "clinical.csv", index=False)
    shutil.rmtree(tmp_path / "splits")
    dm = make_datamodule(root=cohort, modalities=("wsi",))
    assert all(s.endswith(".svs") for ss in dm.cohort.table["slide_ids"] for s in ss)
    bags = _all_bags(dm)
    assert bags.keys() == plain.keys() and all(torch.equal(bags[c], plain[c]) for c in plain)


@pytest.mark.parametrize("fmt", ["h5", "pt"])
def test_feature_files_named_after_the_slide_file(make_datamodule: MakeDM, cohort: Path, fmt: str) -> None:
    plain = _all_bags(
        make_datamodule(root=cohort, modalities=("wsi",), wsi={"encoder": "synthetic", "format": fmt})
    )
    folder = cohort / "features" / "synthetic" / f"{fmt}_files"
    for p in list(folder.iterdir()):
        p.rename(folder / f"{p.stem}.ndpi.{fmt}")
    dm = make_datamodule(root=cohort, modalities=("wsi",), wsi={"encoder": "synthetic", "format": fmt})
    bags = _all_bags(dm)
    assert all(torch.equal(bags[c], plain[c]) for c in plain)


def _store_with(tmp_path: Path, *names: str) -> BagStore:
    folder = tmp_path / "f" / "enc" / "pt_files"
    folder.mkdir(parents=True)
    for i, name in enumerate(names):
        torch.save(torch.full((2, 3), float(i)), folder / name)
    return BagStore(tmp_path / "f", "enc", format="pt")


def test_two_feature_files_for_one_slide_are_ambiguous(tmp_path: Path) -> None:
    store = _store_with(tmp_path, "X.pt", "X.svs.pt")
    with pytest.raises(ValueError) as err:
        store.path_of("X.svs")
    assert re.search(
        r"pt_files: slide X\.svs matches 2 feature files \(X\.pt, X\.svs\.pt\); delete the stale one",
        _one_line(err),
    )


def test_two_slide_ids_resolving_to_one_file(tmp_path: Path) -> None:
    store = _store_with(tmp_path, "X.pt", "Y.pt")
    (tmp_path / "clinical.csv").write_text(
        "case_id,slide_id,survival_months,censorship\nA,X.svs,10,0\nA,Y,10,0\nB,X,5,1\n"
    )
    cohort = Cohort.from_csv(tmp_path / "clinical.csv")
    with pytest.raises(ValueError) as err:
        check_availability(cohort, [store])
    assert re.search(
        r"slide_id X of case B and X\.svs of case A both resolve to .*X\.pt; list each slide once",
        _one_line(err),
    )
