"""Packed feature store (one memory-mapped file per cohort) and length bucketing: exact bags, stale / truncated /
foreign stores detected, and neither changes what a model predicts."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from survlab.data.cohort.checks import DataFileError
from survlab.data.modalities.packed import MARKER, PackedStore
from survlab.data.modalities.wsi import BagStore
from survlab.data.samplers import EpochLoader, EpochSampler, LengthOrderSampler, bucket_order


def _write_pt_cohort(base: Path, n_slides: int = 6, dim: int = 5, dtype: torch.dtype = torch.float16) -> dict:
    """pt_files with fp16 features + coords (dict format), random lengths."""
    d = base / "features" / "enc" / "pt_files"
    d.mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    bags = {}
    for i in range(n_slides):
        n = int(torch.randint(3, 12, (1,), generator=gen))
        f = torch.randn(n, dim, generator=gen).to(dtype)
        c = torch.randint(0, 10_000, (n, 2), generator=gen)
        torch.save({"features": f, "coords": c}, d / f"S{i}.pt")
        bags[f"S{i}"] = (f, c)
    return bags


def _store(base: Path) -> BagStore:
    st = BagStore(base / "features", encoder="enc", format="pt")
    return st


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int16) if t.dtype in (torch.float16, torch.bfloat16) else t.view(torch.int32)


def test_packed_bags_are_bit_identical_to_fp16_sources(tmp_path: Path) -> None:
    bags = _write_pt_cohort(tmp_path)
    st = _store(tmp_path)
    st.check_headers(list(bags))
    st.use_packed(tmp_path / "packed", list(bags), "float16", cohort="c")
    for sid, (f, c) in bags.items():
        got_f, got_c = st.packed.read(sid)
        assert got_f.dtype == torch.float16 and torch.equal(_bits(got_f), _bits(f))
        assert torch.equal(got_c, c.float())
    # a patient bag (two slides) through the store equals the concatenated sources
    bag = st.load_raw(["S1", "S3"])
    assert torch.equal(bag.features.float(), torch.cat([bags["S1"][0], bags["S3"][0]]).float())
    assert bag.slide_index.tolist() == [0] * len(bags["S1"][0]) + [1] * len(bags["S3"][0])


def test_fp32_sources_are_exact_with_float32_store(tmp_path: Path) -> None:
    bags = _write_pt_cohort(tmp_path, dtype=torch.float32)
    st = _store(tmp_path)
    st.check_headers(list(bags))
    st.use_packed(tmp_path / "packed", list(bags), "float32")
    for sid, (f, _) in bags.items():
        assert torch.equal(_bits(st.packed.read(sid)[0]), _bits(f))


def test_changed_source_is_detected_and_store_rebuilt(tmp_path: Path) -> None:
    bags = _write_pt_cohort(tmp_path)
    st = _store(tmp_path)
    st.check_headers(list(bags))
    st.use_packed(tmp_path / "packed", list(bags))
    new = torch.full((4, 5), 7.0, dtype=torch.float16)
    src = tmp_path / "features/enc/pt_files/S2.pt"
    torch.save({"features": new, "coords": torch.zeros(4, 2, dtype=torch.long)}, src)
    assert PackedStore(tmp_path / "packed").stale_sources() == [str(src.resolve())]
    st2 = _store(tmp_path)
    assert not st2.reuse_packed(tmp_path / "packed", list(bags))  # stale: not reused silently
    st2.check_headers(list(bags))
    st2.use_packed(tmp_path / "packed", list(bags))
    assert torch.equal(st2.packed.read("S2")[0], new)


def test_truncated_source_fails_with_the_file_named(tmp_path: Path) -> None:
    bags = _write_pt_cohort(tmp_path)
    st = _store(tmp_path)
    st.check_headers(list(bags))
    st.use_packed(tmp_path / "packed", list(bags))
    src = tmp_path / "features/enc/pt_files/S4.pt"
    src.write_bytes(src.read_bytes()[:100])
    st2 = _store(tmp_path)
    assert not st2.reuse_packed(tmp_path / "packed", list(bags))
    with pytest.raises(DataFileError, match=r"S4\.pt: corrupt or unreadable feature file"):
        st2.check_headers(list(bags))


def test_truncated_store_is_rebuilt(tmp_path: Path) -> None:
    bags = _write_pt_cohort(tmp_path)
    st = _store(tmp_path)
    st.check_headers(list(bags))
    st.use_packed(tmp_path / "packed", list(bags))
    feats = tmp_path / "packed/features.bin"
    full = feats.stat().st_size
    os.truncate(feats, full - 10)
    assert PackedStore(tmp_path / "packed").truncated()
    st2 = _store(tmp_path)
    assert not st2.reuse_packed(tmp_path / "packed", list(bags))
    st2.check_headers(list(bags))
    st2.use_packed(tmp_path / "packed", list(bags))
    assert feats.stat().st_size == full
    assert torch.equal(st2.packed.read("S5")[0], bags["S5"][0])


def test_store_of_another_cohort_is_refused(tmp_path: Path) -> None:
    bags = _write_pt_cohort(tmp_path)
    st = _store(tmp_path)
    st.check_headers(list(bags))
    st.use_packed(tmp_path / "packed", list(bags)[:4], cohort="cohortA")
    before = (tmp_path / "packed/index.json").read_text()
    with pytest.raises(
        DataFileError, match=r"written for another cohort \(cohortA, 4 slides\) than data=cohortB"
    ):
        st.use_packed(tmp_path / "packed", list(bags), cohort="cohortB")
    assert (tmp_path / "packed/index.json").read_text() == before  # refused, not overwritten


def test_foreign_folder_at_packed_dir_is_never_deleted(tmp_path: Path) -> None:
    bags = _write_pt_cohort(tmp_path)
    mine = tmp_path / "packed"
    mine.mkdir()
    (mine / "notes.txt").write_text("user file")
    st = _store(tmp_path)
    st.check_headers(list(bags))
    with pytest.raises(DataFileError, match="not a survlab packed store"):
        st.use_packed(mine, list(bags))
    assert (mine / "notes.txt").read_text() == "user file"


def test_datamodule_packed_and_bucketed_predictions_equal_plain(make_datamodule, tmp_path: Path) -> None:
    """Same untrained network, same test patients: plain files vs packed fp32 store + length-bucketed batches."""
    from survlab.models.abmil import ABMIL

    plain = make_datamodule(wsi={"encoder": "synthetic", "feature_dim": 8, "cache": False}, eval_batch_size=3)
    fast = make_datamodule(
        wsi={
            "encoder": "synthetic",
            "feature_dim": 8,
            "cache": False,
            "packed": True,
            "packed_dir": str(tmp_path / "packed"),
            "packed_dtype": "float32",
        },
        eval_batch_size=3,
        bucketing=True,
    )
    assert (tmp_path / "packed/synthetic/single" / MARKER).is_file()
    assert isinstance(fast.test_dataloader().sampler, LengthOrderSampler)
    torch.manual_seed(0)
    net = ABMIL(dims=plain.dims).eval()

    def risks(dm) -> dict[int, list[float]]:
        out = {}
        with torch.no_grad():
            for b in dm.test_dataloader():
                for i, r in zip(b.index.tolist(), net(b).hazard_logits.tolist(), strict=True):
                    out[i] = r
        return out

    a, b = risks(plain), risks(fast)
    assert sorted(a) == sorted(b) and len(a) > 5
    np.testing.assert_allclose([a[i] for i in sorted(a)], [b[i] for i in sorted(a)], rtol=1e-5, atol=1e-6)
    # the fp16 RAM cache (and an fp16 packed store) change predictions only by fp16 rounding of the inputs
    cached = make_datamodule(wsi={"encoder": "synthetic", "feature_dim": 8, "cache": True}, eval_batch_size=3)
    c = risks(cached)
    np.testing.assert_allclose([a[i] for i in sorted(a)], [c[i] for i in sorted(a)], atol=2e-3)
    assert not np.allclose(
        [a[i] for i in sorted(a)], [c[i] for i in sorted(a)], atol=0, rtol=0
    )  # it did round
    # the packed store is reused (not rebuilt) by the next run
    mtime = (tmp_path / "packed/synthetic/single/features.bin").stat().st_mtime_ns
    make_datamodule(
        wsi={
            "encoder": "synthetic",
            "feature_dim": 8,
            "cache": False,
            "packed": True,
            "packed_dir": str(tmp_path / "packed"),
            "packed_dtype": "float32",
        }
    )
    assert (tmp_path / "packed/synthetic/single/features.bin").stat().st_mtime_ns == mtime


def test_packed_on_a_real_cohort_needs_a_packed_dir(make_datamodule) -> None:
    with pytest.raises(ValueError, match=r"wsi.packed=true needs wsi.packed_dir"):
        make_datamodule(wsi={"encoder": "synthetic", "feature_dim": 8, "packed": True})


def test_bucket_order_is_a_permutation_with_similar_lengths_per_batch() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 5000, 101).tolist()
    s = EpochSampler(101, seed=3, epoch_fn=lambda: 2, lengths=lengths, batch_size=8, bucket_batches=4)
    keys = list(s)
    order = [i for i, _ in keys]
    assert sorted(order) == list(range(101)) and {e for _, e in keys} == {2}
    assert order == [i for i, _ in s]  # a function of (seed, epoch)
    other = [i for i, _ in EpochSampler(101, seed=3, epoch_fn=lambda: 3, lengths=lengths, batch_size=8)]
    assert other != order

    def padded(o: list[int]) -> int:  # patches computed when each batch pads to its longest bag
        return sum(max(lengths[i] for i in o[k : k + 8]) * len(o[k : k + 8]) for k in range(0, len(o), 8))

    plain = [i for i, _ in EpochSampler(101, seed=3, epoch_fn=lambda: 2)]
    assert padded(order) < 0.8 * padded(plain)
    assert (
        len(order) % 8 == 5 and order[-5:] == bucket_order(order, lengths, 8, 1, None)[-5:]
    )  # partial batch last


class _Keys(torch.utils.data.Dataset):
    """dataset[(i, epoch)] -> (i, epoch): what the sampler handed to the (worker) process."""

    def __len__(self) -> int:
        return 29

    def __getitem__(self, key: tuple[int, int]) -> tuple[int, int]:
        return key


def test_epoch_loader_draws_the_epoch_of_its_first_batch_with_workers() -> None:
    """A worker-backed DataLoader draws when its iterator is created; Lightning creates a resumed run's iterator
    before restoring the epoch. EpochLoader draws at the first batch: the epoch read then, not at iter()."""
    epoch = [0]
    sampler = EpochSampler(29, seed=1, epoch_fn=lambda: epoch[0], lengths=list(range(29)), batch_size=4)
    loader = EpochLoader(_Keys(), sampler=sampler, batch_size=4, num_workers=1, collate_fn=list)
    it = iter(loader)  # as Lightning's setup_data does before the checkpoint's epoch is restored
    epoch[0] = 3
    keys = [k for batch in it for k in batch]
    assert keys == list(EpochSampler(29, seed=1, epoch_fn=lambda: 3, lengths=list(range(29)), batch_size=4))


def test_epoch_loader_skips_the_batches_already_trained_on() -> None:
    """Resumed inside an epoch (k batches done): the rest of the same epoch's batches, unchanged."""
    full = [
        b
        for b in EpochLoader(
            _Keys(), sampler=EpochSampler(29, seed=1, epoch_fn=lambda: 2), batch_size=4, collate_fn=list
        )
    ]
    rest = EpochLoader(
        _Keys(),
        sampler=EpochSampler(29, seed=1, epoch_fn=lambda: 2),
        batch_size=4,
        collate_fn=list,
        batches_done=lambda: 3,
    )
    assert list(rest) == full[3:] and len(full) == 8
    assert list(rest) == full[3:]  # batches_done is read at each epoch's first batch


