"""Shared fixtures: tiny synthetic cohorts (session-scoped, per xdist worker) and a data-module factory.

- `tiny_cohort`: Path of a 40-patient synthetic cohort (feature_dim 8, 60 genes, 8 pathways, 6..20 patches/slide).
- `tiny_multiscale_cohort`: Path of a 24-patient multi-scale cohort (x5/x10/x20 bags).
- every test under tests/e2e/ (CLI subprocesses, sweeps, DDP simulation, learning and pipeline runs) is marked
  `slow`: `make test` runs the rest (unit tests + doctests), `make test-e2e` these, `make test-all` both.
- `make_datamodule(**overrides)`: a set-up `CohortDataModule` on `tiny_cohort` (WSI + MCAT genomics + clinical +
  labels, 3 folds, split dir under the test's tmp_path); pass `setup=False` to get it un-set-up.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

E2E = Path(__file__).resolve().parent / "e2e"


@pytest.hookimpl(tryfirst=True)  # before `-m 'not slow'` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/e2e/ `slow` (the end-to-end tier)."""
    for item in items:
        if E2E in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.slow)


os.environ.setdefault("WANDB_MODE", "disabled")

TINY_SPEC: dict[str, Any] = dict(
    n_patients=40, feature_dim=8, n_genes=60, n_pathways=8, patches_per_slide=(6, 20), seed=0
)
TINY_MULTISCALE_SPEC: dict[str, Any] = dict(
    n_patients=24,
    feature_dim=8,
    n_genes=60,
    n_pathways=8,
    patches_per_slide=(16, 40),
    multiscale=True,
    seed=1,
)


def _generate(base: Path, spec: dict[str, Any]) -> Path:
    from survlab.data.sources.synthetic import generate_cohort
    from survlab.data.sources.synthetic_spec import SyntheticSpec

    return generate_cohort(base / "cohort", SyntheticSpec(**spec))


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny single-scale synthetic cohort in the CONTRACTS layout (read-only: copy it before editing)."""
    return _generate(tmp_path_factory.mktemp("tiny"), TINY_SPEC)


@pytest.fixture(scope="session")
def tiny_multiscale_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny multi-scale (x5/x10/x20) synthetic cohort (read-only: copy it before editing)."""
    return _generate(tmp_path_factory.mktemp("tiny_ms"), TINY_MULTISCALE_SPEC)


def datamodule_kwargs(root: Path, split_dir: Path, **overrides: Any) -> dict[str, Any]:
    """Default CohortDataModule arguments for a tiny synthetic cohort, with overrides."""
    kwargs: dict[str, Any] = dict(
        name="tiny",
        root=str(root),
        wsi={"encoder": "synthetic", "feature_dim": 8},
        genomics={"signatures": "signatures_mcat6.csv", "scaling": "standard"},
        clinical={"columns": ["age", "sex", "site"], "categorical": ["sex", "site"]},
        label_cols=["label", "grade"],
        splits={"dir": str(split_dir), "folds": 3, "val_fraction": 0.2, "seed": 0},
        batch_size=4,
        max_patches=8,
        seed=0,
    )
    kwargs.update(overrides)
    return kwargs


@pytest.fixture
def make_datamodule(tiny_cohort: Path, tmp_path: Path) -> Callable[..., Any]:
    """Factory: make_datamodule(root=..., setup=True, **CohortDataModule overrides) -> CohortDataModule."""
    from survlab.data.datamodule import CohortDataModule

    def make(setup: bool = True, **overrides: Any) -> CohortDataModule:
        root = Path(overrides.pop("root", tiny_cohort))
        dm = CohortDataModule(**datamodule_kwargs(root, tmp_path / "splits", **overrides))
        if setup:
            dm.prepare_data()
            dm.setup("fit")
        return dm

    return make


# Two pytest-xdist workers share 2 cores: one intra-op thread each (oversubscribed OpenMP threads make tiny torch
# ops ~10x slower). Subprocesses started by tests inherit OMP_NUM_THREADS.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)


TINY_PETCT_SPEC: dict[str, Any] = dict(
    n_patients=24, volume_size=48, n_slices=16, lesion_window=24, radiomics_dim=16, missing_images=1, seed=0
)


@pytest.fixture(scope="session")
def tiny_petct_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic PET/CT cohort (PNG stacks + NIfTI volumes, 24 patients, the last without images;
    read-only: copy it before editing)."""
    from survlab.data.sources.synthetic_petct import PetCtSpec, generate_petct_cohort

    return generate_petct_cohort(tmp_path_factory.mktemp("petct") / "cohort", PetCtSpec(**TINY_PETCT_SPEC))


def petct_kwargs(root: Path, tmp: Path, **overrides: Any) -> dict[str, Any]:
    """CohortDataModule arguments for a PET/CT cohort (conf/data/_petct.yaml in miniature), with overrides;
    `imaging` overrides are merged into the imaging block."""
    imaging = {
        "source": "png",
        "stack_length": 6,
        "image_size": 16,
        "lesion_window": 24,
        "radiomics_dim": 16,
        "missing": "drop",
        "cache_dir": str(tmp / "cache"),
        **overrides.pop("imaging", {}),
    }
    kwargs: dict[str, Any] = dict(
        name="tiny_petct",
        root=str(root),
        slide_col=None,
        time_col=None,
        endpoint="os",
        endpoints={
            "os": {"time": "os_months", "event": "os_event"},
            "dfs": {"time": "dfs_months", "event": "dfs_event"},
        },
        clinical={
            "columns": [
                "age",
                "sex",
                "smoking_status",
                "smoking_duration",
                "smoking_cessation",
                "tumor_diameter",
            ],
            "categorical": ["sex", "smoking_status"],
        },
        labels={
            "subtype": {"column": "subtype", "classes": ["LUAD", "LUSC"]},
            "tnm": {"column": "tnm_stage", "classes": ["I-II", "III", "IV"], "ordinal": True},
        },
        subgroups=["treatment"],
        imaging=imaging,
        modalities=("ct", "clinical"),
        splits={"dir": str(tmp / "splits"), "folds": 3, "val_fraction": 0.2, "seed": 0},
        batch_size=8,
        seed=0,
    )
    kwargs.update(overrides)
    return kwargs
