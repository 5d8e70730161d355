"""`survlab train ... data=synthetic_missing` (data.missing=keep) end to end: a network that cannot take absent
genomics stops before training with the one-line capability error; late fusion (once it declares
`accepts_absent` genomics) trains and is tested on the fold's full test part, the patients without genomics
included."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers.cli import run_survlab, tiny_overrides

pytestmark = pytest.mark.slow


def test_network_without_absent_genomics_gets_the_one_line_capability_error(tmp_path: Path) -> None:
    proc = run_survlab(["model=snn", "data=synthetic_missing", *tiny_overrides(tmp_path, tmp_path / "data")])
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out
    oracle = json.loads(next((tmp_path / "data").rglob("oracle.json")).read_text())["missing"]["genomics"]
    line = next(ln for ln in out.splitlines() if "cannot take patients without" in ln)
    assert (
        f"model=snn cannot take patients without genomics ({oracle['n']} of data=synthetic_missing lack it, e.g. "
        in line
    )
    assert "use data.missing=drop, or a network that accepts an absent genomics:" in line
    assert not list((tmp_path / "logs").rglob("predictions.csv"))


def test_late_fusion_keeps_the_patients_without_genomics_in_its_test_part(tmp_path: Path) -> None:
    from survlab.models.late_fusion import LateFusion

    if "genomics" not in getattr(LateFusion, "accepts_absent", frozenset()):
        pytest.skip("LateFusion does not accept an absent genomics yet (the models branch adds it)")
    proc = run_survlab(
        ["model=late_fusion", "data=synthetic_missing", *tiny_overrides(tmp_path, tmp_path / "data")]
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    lacking = set(
        json.loads(next((tmp_path / "data").rglob("oracle.json")).read_text())["missing"]["genomics"][
            "patients"
        ]
    )
    split = pd.read_csv(next((tmp_path / "data").rglob("splits_0.csv")), dtype=str)
    test_ids = set(split.loc[split["split"] == "test", "case_id"])
    preds = pd.read_csv(next((tmp_path / "logs").rglob("predictions.csv")), dtype={"case_id": str})
    assert sorted(preds["case_id"]) == sorted(test_ids)  # the whole test part of the fold, each once ...
    assert test_ids & lacking  # ... the patients without genomics included
