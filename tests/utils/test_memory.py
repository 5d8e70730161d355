"""Memory a process may still fill (machine and cgroup v1 / v2), and `cache: auto` staying off when the cohort does
not fit it (a cap larger than the job's memory used to end in a silent OOM kill during setup)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from survlab.utils.memory import available_bytes, cgroup_dirs, cgroup_headroom


def _cgroups(tmp_path: Path, proc: str) -> tuple[Path, Path]:
    (tmp_path / "proc_cgroup").write_text(proc)
    return tmp_path / "proc_cgroup", tmp_path / "fs"


def test_cgroup_v1_limit_minus_rss_is_the_headroom(tmp_path: Path) -> None:
    proc, mount = _cgroups(tmp_path, "4:memory:/slurm/job_7\n3:cpuset:/\n")
    d = mount / "memory" / "slurm" / "job_7"
    d.mkdir(parents=True)
    (d / "memory.limit_in_bytes").write_text(f"{4 * 1024**3}\n")
    (d / "memory.stat").write_text(f"cache 999999999\ntotal_rss {1024**3}\n")  # page cache is reclaimable
    (mount / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # the root: no limit
    dirs = cgroup_dirs(proc, mount)
    assert dirs == [d, mount / "memory" / "slurm", mount / "memory"]
    assert [cgroup_headroom(x) for x in dirs] == [3 * 1024**3, None, None]
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 100000000 kB\nMemAvailable: 50000000 kB\n")
    assert available_bytes(meminfo, dirs) == 3 * 1024**3


def test_cgroup_v2_max_minus_anon_and_no_limit(tmp_path: Path) -> None:
    proc, mount = _cgroups(tmp_path, "0::/user.slice/job\n")
    d = mount / "user.slice" / "job"
    d.mkdir(parents=True)
    (d / "memory.max").write_text("2147483648\n")
    (d / "memory.stat").write_text("anon 536870912\nfile 1000000000\n")
    (mount / "memory.max").write_text("max\n")
    assert [cgroup_headroom(x) for x in cgroup_dirs(proc, mount)] == [
        1610612736,
        None,
        None,
    ]  # job, user.slice, root
    assert available_bytes(tmp_path / "missing_meminfo", []) is None


def test_a_limit_on_an_ancestor_cgroup_counts(tmp_path: Path) -> None:
    """SLURM (cgroup v2) limits job_7/ while the task runs in job_7/step_0/user/task_0/ (memory.max "max")."""
    proc, mount = _cgroups(tmp_path, "0::/system.slice/slurmstepd.scope/job_7/step_0/user/task_0\n")
    job = mount / "system.slice" / "slurmstepd.scope" / "job_7"
    task = job / "step_0" / "user" / "task_0"
    task.mkdir(parents=True)
    (task / "memory.max").write_text("max\n")
    (task / "memory.stat").write_text("anon 100\n")
    (job / "memory.max").write_text(f"{2 * 1024**3}\n")
    (job / "memory.stat").write_text(f"anon {1024**3}\nfile 5\n")
    (job / "memory.current").write_text("garbage\n")
    dirs = cgroup_dirs(proc, mount)
    assert dirs[0] == task and job in dirs and dirs[-1] == mount
    assert available_bytes(tmp_path / "missing_meminfo", dirs) == 1024**3


@pytest.mark.slow  # end-to-end: a training run / CLI subprocess (make test-e2e)
def test_auto_cache_stays_off_when_the_cohort_does_not_fit_free_memory(
    make_datamodule, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import survlab.data.modalities.stores as dm_module

    wsi = {"encoder": "synthetic", "feature_dim": 8, "cache": "auto", "cache_max_gb": 8}
    fits = make_datamodule(wsi=wsi)
    assert fits.datasets["train"].sources.wsi.cache_enabled  # a tiny cohort fits the real machine
    monkeypatch.setattr(dm_module, "available_bytes", lambda: 1000)  # 1 kB left
    with caplog.at_level(logging.INFO, logger="survlab.data"):
        tight = make_datamodule(wsi=wsi)
    store = tight.datasets["train"].sources.wsi
    assert not store.cache_enabled and not store._cache
    # the decision does not change the inputs: values are rounded to the cache dtype either way
    a, b = next(iter(fits.test_dataloader())), next(iter(tight.test_dataloader()))
    assert a.case_ids == b.case_ids and torch.equal(a.wsi, b.wsi)
    assert (
        "WSI cache off: the feature files (0.0 GB) exceed 50% of the memory this process may still use"
        in caplog.text
    )
    with caplog.at_level(logging.INFO, logger="survlab.data"):
        forced = make_datamodule(wsi={**wsi, "cache": True})
    assert forced.datasets["train"].sources.wsi.cache_enabled
    assert "on as configured (cache=true), may be killed for memory" in caplog.text
