"""Job identity, dir names and locks (survlab.utils.jobs / job_identity / job_dirs / job_hydra); two runs started
together get their own dirs."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from survlab.utils import job_dirs, job_hydra, job_identity, jobs
from tests.helpers.cli import REPO, run_survlab, tiny_overrides
from tests.helpers.proc import run_group
from tests.helpers.runs import compose_config


def _identity(tmp: Path, *overrides: str) -> dict:
    return job_identity.identity_of(
        compose_config(tmp / "out", [f"paths.data_dir={tmp / 'data'}", *overrides])
    )


def test_identity_ignores_paths_and_logging_but_not_settings(tmp_path: Path) -> None:
    base = _identity(tmp_path)
    assert (
        job_identity.identity_of(
            compose_config(
                tmp_path / "o2",
                ["paths.data_dir=/elsewhere", "logger=csv", "trainer.enable_progress_bar=false"],
            )
        )
        == base
    )
    for change in ("seed=1", "model.task.lr=0.01", "data.batch_size=4", "fold=1", "trainer=bf16"):
        assert _identity(tmp_path, change) != base, change
    job_identity.write_record(tmp_path / "job", base, ["seed=0"])
    assert job_identity.check_identity(tmp_path / "job", base) is True
    with pytest.raises(jobs.JobError, match=r"another configuration \(seed: 0 -> 1\); re-run with the same"):
        job_identity.check_identity(tmp_path / "job", _identity(tmp_path, "seed=1"))


def test_split_repeat_zero_keeps_the_identity_and_a_job_tag_per_repeat(tmp_path: Path) -> None:
    """+data.splits.repeat=0 is the original split: a job run before splits.repeat existed keeps its identity; other
    repeats are other jobs, each swept repeat in its own dir."""
    base = _identity(tmp_path)
    assert _identity(tmp_path, "+data.splits.repeat=0") == base
    assert _identity(tmp_path, "+data.splits.repeat=1") != base
    assert _identity(tmp_path, "+data.splits.repeat=2") != _identity(tmp_path, "+data.splits.repeat=1")
    job_dirs.record_sweep_keys(str(tmp_path / "sw"), ["model=snn", "+data.splits.repeat=0,1,2", "fold=0,1"])
    tags = {
        r: job_dirs.job_tag(str(tmp_path / "sw"), [f"+data.splits.repeat={r}", "fold=0"]) for r in (0, 1, 2)
    }
    assert tags == {r: f"/data.splits.repeat={r}" for r in (0, 1, 2)}


def test_loader_settings_are_not_identity_and_older_records_still_match(tmp_path: Path) -> None:
    """data.num_workers / pin_memory never change a batch: not part of a job's identity, so the _tcga default
    moving from 4 workers + pinning to `auto` does not refuse (or re-run) a finished TCGA job recorded before."""
    base = _identity(tmp_path, "data=tcga_luad")
    assert base["data"].get("num_workers") is None and base["data"].get("pin_memory") is None
    assert _identity(tmp_path, "data=tcga_luad", "data.num_workers=2", "data.pin_memory=false") == base
    old = json.loads(json.dumps(base))
    old["data"].update(num_workers=4, pin_memory=True)  # what a record of the earlier default holds
    job_identity.write_record(tmp_path / "job", old, [])
    assert job_identity.check_identity(tmp_path / "job", base) is True
    with pytest.raises(jobs.JobError, match=r"another configuration \(data.batch_size: 8 -> 4\)"):
        job_identity.check_identity(
            tmp_path / "job", _identity(tmp_path, "data=tcga_luad", "data.batch_size=4")
        )


def test_results_without_a_record_are_never_reused(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "DONE").write_text("")
    assert job_identity.check_identity(tmp_path / "new", {"a": 1}) is False
    with pytest.raises(jobs.JobError, match=r"holds results \(DONE\) without a survlab job record"):
        job_identity.check_identity(tmp_path / "old", {"a": 1})


def test_job_tag_names_swept_keys_only_and_hashes_long_tags(tmp_path: Path) -> None:
    overrides = [
        "model=snn",
        "fold=0",
        "seed=1",
        "model.task.lr=0.001",
        "debug=tiny",
        f"paths.log_dir={tmp_path}",
    ]
    assert (
        job_dirs.job_tag(str(tmp_path), overrides) == "/debug=tiny,model.task.lr=0.001,seed=1"
    )  # keys not recorded
    job_dirs.record_sweep_keys(
        tmp_path, ["model=snn,abmil", "seed=0,1", "fold=range(2)", "debug=tiny"], ["model.task.lr"]
    )
    assert job_dirs.job_tag(str(tmp_path), overrides) == "/model.task.lr=0.001,seed=1"
    long = [f"+model.net.hidden=[{','.join(['256'] * 30)}]", "seed=0"]
    job_dirs.record_sweep_keys(tmp_path, [], ["model.net.hidden", "seed"])
    tags = {job_dirs.job_tag(str(tmp_path), [long[0], f"seed={s}"]) for s in range(3)}
    assert len(tags) == 3 and all(len(t) <= 81 for t in tags)


def test_a_live_job_dir_is_refused(tmp_path: Path) -> None:
    with job_dirs.JobLock(tmp_path):
        with pytest.raises(jobs.JobError, match="is in use by another running job"):
            job_dirs.JobLock(tmp_path).__enter__()
    with job_dirs.JobLock(tmp_path):  # released on exit
        pass


def _read_only(monkeypatch: pytest.MonkeyPatch, ro: Path) -> None:
    """Make every file or dir creation at or under `ro` fail with EROFS, as on a read-only mount (the tests run as
    root, which chmod does not stop)."""
    real_mkdir, real_open = os.mkdir, os.open

    def under(path: object) -> bool:
        return os.path.abspath(os.fsdecode(path)).startswith(str(ro))  # type: ignore[arg-type]

    def mkdir(path: object, *args: object, **kwargs: object) -> None:
        if under(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))  # type: ignore[arg-type]
        real_mkdir(path, *args, **kwargs)  # type: ignore[arg-type]

    def open_(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if under(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))  # type: ignore[arg-type]
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)


@pytest.mark.parametrize("mode", ["run", "sweep"])
def test_a_read_only_run_or_sweep_dir_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, mode: str
) -> None:
    """A run / sweep dir on a read-only file system ends in survlab's one line, not Hydra's traceback and hint."""
    from hydra.core.global_hydra import GlobalHydra

    from survlab.cli import train as run

    ro = tmp_path / "ro"
    ro.mkdir()
    _read_only(monkeypatch, ro)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    target = ro / mode
    where = [f"hydra.run.dir={target}"] if mode == "run" else [f"hydra.sweep.dir={target}", "fold=0,1"]
    flag = ["-m"] if mode == "sweep" else []
    monkeypatch.setattr(
        sys, "argv", ["survlab.run", *flag, *tiny_overrides(tmp_path, tmp_path / "data"), *where]
    )
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as exit_:
        run.main()
    err = capsys.readouterr().err
    key = "hydra.run.dir" if mode == "run" else "hydra.sweep.dir"
    assert exit_.value.code == 1 and err.strip().splitlines() == [
        f"survlab: error: {mode} dir: cannot write {target} (Read-only file system); pass a writable {key}=<dir>"
    ], err[-2000:]
    assert not target.exists() and not (tmp_path / "data").exists()


@pytest.mark.slow  # end-to-end: a training run / CLI subprocess (make test-e2e)
def test_two_runs_started_together_get_their_own_dirs(tmp_path: Path) -> None:
    """Run dirs used to be named to the second: two runs started in the same second wrote into one dir."""
    env = {"WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PATH": "/usr/bin:/bin"}
    data = tmp_path / "data"
    # generate the cohort once first, so the two runs below start at the same moment
    prep = [
        sys.executable,
        "-m",
        "survlab.run",
        *tiny_overrides(tmp_path, data),
        "model=snn",
        "trainer.max_epochs=1",
    ]
    assert run_group(prep, cwd=REPO, env=env, capture_output=True, timeout=300).returncode == 0
    with ThreadPoolExecutor(2) as pool:  # two runs at the same time
        procs = list(
            pool.map(
                lambda s: run_group(
                    [*prep, f"seed={s}"],
                    cwd=REPO,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=300,
                ),
                (1, 2),
            )
        )
    outs = [p.stdout for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    runs = sorted((tmp_path / "logs" / "runs" / "snn" / "synthetic" / "fold0").glob("*/metrics.json"))
    seeds = sorted(json.loads(m.read_text())["seed"] for m in runs)
    assert seeds == [0, 1, 2], runs


@pytest.mark.slow  # end-to-end: a training run / CLI subprocess (make test-e2e)
def test_resume_a_single_run_by_its_dir(tmp_path: Path) -> None:
    """`resume=<run dir>` reuses the killed run's recorded overrides and continues from its last.ckpt."""
    env = {"SURVLAB_TEST_KILL": "1"}
    run = tmp_path / "run"
    args = [
        *tiny_overrides(tmp_path, tmp_path / "data"),
        "model=snn",
        "trainer.max_epochs=3",
        f"hydra.run.dir={run}",
        "+callbacks.kill._target_=tests.helpers.runs.KillAtEpoch",
        "+callbacks.kill.epoch=2",
        "+callbacks.kill.env=SURVLAB_TEST_KILL",
    ]
    killed = run_survlab(args, env=env)
    assert killed.returncode == 1 and killed.stderr.strip().splitlines()[-1].startswith(
        "survlab: error: RuntimeError: simulated kill at the start of epoch 2"
    ), killed.stderr[-2000:]
    resumed = run_survlab([f"resume={run}"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {run / 'checkpoints' / 'last.ckpt'}" in resumed.stdout + resumed.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_trained"] == 3 and (run / "DONE").is_file()


def test_hydra_writes_its_record_only_into_a_new_or_same_identity_job_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 25.4: `hydra.output_subdir` and the job log resolve to 'write nothing' for a job survlab will refuse."""
    from omegaconf import OmegaConf, open_dict

    from survlab.cli import train as run  # registers resolve_auto as an identity step  # noqa: F401
    from survlab.config.check_task import resolve_auto

    out = tmp_path / "run"
    base = [f"paths.data_dir={tmp_path / 'data'}", "model=snn"]
    root = compose_config(out, base)
    assert job_hydra.may_write_hydra_record(root)  # a new dir
    assert OmegaConf.select(root, "hydra.output_subdir") == ".hydra"
    task = OmegaConf.create(OmegaConf.to_container(root, resolve=False))
    with open_dict(task):
        del task["hydra"]
    resolve_auto(task)  # as the job does before it records its identity (monitor: auto -> val/cindex, ...)
    job_identity.write_record(out, job_identity.identity_of(task), [])
    (out / jobs.DONE).write_text("")
    assert job_hydra.may_write_hydra_record(compose_config(out, base))  # the same job again: resume / skip
    other = compose_config(out, [*base, "seed=1"])
    assert not job_hydra.may_write_hydra_record(other)
    assert OmegaConf.select(other, "hydra.output_subdir") is None
    assert OmegaConf.select(other, "hydra.job_logging.handlers.file.filename") == os.devnull
    same = compose_config(out, base)
    assert (
        OmegaConf.select(same, "hydra.job_logging.handlers.file.filename")
        == f"{out}/{same.hydra.job.name}.log"
    )
    with job_dirs.JobLock(out):  # the same configuration, but a live job holds the dir
        assert not job_hydra.may_write_hydra_record(same)
        monkeypatch.setenv(
            "LOCAL_RANK", "1"
        )  # ... unless this is that job's DDP child rank (its own log file)
        assert job_hydra.may_write_hydra_record(same)


def _hashes(d: Path) -> dict[str, str]:
    import hashlib

    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in d.rglob("*") if p.is_file()
    }


@pytest.mark.slow
def test_a_refused_run_or_sweep_job_leaves_the_existing_run_byte_identical(tmp_path: Path) -> None:
    """Issue 25.4: Hydra used to rewrite .hydra/config.yaml and overrides.yaml (and the .lock holder) of a finished
    run before survlab refused the changed configuration."""
    common = [*tiny_overrides(tmp_path, tmp_path / "data"), "model=snn"]
    run_dir = tmp_path / "run"
    first = run_survlab([*common, f"hydra.run.dir={run_dir}"])
    assert first.returncode == 0, first.stderr[-3000:]
    before = _hashes(run_dir)
    assert {".hydra/config.yaml", ".hydra/overrides.yaml", "job.json", "DONE", "run.log"} <= set(before)
    refused = run_survlab([*common, f"hydra.run.dir={run_dir}", "seed=1"])
    assert (
        refused.returncode == 1 and "holds a job with another configuration (seed: 0 -> 1)" in refused.stderr
    )
    assert _hashes(run_dir) == before
    # a sweep: the job dir of a finished sweep, re-run with a changed (unswept) setting
    sweep = tmp_path / "sweep"
    args = ["-m", *common, "fold=0", "seed=0,1", f"hydra.sweep.dir={sweep}"]
    assert run_survlab(args).returncode == 0
    job_dirs = sorted(p.parent for p in sweep.rglob("DONE"))
    assert len(job_dirs) == 2
    before = {d: _hashes(d) for d in job_dirs}
    refused = run_survlab([*args, "data.batch_size=4"])
    assert refused.returncode == 1 and refused.stdout.count("holds a job with another configuration") == 2
    assert {d: _hashes(d) for d in job_dirs} == before
    # the same configuration again still writes its record and log as before (skip of a finished job)
    again = run_survlab([*common, f"hydra.run.dir={run_dir}"])
    assert again.returncode == 0 and "skipping completed job" in (run_dir / "run.log").read_text()
