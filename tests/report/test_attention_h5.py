"""Per-slide attention h5 (coords + attention_scores) for CLAM / TRIDENT heatmap tools."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from survlab.data.batch import collate
from survlab.models.abmil import ABMIL
from survlab.report.attention_h5 import write_attention_h5
from survlab.runner.predict import AttentionSpec, predict

KW: dict[str, Any] = dict(
    genomics=None,
    clinical=None,
    modalities=("wsi",),
    batch_size=3,
    wsi={"encoder": "synthetic", "feature_dim": 8, "cache": False, "format": "h5"},
)


def _cohort_with_attrs(tiny_cohort: Path, tmp_path: Path) -> Path:
    """A copy of the tiny cohort whose h5 coords carry TRIDENT's attrs."""
    root = tmp_path / "cohort"
    shutil.copytree(tiny_cohort, root)
    for p in (root / "features" / "synthetic" / "h5_files").glob("*.h5"):
        with h5py.File(p, "a") as f:
            f["coords"].attrs.update({"patch_size_level0": 512, "target_magnification": 20})
    return root


def export_attention_h5(net: torch.nn.Module, dm: Any, out: Path) -> list[Path]:
    """The one prediction pass over the test part (full patch attention kept), written as h5 files."""
    rows = predict(net, [dm.test_dataloader()], AttentionSpec.of(dm, top_k=None, h5=True))
    return write_attention_h5(rows.slide_attention, out, dm.sources.wsi)


def _source(root: Path, slide: str) -> np.ndarray:
    with h5py.File(root / "features" / "synthetic" / "h5_files" / f"{slide}.h5", "r") as f:
        return f["coords"][()]


def test_attention_h5_holds_every_patch_with_the_models_attention(
    tiny_cohort: Path, tmp_path: Path, make_datamodule: Callable[..., Any]
) -> None:
    root = _cohort_with_attrs(tiny_cohort, tmp_path)
    dm = make_datamodule(root=root, eval_max_patches=None, **KW)
    torch.manual_seed(0)
    net = ABMIL(dm.dims, hidden_dim=8).eval()
    written = export_attention_h5(net, dm, tmp_path / "h5")
    slides_of = dict(zip(dm.cohort.case_ids, dm.cohort.table["slide_ids"], strict=True))
    test_slides = sorted(s for c in dm.split.test for s in slides_of[c])
    assert sorted(p.stem for p in written) == test_slides and len(test_slides) > len(dm.split.test)
    ds = dm.datasets["test"]
    for i in range(len(ds)):
        item = ds[i]
        with torch.no_grad():  # the model on this patient alone (no padding): the reference attention
            attn = net(collate([item])).attention["patch"][0]
        total = 0.0
        for s, slide in enumerate(slides_of[item.case_id]):
            with h5py.File(tmp_path / "h5" / f"{slide}.h5", "r") as f:  # read as CLAM's create_heatmaps does
                scores, coords = f["attention_scores"][()], f["coords"][()]
                assert np.array_equal(f["attention"][()], scores)
                assert f["coords"].attrs["patch_size_level0"] == 512
                rows = f["patch_index"][()]
            source = _source(root, slide)
            assert (
                scores.shape == (len(source),) and coords.shape == source.shape and coords.dtype == np.int64
            )
            assert np.array_equal(coords, source) and np.array_equal(rows, np.arange(len(source)))
            mine = attn[item.slide_index == s].numpy()
            np.testing.assert_allclose(scores, mine, rtol=1e-5, atol=1e-7)
            total += float(scores.sum())
        assert abs(total - 1.0) < 1e-5  # softmax over the patient's whole bag


def test_subsampled_bags_write_the_patches_the_model_saw(
    tiny_cohort: Path, tmp_path: Path, make_datamodule: Callable[..., Any]
) -> None:
    dm = make_datamodule(eval_max_patches=5, **KW)
    torch.manual_seed(0)
    written = export_attention_h5(ABMIL(dm.dims, hidden_dim=8), dm, tmp_path / "h5")
    n_rows = 0
    for path in written:
        with h5py.File(path, "r") as f:
            coords, rows, scores = f["coords"][()], f["patch_index"][()], f["attention_scores"][()]
        assert len(coords) == len(rows) == len(scores) and np.all(np.diff(rows) > 0)
        assert np.array_equal(coords, _source(tiny_cohort, path.stem)[rows])
        n_rows += len(rows)
    assert n_rows == 5 * len(dm.split.test)  # every tiny bag has > 5 patches


def test_run_writes_attention_h5_when_asked(tmp_path: Path) -> None:
    from tests.helpers.runs import run_job

    overrides = [
        "debug=fast_dev_run",
        "data.synthetic.n_patients=40",
        "data.synthetic.feature_dim=8",
        "data.wsi.feature_dim=8",
        "data.synthetic.n_genes=60",
        "data.synthetic.n_pathways=8",
        "data.synthetic.patches_per_slide=[6,20]",
        "model=abmil",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        "export_attention_h5=true",
    ]
    metrics = run_job(tmp_path / "run", overrides)
    files = sorted((tmp_path / "run" / "attention" / "h5").glob("*.h5"))
    assert metrics["n_test"] > 0 and len(files) >= metrics["n_test"]
    with h5py.File(files[0], "r") as f:
        assert f["coords"].shape == (len(f["attention_scores"]), 2)
