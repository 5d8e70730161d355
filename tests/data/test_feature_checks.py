"""Every feature file of every split is checked in `CohortDataModule.setup`, before any training: a bad slide of a
TEST patient fails in seconds with one line naming the file, not after the whole training run."""

from __future__ import annotations

import fractions
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

MakeDM = Callable[..., Any]


def _h5(path: Path, **datasets: np.ndarray) -> None:
    path.unlink(missing_ok=True)
    with h5py.File(path, "w") as f:
        for name, data in datasets.items():
            f.create_dataset(name, data=data)


def _nan(path: Path, x: np.ndarray) -> None:
    x[1, 2] = np.nan
    _h5(path, features=x, coords=np.zeros((len(x), 2), np.int64))


def _inf(path: Path, x: np.ndarray) -> None:
    x[0, 0] = -np.inf
    _h5(path, features=x)


BAD_FILES: dict[str, tuple[str, Callable[[Path, np.ndarray], None], str]] = {
    # name: (format read, how the slide's file is broken, what the message says after the file name)
    "nan": ("h5", _nan, r"1 patch\(es\) with NaN/Inf features; re-extract"),
    "inf": ("h5", _inf, r"1 patch\(es\) with NaN/Inf features"),
    "h5 without features": (
        "h5",
        lambda p, x: _h5(p, coords=np.zeros((3, 2))),
        r"no 'features' dataset \(has \['coords'\]\)",
    ),
    "0-byte h5": ("h5", lambda p, x: p.write_bytes(b""), r"0-byte file"),
    "0-byte pt": ("pt", lambda p, x: p.write_bytes(b""), r"0-byte file"),
    "empty bag": (
        "h5",
        lambda p, x: _h5(p, features=np.zeros((0, 8), np.float32)),
        r"empty bag \(0 patches\)",
    ),
    "TRIDENT empty bag": (
        "h5",
        lambda p, x: _h5(p, features=np.zeros((0,), np.float32)),
        r"empty bag \(0 patches\)",
    ),
    "other dim": ("h5", lambda p, x: _h5(p, features=x[:, :6]), r"feature dim 6 != configured feature_dim 8"),
    "pickled object": (
        "pt",
        lambda p, x: torch.save(fractions.Fraction(1, 3), p),
        r"corrupt or unreadable feature file: it holds a pickled Python object \(fractions\.Fraction\)",
    ),
    "text features": (
        "h5",
        lambda p, x: _h5(p, features=np.full((3, 8), b"x")),
        r"features dtype \|S1 is not numeric",
    ),
    "coords mismatch": (
        "h5",
        lambda p, x: _h5(p, features=x, coords=np.zeros((len(x) - 1, 2))),
        r"coords shape \(\d+, 2\) does not match the features \(\d+ patches\)",
    ),
}


@pytest.fixture
def cohort(tiny_cohort: Path, tmp_path: Path) -> Path:
    root = tmp_path / "cohort"
    shutil.copytree(tiny_cohort, root)
    return root


def _test_slide(make_datamodule: MakeDM, root: Path) -> str:
    """A slide of a patient in the TEST part of fold 0 (read only after training)."""
    dm = make_datamodule(root=root, modalities=("wsi",))
    return dm.cohort.rows(dm.split.test[-1:])["slide_ids"].iloc[0][0]


def _features(root: Path, slide: str, fmt: str) -> Path:
    return root / "features" / "synthetic" / f"{fmt}_files" / f"{slide}.{fmt}"


def _one_line_naming(err: pytest.ExceptionInfo, path: Path, says: str) -> None:
    assert re.search(rf"^{re.escape(str(path))}: {says}", str(err.value)), str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_feature_file_of_a_test_patient_fails_in_setup(
    make_datamodule: MakeDM, cohort: Path, kind: str
) -> None:
    fmt, damage, says = BAD_FILES[kind]
    slide = _test_slide(make_datamodule, cohort)
    path = _features(cohort, slide, fmt)
    with h5py.File(_features(cohort, slide, "h5"), "r") as f:
        x = f["features"][()]
    damage(path, x)
    wsi = {"encoder": "synthetic", "feature_dim": 8, "format": fmt}
    with pytest.raises(ValueError) as err:
        make_datamodule(root=cohort, wsi=wsi, modalities=("wsi",))
    _one_line_naming(err, path, says)


def test_feature_dim_differing_between_slides_without_a_configured_dim(
    make_datamodule: MakeDM, cohort: Path
) -> None:
    slide = _test_slide(make_datamodule, cohort)
    path = _features(cohort, slide, "h5")
    with h5py.File(path, "r") as f:
        x = f["features"][()]
    _h5(path, features=np.concatenate([x, x[:, :2]], axis=1))
    with pytest.raises(ValueError) as err:
        make_datamodule(root=cohort, wsi={"encoder": "synthetic", "format": "h5"}, modalities=("wsi",))
    _one_line_naming(err, path, r"feature dim 10 differs from dim 8 of the other slides \(e\.g\. .*\.h5\)")


def test_h5_and_pt_of_one_slide_with_different_content(make_datamodule: MakeDM, cohort: Path) -> None:
    """format=auto reads the .h5; a .pt beside it holding other features means one of them is stale."""
    slide = _test_slide(make_datamodule, cohort)
    pt = _features(cohort, slide, "pt")
    torch.save(torch.load(pt, weights_only=True) + 1.0, pt)
    with pytest.raises(ValueError) as err:
        make_datamodule(root=cohort, modalities=("wsi",))
    _one_line_naming(
        err,
        _features(cohort, slide, "h5"),
        rf"holds other features than {re.escape(str(pt))}; delete the stale",
    )


def test_nan_found_on_first_read_names_the_file_in_the_first_line_of_a_worker_error(
    make_datamodule: MakeDM, cohort: Path
) -> None:
    """Without the RAM cache, values are checked when a bag is read: inside a DataLoader worker, the re-raised error
    still starts (and ends) with the one-line message naming the file."""
    slide = _test_slide(make_datamodule, cohort)
    path = _features(cohort, slide, "h5")
    with h5py.File(path, "r") as f:
        x = f["features"][()]
    _nan(path, x)
    dm = make_datamodule(
        root=cohort,
        wsi={"encoder": "synthetic", "feature_dim": 8, "cache": False},
        modalities=("wsi",),
        num_workers=1,
    )
    with pytest.raises(ValueError) as err:
        list(dm.test_dataloader())
    lines = str(err.value).strip().splitlines()
    expected = f"{path}: 1 patch(es) with NaN/Inf features; re-extract features for this slide"
    assert lines[0] == expected
    assert lines[-1].endswith(f": {expected}")


def test_wrong_encoder_name_lists_the_encoders_found(make_datamodule: MakeDM, cohort: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        make_datamodule(root=cohort, wsi={"encoder": "uni_v1"}, modalities=("wsi",))
    assert re.search(
        r"features/uni_v1 has no h5_files/ or pt_files/ folder; encoders found under .*features: synthetic; set "
        r"data\.wsi\.encoder",
        str(err.value),
    ), str(err.value)
    assert "\n" not in str(err.value)


def test_format_pt_when_only_h5_files_exist(make_datamodule: MakeDM, cohort: Path) -> None:
    shutil.rmtree(cohort / "features" / "synthetic" / "pt_files")
    with pytest.raises(
        FileNotFoundError,
        match=r"synthetic/pt_files does not exist but .*h5_files does; set "
        r"data\.wsi\.format=h5 or auto",
    ):
        make_datamodule(root=cohort, wsi={"encoder": "synthetic", "format": "pt"}, modalities=("wsi",))
