"""build_datamodule tells the data module which modalities the network takes absent (data.missing=keep) and how
to word the capability error; models_accepting_absent reads the model configs' network classes."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.runs import compose_config

from survlab.models.snn import SNN
from survlab.runner.build import build_datamodule
from survlab.runner.modalities import job_accepts_absent, models_accepting_absent


def test_build_datamodule_passes_the_accepted_set_and_the_model_name(tmp_path: Path) -> None:
    cfg = compose_config(
        tmp_path / "run", ["model=snn", "data=synthetic_missing", f"paths.data_dir={tmp_path}"]
    )
    dm = build_datamodule(cfg)
    assert dm.missing == "keep" and dm.accepts_absent == frozenset() and dm.network == "model=snn"
    assert dm.modalities == ("genomics",) and dm.absent_alternatives is models_accepting_absent


def test_models_accepting_absent_lists_the_configs_whose_network_declares_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(SNN, "accepts_absent", frozenset(), raising=False)  # whatever the models declare
    assert "snn" not in models_accepting_absent("genomics") and job_accepts_absent(SNN) == frozenset()
    monkeypatch.setattr(SNN, "accepts_absent", frozenset({"genomics"}), raising=False)
    found = models_accepting_absent("genomics")
    assert {"snn", "snn_cls"} <= set(found) and "abmil" not in found
    assert "snn" not in models_accepting_absent("wsi")
