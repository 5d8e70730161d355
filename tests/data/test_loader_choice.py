"""`data.num_workers: auto` / `data.pin_memory: auto`: DataLoader settings chosen from the machine (cores, CUDA),
recorded in the protocol card, and never changing a batch (patch draws are seeded by seed, epoch and patient)."""

from __future__ import annotations

import warnings
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from survlab.config.search_path import PACKAGE_CONF_DIR
from survlab.data import loaders as dm_module
from survlab.data.datamodule import choose_loader


@pytest.mark.parametrize(
    ("cpus", "devices", "workers"),
    [(1, 1, 0), (2, 1, 0), (3, 1, 2), (4, 1, 3), (16, 1, 4), (16, 8, 0), (16, 4, 3)],
)
def test_auto_workers_follow_the_cores_per_training_process(
    monkeypatch: pytest.MonkeyPatch, cpus: int, devices: int, workers: int
) -> None:
    monkeypatch.setattr(dm_module, "usable_cpus", lambda: cpus)
    choice = choose_loader("auto", "auto", devices=devices, cuda=False)
    assert (choice["num_workers"], choice["pin_memory"], choice["auto"]) == (
        workers,
        False,
        ["num_workers", "pin_memory"],
    )
    # Lightning's own bound (cores // processes - 1): auto never asks for more, so Lightning does not warn either
    from lightning.fabric.utilities import data as fabric_data

    monkeypatch.setattr(fabric_data, "_num_cpus_available", lambda: cpus)
    assert workers <= fabric_data.suggested_max_num_workers(devices)
    assert choose_loader("auto", "auto", cuda=True)["pin_memory"] is True
    assert choose_loader(3, False, cuda=True) | {"cpus": 0} == {
        "num_workers": 3,
        "pin_memory": False,
        "auto": [],
        "cpus": 0,
        "processes": 1,
        "cuda": True,
    }  # what the user set is kept


def test_bad_loader_values_name_the_key(make_datamodule: Any) -> None:
    with pytest.raises(ValueError, match=r"data.num_workers='four': use an integer >= 0, or auto"):
        make_datamodule(setup=False, num_workers="four")
    with pytest.raises(ValueError, match=r"data.pin_memory='yes': use true or false, or auto"):
        make_datamodule(setup=False, pin_memory="yes")


def _epoch_batches(dm: Any, epoch: int) -> list[list[Any]]:
    dm.trainer = SimpleNamespace(current_epoch=epoch, num_devices=1, accelerator=object())
    out = []
    for batch in dm.train_dataloader():
        out.append([batch.case_ids, batch.wsi.clone(), batch.genomics[0].clone() if batch.genomics else None])
    return out


def test_workers_do_not_change_a_batch(make_datamodule: Any) -> None:
    """The same patients, patch subsets and values in every batch of an epoch with 0 and with 2 workers."""
    plain = make_datamodule(num_workers=0)
    workers = make_datamodule(num_workers=2)
    assert workers.num_workers == 2 and plain.num_workers == 0
    a, b = _epoch_batches(plain, 1), _epoch_batches(workers, 1)
    assert [x[0] for x in a] == [x[0] for x in b]
    assert all(torch.equal(x[1], y[1]) for x, y in zip(a, b, strict=True))
    assert [x[0] for x in _epoch_batches(plain, 0)] != [
        x[0] for x in a
    ]  # epochs differ: the test can see order


def test_tcga_base_chooses_from_the_machine_and_the_card_records_it(
    make_datamodule: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TCGA / CLAM bases say auto: on a 2-core CPU machine no workers and no pinning, so no DataLoader warning
    (it was 4 workers + pin_memory: torch's 'pin_memory ... no accelerator' and 'worker processes' warnings)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PACKAGE_CONF_DIR), version_base="1.3"):
        for data in ("tcga_luad", "camelyon16"):
            cfg = compose("config", overrides=[f"data={data}"])
            assert (cfg.data.num_workers, cfg.data.pin_memory) == ("auto", "auto"), data
    GlobalHydra.instance().clear()
    monkeypatch.setattr(dm_module, "usable_cpus", lambda: 2)
    dm = make_datamodule(num_workers="auto", pin_memory="auto")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any DataLoader warning fails
        batches = _epoch_batches(dm, 0)
    assert batches
    loader = dm.describe()["loader"]
    assert loader == {
        "num_workers": 0,
        "pin_memory": False,
        "auto": ["num_workers", "pin_memory"],
        "cpus": 2,
        "processes": 1,
        "cuda": False,
        "persistent_workers": False,
    }