def test_length_order_sampler_longest_first() -> None:
    assert list(LengthOrderSampler([3, 9, 3, 1])) == [1, 0, 2, 3]


def test_packed_store_pickles_without_its_file_descriptors(tmp_path: Path) -> None:
    import pickle

    bags = _write_pt_cohort(tmp_path)
    st = _store(tmp_path)
    st.check_headers(list(bags))
    st.use_packed(tmp_path / "packed", list(bags))
    st.packed.read("S0")
    clone = pickle.loads(pickle.dumps(st.packed))
    assert clone._feats is None and torch.equal(clone.read("S0")[0], bags["S0"][0])
    meta = json.loads((tmp_path / "packed/index.json").read_text())
    assert meta["total_patches"] == sum(len(f) for f, _ in bags.values())
    shutil.rmtree(tmp_path / "packed")


def test_pack_command_builds_verifies_and_reports_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from survlab.cli.pack import main

    root = tmp_path / "syn"
    args = ["data=synthetic", f"data.root={root}", "data.synthetic.n_patients=12", "data.wsi.format=pt"]
    assert main([*args, "--verify"]) == 0
    out = capsys.readouterr().out
    assert f"{root}-packed/synthetic/single: " in out and "verify: all bags equal their source" in out
    meta = json.loads((Path(f"{root}-packed") / "synthetic/single/index.json").read_text())
    assert meta["dtype"] == "float16" and len(meta["slides"]) > 12
    # a real cohort without packed_dir: one line naming the setting, exit 1, no traceback
    assert main(["data=tcga_luad", f"paths.data_dir={tmp_path}", "data.wsi.packed_dir=null"]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("survlab: error: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    )


def test_failed_build_removes_only_its_own_temp_folder(tmp_path: Path) -> None:
    from survlab.data.modalities.packed import build_packed

    bags = _write_pt_cohort(tmp_path)
    lookalike = tmp_path / f"packed.tmp{os.getpid()}"  # what an older build would have named (and deleted)
    lookalike.mkdir()
    (lookalike / "mine.txt").write_text("user file")
    paths = {s: tmp_path / f"features/enc/pt_files/{s}.pt" for s in bags}

    def failing(sid: str):
        raise DataFileError(f"{sid}: unreadable")

    with pytest.raises(DataFileError, match="unreadable"):
        build_packed(tmp_path / "packed", paths, failing, "k", 5)
    assert (lookalike / "mine.txt").read_text() == "user file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features", lookalike.name]


def test_single_and_multi_scale_stores_of_one_encoder_get_disjoint_folders(tmp_path: Path) -> None:
    """wsi.packed_dir/<encoder>/single and wsi.packed_dir/<encoder>/<scale>: neither folder holds the other, so
    rebuilding one store never replaces another (they collided when the single-scale store was <encoder>/ itself)."""
    from types import SimpleNamespace

    from survlab.data.modalities.stores import packed_dir

    wsi, root = {"packed_dir": str(tmp_path / "packed")}, tmp_path / "data"
    single = packed_dir(wsi, root, "c", False, SimpleNamespace(encoder="uni", scale=None))
    scales = [
        packed_dir(wsi, root, "c", False, SimpleNamespace(encoder="uni", scale=s)) for s in ("x5", "x20")
    ]
    folders = [single, *scales]
    assert single == tmp_path / "packed" / "uni" / "single"
    assert all(a == b or (a not in b.parents and b not in a.parents) for a in folders for b in folders)
