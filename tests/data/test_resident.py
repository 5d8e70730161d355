"""Device-resident WSI bags (`data.wsi.cache=device`): batches gathered on the device equal the RAM-cache batches
(single- and multi-scale, capped training subsets, bucketing, DataLoader workers), a whole run predicts the same, and
bad settings fail with a message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from survlab.data.batch import Batch
from survlab.data.modalities.resident import ResidentBags, lookup

MakeDM = Callable[..., Any]
WSI = {"encoder": "synthetic", "feature_dim": 8}


def _assert_same_batches(a: list[Batch], b: list[Batch]) -> None:
    assert len(a) == len(b) > 1
    for x, y in zip(a, b, strict=True):
        assert x.case_ids == y.case_ids and y.resident == {}
        for name in ("wsi", "wsi_mask", "slide_index", "coords", "patch_index"):
            u, v = getattr(x, name), getattr(y, name)
            assert (u is None) == (v is None), name
            if u is not None:
                assert u.dtype == v.dtype and torch.equal(u, v), name
        assert (x.scales is None) == (y.scales is None)
        for s in x.scales or {}:
            assert list(x.scales) == list(y.scales)
            assert torch.equal(x.scales[s], y.scales[s]) and torch.equal(x.scale_masks[s], y.scale_masks[s])


def _batches(loader: Any) -> list[Batch]:
    return [b.to("cpu") for b in loader]


def test_resident_batches_equal_ram_cache_batches(make_datamodule: MakeDM) -> None:
    """Training batches (capped random subsets of epoch 0, length-bucketed) and full test bags are equal, value for
    value, to the fp16 RAM cache's; the batch carries row numbers until `.to` gathers."""
    ram = make_datamodule(wsi={**WSI, "cache": True}, max_patches=10, bucketing=True, eval_batch_size=3)
    dev = make_datamodule(wsi={**WSI, "cache": "device"}, max_patches=10, bucketing=True, eval_batch_size=3)
    res = dev.datasets["train"].sources.wsi.resident
    assert isinstance(res, ResidentBags) and res.dtype == torch.float16
    assert not dev.datasets["train"].sources.wsi._cache  # no second copy in the RAM cache
    raw = next(iter(dev.train_dataloader()))
    assert raw.wsi is None and raw.wsi_mask is not None and set(raw.resident) == {"wsi"}
    _assert_same_batches(_batches(ram.train_dataloader()), _batches(dev.train_dataloader()))
    _assert_same_batches(_batches(ram.test_dataloader()), _batches(dev.test_dataloader()))
    full = next(iter(dev.test_dataloader())).to("cpu")
    assert full.wsi_mask.sum(1).max() > 10  # evaluation bags are not capped


def test_resident_multiscale_batches_equal_ram_cache_batches(
    tiny_multiscale_cohort: Path, make_datamodule: MakeDM
) -> None:
    kw: dict[str, Any] = dict(
        root=tiny_multiscale_cohort,
        genomics=None,
        clinical=None,
        modalities=("scales",),
        max_patches_per_scale={"x20": 6},
        max_patches=12,
        eval_batch_size=2,
    )
    ram = make_datamodule(wsi={"encoder": "synthetic", "scales": ["x5", "x10", "x20"], "cache": True}, **kw)
    dev = make_datamodule(
        wsi={"encoder": "synthetic", "scales": ["x5", "x10", "x20"], "cache": "device"}, **kw
    )
    raw = next(iter(dev.train_dataloader()))
    assert raw.scales is None and set(raw.resident) == {"scale:x5", "scale:x10", "scale:x20"}
    _assert_same_batches(_batches(ram.train_dataloader()), _batches(dev.train_dataloader()))
    _assert_same_batches(_batches(ram.test_dataloader()), _batches(dev.test_dataloader()))


def test_resident_batches_through_a_worker_process(make_datamodule: MakeDM) -> None:
    """A forked DataLoader worker hands out row numbers without the features (the store pickles without them);
    the main process gathers."""
    import pickle

    ram = make_datamodule(wsi={**WSI, "cache": True})
    dev = make_datamodule(wsi={**WSI, "cache": "device"}, num_workers=1)
    _assert_same_batches(_batches(ram.test_dataloader()), _batches(dev.test_dataloader()))
    res = dev.datasets["test"].sources.wsi.resident
    copy = pickle.loads(pickle.dumps(res))
    assert copy.features is None and copy.key == res.key and lookup(res.key) is res
    with pytest.raises(RuntimeError, match="pickled into another process"):
        copy.on(torch.device("cpu"))


def test_gather_pads_with_zeros_and_reads_the_right_rows() -> None:
    a, b = torch.arange(12.0).reshape(6, 2), -torch.arange(1.0, 5.0).reshape(2, 2)
    bags = ResidentBags.from_bags({("s2",): b, ("s1",): a})  # stored in slide order: s1 first
    assert bags.span(["s1"]) == (0, 6) and bags.span(["s2"]) == (6, 2)
    rows = torch.tensor([[5, 0, 2], [1, -1, -1]])
    out = bags.gather(torch.tensor([0, 6]), rows, torch.device("cpu"))
    assert out.dtype == torch.float32
    assert torch.equal(out[0], a[[5, 0, 2]]) and torch.equal(
        out[1], torch.tensor([[-3.0, -4.0], [0, 0], [0, 0]])
    )


