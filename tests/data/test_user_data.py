"""User data is read-only (DESIGN 'Reliability'): a `public:` / `synthetic:` config whose root names a user folder
fails with one line and leaves every file there untouched; survlab replaces only cohort folders it created itself."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from survlab.data.cohort.splits import ensure_splits
from survlab.data.datamodule import CohortDataModule
from survlab.data.sources.synthetic import generate_cohort
from survlab.data.sources.synthetic_spec import SyntheticSpec

SMALL = SyntheticSpec(
    n_patients=12,
    feature_dim=4,
    n_genes=20,
    n_pathways=4,
    slides_per_patient=(1, 1),
    patches_per_slide=(2, 3),
)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _user_folder(tmp_path: Path) -> Path:
    """A user's cohort folder: their own clinical table and notes."""
    root = tmp_path / "my_cohort"
    (root / "docs").mkdir(parents=True)
    (root / "clinical.csv").write_text(
        "case_id,slide_id,survival_months,censorship\nU1,U1-1,10,0\nU2,U2-1,5,1\n"
    )
    (root / "docs" / "notes.txt").write_text("three years of annotations\n")
    return root


def _public_config(root: Path, split_dir: Path) -> dict[str, Any]:
    """conf/data/gse7390.yaml with the user's name and root (the config a user copies)."""
    return dict(
        name="my_cohort",
        root=str(root),
        public="gse7390",
        slide_col=None,
        wsi=None,
        genomics={"expression": "expression.csv"},
        clinical={"columns": ["age", "er"], "categorical": ["er"]},
        splits={"dir": str(split_dir), "folds": 2},
    )


def _synthetic_config(root: Path, split_dir: Path, **spec: Any) -> dict[str, Any]:
    return dict(
        name="my_cohort",
        root=str(root),
        wsi={"encoder": "synthetic"},
        genomics=None,
        clinical=None,
        synthetic={**SMALL.to_json(), **spec},
        splits={"dir": str(split_dir), "folds": 2},
        batch_size=4,
    )


@pytest.mark.parametrize("kind", ["public", "synthetic"])
def test_generated_cohort_config_pointed_at_a_user_folder_fails_and_deletes_nothing(
    tmp_path: Path, kind: str
) -> None:
    root = _user_folder(tmp_path)
    before = _snapshot(root)
    make = _public_config if kind == "public" else _synthetic_config
    dm = CohortDataModule(**make(root, tmp_path / "splits"))
    for step in (dm.prepare_data, dm.setup):
        with pytest.raises(
            ValueError,
            match=rf"^{kind}: .*{root.name} holds files survlab did not create \(e\.g\. clinical\.csv",
        ) as err:
            step()
        assert "\n" not in str(err.value)
        assert _snapshot(root) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp folder left behind


def test_stale_survlab_cohort_holding_a_user_file_is_not_replaced(tmp_path: Path) -> None:
    root = generate_cohort(tmp_path / "syn", SMALL)
    (root / "my_analysis.ipynb").write_text("{}")
    before = _snapshot(root)
    with pytest.raises(ValueError, match=r"holds files survlab did not create \(e\.g\. my_analysis\.ipynb;"):
        generate_cohort(root, replace(SMALL, seed=5))
    assert _snapshot(root) == before


def test_survlab_cohort_with_its_splits_is_regenerated_for_a_new_spec(tmp_path: Path) -> None:
    """The default flow (root = ${paths.data_dir}/synthetic/default, splits under it): changing the spec replaces
    the folder survlab created, split files included."""
    root = tmp_path / "synthetic" / "default"
    first = CohortDataModule(**{**_synthetic_config(root, root / "unused"), "splits": {"folds": 2}})
    first.setup()
    assert (first.split_dir / "meta.json").is_file() and first.split_dir.is_relative_to(root)
    second = CohortDataModule(
        **{**_synthetic_config(root, root / "unused", n_patients=14), "splits": {"folds": 2}}
    )
    second.setup()
    assert len(second.full_cohort) == 14
    assert json.loads((root / "oracle.json").read_text())["n_patients"] == 14


def test_empty_folder_is_filled_and_marked(tmp_path: Path) -> None:
    (tmp_path / "new").mkdir()
    root = generate_cohort(tmp_path / "new", SMALL)
    assert pd.read_csv(root / "truth.csv").shape[0] == 12
    assert json.loads((root / ".survlab-cohort.json").read_text())["created_by"] == "survlab"


def test_split_dir_holding_foreign_split_files_is_not_overwritten(tmp_path: Path) -> None:
    """A CLAM split folder (splits_0.csv with train/val/test columns, no survlab meta.json) named as splits.dir."""
    split_dir = tmp_path / "clam_splits"
    split_dir.mkdir()
    (split_dir / "splits_0.csv").write_text(",train,val,test\n0,P0,P1,P2\n")
    before = _snapshot(split_dir)
    table = pd.DataFrame({"case_id": [f"P{i}" for i in range(8)], "time": range(1, 9), "event": [1, 0] * 4})
    with pytest.raises(
        ValueError,
        match=r"clam_splits holds split files survlab did not write \(splits_0\.csv, no meta\.json\)",
    ) as err:
        ensure_splits(table, split_dir, folds=2)
    assert "\n" not in str(err.value)
    assert _snapshot(split_dir) == before
