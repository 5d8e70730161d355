"""WSI bag reading (.pt / .h5), BagStore layout resolution, patient concatenation, caching, multi-scale drops."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import survlab.data.modalities.wsi as wsi_mod
from survlab.data.cohort.table import Cohort
from survlab.data.modalities.wsi import BagStore
from survlab.data.modalities.wsi_availability import check_availability
from survlab.data.modalities.wsi_files import read_bag


def _write(base: Path, slide: str, feats: torch.Tensor, fmt: str, coords: np.ndarray | None = None) -> Path:
    d = base / f"{fmt}_files"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{slide}.{fmt}"
    if fmt == "pt":
        torch.save(feats, path)
    else:
        with h5py.File(path, "w") as f:
            f.create_dataset("features", data=feats.numpy())
            if coords is not None:
                f.create_dataset("coords", data=coords)
    return path


def test_read_pt_tensor_dict_and_h5(tmp_path: Path) -> None:
    x = torch.randn(5, 4)
    p = _write(tmp_path, "s", x, "pt")
    assert torch.equal(read_bag(p)[0], x) and read_bag(p)[1] is None
    torch.save({"features": x, "coords": torch.zeros(5, 2)}, tmp_path / "d.pt")
    feats, coords = read_bag(tmp_path / "d.pt", feature_dim=4)
    assert torch.equal(feats, x) and coords.shape == (5, 2)
    h = _write(tmp_path, "s", x, "h5", coords=np.arange(10).reshape(5, 2))
    feats, coords = read_bag(h)
    assert torch.equal(feats, x) and coords[4].tolist() == [8, 9]


def test_store_prefers_h5_and_concatenates_slides(tmp_path: Path) -> None:
    base = tmp_path / "feats" / "enc"
    _write(base, "a", torch.zeros(3, 4), "pt")
    _write(base, "a", torch.ones(3, 4), "h5", coords=np.zeros((3, 2)))
    _write(base, "b", 2 * torch.ones(2, 4), "h5", coords=np.ones((2, 2)))
    store = BagStore(tmp_path / "feats", "enc", format="auto")
    assert store.path_of("a").suffix == ".h5"
    assert BagStore(tmp_path / "feats", "enc", format="pt").path_of("a").suffix == ".pt"
    bag = store.load_patient(["a", "b"])
    assert bag.features.shape == (5, 4) and bag.features[:3].eq(1).all() and bag.features[3:].eq(2).all()
    assert bag.slide_index.tolist() == [0, 0, 0, 1, 1]
    assert bag.coords.shape == (5, 2)
    assert store.feature_dim == 4  # inferred from the first bag, then enforced


def test_cache_reads_each_bag_once_and_stores_fp16(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path / "feats"
    x = torch.randn(6, 4)
    _write(base, "a", x, "pt")
    calls = []
    real = wsi_mod.read_bag
    monkeypatch.setattr(wsi_mod, "read_bag", lambda *a, **k: calls.append(a) or real(*a, **k))
    store = BagStore(base, None, cache=True, cache_dtype="float16")
    first, second = store.load_patient(["a"]), store.load_patient(["a"])
    assert len(calls) == 1
    assert first.features.dtype == second.features.dtype == torch.float32
    assert torch.equal(first.features, second.features)  # first read is rounded like the cached copy
    assert torch.allclose(second.features, x, atol=1e-2)
    assert next(iter(store._cache.values())).features.dtype == torch.float16
    capped = BagStore(base, None, cache=True, cache_max_bytes=10)
    capped.load_patient(["a"])
    assert not capped._cache  # over the byte cap: not cached


def test_multiscale_drop_report(tiny_multiscale_cohort: Path, tmp_path: Path) -> None:
    root = tmp_path / "c"
    shutil.copytree(tiny_multiscale_cohort, root)
    cohort = Cohort.from_csv(root / "clinical.csv")
    multi = cohort.table[cohort.table["slide_ids"].map(len) > 1].iloc[0]
    single = cohort.table[cohort.table["slide_ids"].map(len) == 1].iloc[0]
    for slide, scale in [(multi["slide_ids"][0], "x5"), (single["slide_ids"][0], "x10")]:
        for fmt in ("pt", "h5"):
            (root / "features" / "synthetic" / scale / f"{fmt}_files" / f"{slide}.{fmt}").unlink()
    stores = [BagStore(root / "features", "synthetic", scale=s) for s in ("x5", "x10", "x20")]
    with pytest.raises(
        ValueError, match=rf"1 patient\(s\) have no slide with features at all scales.*{single.case_id}"
    ):
        check_availability(cohort, stores, allow_missing=False, partial_ok=True)
    kept, report = check_availability(cohort, stores, allow_missing=True, partial_ok=True)
    assert report.dropped_slides == {
        multi["slide_ids"][0]: "missing x5",
        single["slide_ids"][0]: "missing x10",
    }
    assert report.dropped_patients == [single.case_id]
    assert len(kept) == len(cohort) - 1
    assert multi["slide_ids"][0] not in kept.rows([multi.case_id])["slide_ids"].iloc[0]
    assert "dropped 2 slide(s)" in report.summary()


def test_pickled_store_leaves_its_ram_cache_behind(tmp_path: Path) -> None:
    """Spawned DataLoader workers receive the store pickled: the cache filled in setup must not travel with it."""
    import pickle

    _write(tmp_path / "feats", "a", torch.ones(4, 3), "pt")
    store = BagStore(tmp_path / "feats", None, cache=True)
    store.fill_cache([["a"]])
    assert store._cache_bytes > 0
    clone = pickle.loads(pickle.dumps(store))
    assert clone._cache_bytes == 0 and not clone._cache
    assert torch.equal(clone.load_patient(["a"]).features, store.load_patient(["a"]).features)
