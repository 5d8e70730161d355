"""`external_data` / `external_data_overrides` are checked with the job's config, before any data is read: an
unknown cohort name, an option the external cohort's data module does not take, overrides without a cohort."""

from __future__ import annotations

from pathlib import Path

import pytest

from survlab.config.check import check_config
from survlab.config.check_values import ConfigError
from tests.helpers.runs import compose_config


def _check(tmp_path: Path, *overrides: str) -> None:
    check_config(compose_config(tmp_path / "run", ["data=synthetic", "model=abmil", *overrides]))


def test_external_cohort_and_its_overrides_pass(tmp_path: Path) -> None:
    _check(tmp_path, "external_data=tcga_luad", "external_data_overrides={root:/data/cptac,missing:keep}")
    _check(tmp_path, "external_data=tcga_luad", "external_data_overrides={}")
    _check(tmp_path)


def test_an_unknown_external_cohort_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"^external_data=tcga_lua: no conf/data/tcga_lua.yaml; available: .*tcga_luad"
    ):
        _check(tmp_path, "external_data=tcga_lua")


def test_an_option_the_external_data_module_does_not_take_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^external_data_overrides.rooot: unknown option of CohortDataModule; allowed: .*root",
    ):
        _check(tmp_path, "external_data=tcga_luad", "external_data_overrides={rooot:/data/cptac}")


def test_overrides_without_an_external_cohort_are_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^external_data_overrides=\{'root': '/x'\} needs external_data=<a conf/data name>$",
    ):
        _check(tmp_path, "external_data_overrides={root:/x}")
    with pytest.raises(ConfigError, match=r"^external_data_overrides='x' must be a mapping"):
        _check(tmp_path, "external_data=tcga_luad", "external_data_overrides=x")