def test_device_that_cannot_hold_the_bags_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    bags = ResidentBags.from_bags({("s1",): torch.ones(4, 2)})

    class Full:
        def to(self, device: Any) -> Any:
            raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(bags, "_features", lambda: Full())
    with pytest.raises(RuntimeError, match=r"do not fit in the memory of cuda:0; use data.wsi.cache=auto"):
        bags.on(torch.device("cuda", 0))


def test_unknown_cache_setting_is_an_error(make_datamodule: MakeDM) -> None:
    with pytest.raises(ValueError, match=r"data.wsi.cache must be auto .* or device .*got 'gpu'"):
        make_datamodule(wsi={**WSI, "cache": "gpu"}, setup=False)


def test_run_with_resident_bags_predicts_as_with_the_ram_cache(tmp_path: Path) -> None:
    """`data.wsi.cache=device` from the command line: 2 epochs of ABMIL (capped training bags, bucketing) give the
    same predictions.csv as the RAM cache, byte for byte (on the CPU the gather runs on the host)."""
    from tests.helpers.runs import run_job

    common = [
        "data=synthetic",
        "model=abmil",
        "trainer.max_epochs=2",
        "data.num_workers=0",
        "data.pin_memory=false",
        "data.max_patches=16",
        "data.bucketing=true",
        "data.synthetic.n_patients=40",
        "data.synthetic.feature_dim=8",
        "data.wsi.feature_dim=8",
        "export_attention=false",
        "export_attention_h5=true",
        "callbacks.rich_progress_bar=null",
        "trainer.enable_progress_bar=false",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
    ]
    run_job(tmp_path / "ram", [*common, "++data.wsi.cache=true"])
    run_job(tmp_path / "dev", [*common, "++data.wsi.cache=device"])
    ram, dev = (
        (tmp_path / "ram" / "predictions.csv").read_bytes(),
        (tmp_path / "dev" / "predictions.csv").read_bytes(),
    )
    assert ram == dev and len(ram.splitlines()) > 5
    h5 = {p.name: p.read_bytes() for p in (tmp_path / "ram" / "attention" / "h5").glob("*.h5")}
    assert len(h5) > 5  # per-slide attention h5 is written from resident batches too, with the same content
    assert h5 == {p.name: p.read_bytes() for p in (tmp_path / "dev" / "attention" / "h5").glob("*.h5")}


def test_dataloader_pin_memory_pins_every_tensor_of_a_batch(
    make_datamodule: MakeDM, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`data.pin_memory=true` used to do nothing: the DataLoader pins only tensors, mappings, sequences and objects
    with a `pin_memory` method, and `Batch` had none. Now every tensor (also inside dicts and lists) is pinned."""
    from torch.utils.data._utils.pin_memory import pin_memory

    pinned: list[tuple[int, ...]] = []

    def fake_pin(self: torch.Tensor) -> torch.Tensor:  # no CUDA here: record the call, return a copy
        pinned.append(tuple(self.shape))
        return self.clone()

    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    dm = make_datamodule(wsi={**WSI, "cache": "device"})
    batch = next(iter(dm.train_dataloader()))
    out = pin_memory(batch)  # what the DataLoader's pinning thread calls
    assert isinstance(out, Batch) and out.case_ids == batch.case_ids
    n_tensors = sum(
        1
        for v in (*vars(batch).values(), *batch.genomics, *batch.labels.values(), *batch.resident["wsi"])
        if isinstance(v, torch.Tensor)
    )
    assert len(pinned) >= n_tensors > 8
    assert (
        torch.equal(out.resident["wsi"][2], batch.resident["wsi"][2])
        and out.resident["wsi"][0] == batch.resident["wsi"][0]
    )


def test_host_copy_is_released_after_the_upload_and_copied_back_on_demand() -> None:
    bags = ResidentBags.from_bags({("s1",): torch.arange(6.0).reshape(3, 2)})
    host = bags.features.clone()
    bags._on[torch.device("cuda", 0)] = host.clone()  # as `on(cuda)` leaves it (no GPU here)
    bags.features = None
    out = bags.gather(torch.tensor([0]), torch.tensor([[2, 0]]), torch.device("cpu"))
    assert torch.equal(bags.features, host) and torch.equal(out[0], host[[2, 0]].float())


def test_device_store_that_cannot_be_staged_in_host_memory_is_refused(
    make_datamodule: MakeDM, monkeypatch: pytest.MonkeyPatch
) -> None:
    import survlab.data.modalities.stores as dm_module

    monkeypatch.setattr(dm_module, "available_bytes", lambda: 1000)
    with pytest.raises(
        ValueError, match=r"data.wsi.cache=device stages the bags .* in host memory .* may use 0.0 GB"
    ):
        make_datamodule(wsi={**WSI, "cache": "device"})


def test_device_store_with_spawned_ranks_is_refused_before_any_data_is_read() -> None:
    from omegaconf import OmegaConf

    from survlab.config.check import _check_resident
    from survlab.config.check_values import ConfigError

    cfg = OmegaConf.create({"data": {"wsi": {"cache": "device"}}, "trainer": {"strategy": "ddp_spawn"}})
    with pytest.raises(
        ConfigError, match=r"cache=device cannot be used with trainer.strategy=ddp_spawn .*strategy=ddp"
    ):
        _check_resident(cfg)
    _check_resident(OmegaConf.create({"data": {"wsi": {"cache": "device"}}, "trainer": {"strategy": "ddp"}}))
