"""End-to-end sweeps: model × fold multirun → summary; resume skips finished jobs; failures are listed; launchers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers.cli import check, run_survlab, tiny_overrides
from tests.helpers.pooled import within_fold_cindex

CALLBACK = "++hydra.callbacks.sweep_summary._target_=survlab.runner.hydra_callbacks.SweepSummaryCallback"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sweep_data")


def test_multirun_summary_then_resume(tmp_path: Path, data_dir: Path) -> None:
    """2 models × 2 folds: the summary equals the per-job files; re-running the sweep skips finished jobs.
    (One test, not two sharing a fixture: under pytest-xdist each worker would run the sweep again.)"""
    args = [
        "-m",
        "model=abmil,snn",
        "fold=0,1",
        *tiny_overrides(tmp_path, data_dir),
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        CALLBACK,
    ]
    out = check(run_survlab(args))
    sweep_dir = tmp_path / "sweep"
    _check_summary(sweep_dir, out)
    _check_resume(sweep_dir, args)


def _check_summary(sweep_dir: Path, out: str) -> None:
    jobs = sorted(p.parent for p in sweep_dir.glob("*/*/fold*/DONE"))
    assert [j.relative_to(sweep_dir).as_posix() for j in jobs] == [
        "abmil/synthetic/fold0",
        "abmil/synthetic/fold1",
        "snn/synthetic/fold0",
        "snn/synthetic/fold1",
    ]
    for name in ("summary.csv", "summary.md", "paired.csv", "comparison.png"):
        assert (sweep_dir / name).is_file(), f"{name} missing; log tail:\n{out[-2000:]}"
    table = pd.read_csv(sweep_dir / "summary.csv")
    assert set(table.model) == {"abmil", "snn"} and set(table.cohort) == {"synthetic"}
    for model in ("abmil", "snn"):
        row = table[table.model == model].iloc[0]
        per_job = [
            json.loads((sweep_dir / model / "synthetic" / f"fold{f}" / "metrics.json").read_text())
            for f in (0, 1)
        ]
        assert row.n_folds == 2 and row.n_failed == 0
        for key in ("test/cindex", "test/auc_td", "val/best"):
            vals = pd.Series([m[key] for m in per_job], dtype=float)
            assert row[f"{key}_mean"] == pytest.approx(vals.mean())
            assert row[f"{key}_std"] == pytest.approx(vals.std(ddof=1))
        preds = pd.concat(
            [pd.read_csv(sweep_dir / model / "synthetic" / f"fold{f}" / "predictions.csv") for f in (0, 1)]
        )
        assert not preds.case_id.duplicated().any(), "a patient is in two test folds"
        assert row.pooled_cindex == pytest.approx(within_fold_cindex(preds))  # pairs within a fold
    # paired comparison: snn vs the default reference (abmil, first alphabetically), per-fold differences
    paired = pd.read_csv(sweep_dir / "paired.csv")
    assert list(paired.fold) == [0, 1] and set(paired.model) == {"snn"} and set(paired.reference) == {"abmil"}
    snn = table[table.model == "snn"].iloc[0]
    assert snn.vs_ref_diff_mean == pytest.approx(
        snn["test/cindex_mean"] - table[table.model == "abmil"].iloc[0]["test/cindex_mean"]
    )
    assert "Paired comparison vs `abmil`" in (sweep_dir / "summary.md").read_text()


def _check_resume(sweep_dir: Path, args: list[str]) -> None:
    done = sorted(sweep_dir.glob("*/*/fold*/DONE"))
    mtimes = {p: p.stat().st_mtime_ns for p in done}
    # one job "killed" mid-way: markers gone -> only that one runs again
    incomplete = sweep_dir / "snn" / "synthetic" / "fold1"
    (incomplete / "DONE").unlink()
    out = check(run_survlab(args))
    assert out.count("skipping completed job") == 3, out[-3000:]
    for p, t in mtimes.items():
        if p.parent != incomplete:
            assert p.stat().st_mtime_ns == t, f"{p.parent} ran again"
    assert (incomplete / "DONE").is_file()
    assert pd.read_csv(sweep_dir / "summary.csv").n_folds.tolist() == [2, 2]


def test_failing_job_is_listed_and_sweep_continues(tmp_path: Path, data_dir: Path) -> None:
    # fold 99 does not exist (5 folds): that job raises at start-up inside run.py; fold 0 must still run
    args = [
        "-m",
        "model=abmil",
        "fold=0,99",
        *tiny_overrides(tmp_path, data_dir),
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        CALLBACK,
    ]
    proc = run_survlab(args)
    out = proc.stdout + proc.stderr  # the sweep goes on, then exits non-zero naming the failed job
    assert proc.returncode == 1, out[-3000:]
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"survlab: error: sweep {tmp_path / 'sweep'}: 1 job(s) not completed (0 refused, 1 failed; first: "
        )
    ), proc.stderr[-2000:]
    sweep_dir = tmp_path / "sweep"
    assert (sweep_dir / "abmil/synthetic/fold0/DONE").is_file()
    failed = sweep_dir / "abmil/synthetic/fold99/FAILED"
    assert failed.is_file() and "Traceback" in failed.read_text(), out[-3000:]
    md = (sweep_dir / "summary.md").read_text()
    first = failed.read_text().splitlines()[0]
    assert (
        "## Failed and incomplete jobs" in md and f"| failed | `abmil` | synthetic | 99 | {first[:50]}" in md
    )
    row = pd.read_csv(sweep_dir / "summary.csv").iloc[0]
    assert (row.n_folds, row.n_failed) == (1, 1) and math.isfinite(row["test/cindex_mean"])


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_launcher_runs_two_job_sweep(launcher: str, tmp_path: Path, data_dir: Path) -> None:
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else ["hydra.launcher.timeout_min=10"]
    args = [
        "-m",
        f"hydra/launcher={launcher}",
        *extra,
        "model=abmil",
        "fold=0,1",
        *tiny_overrides(tmp_path, data_dir),
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        CALLBACK,
    ]
    out = check(run_survlab(args, timeout=400))
    sweep_dir = tmp_path / "sweep"
    for f in (0, 1):
        job = sweep_dir / "abmil" / "synthetic" / f"fold{f}"
        assert (job / "DONE").is_file(), out[-3000:]
        assert math.isfinite(json.loads((job / "metrics.json").read_text())["test/cindex"])
    assert pd.read_csv(sweep_dir / "summary.csv").n_folds.tolist() == [2]


def test_optuna_search_optimises_inner_validation(tmp_path: Path, data_dir: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="pip install -e '.[hpo]'")
    import yaml

    args = [
        "-m",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=2",
        "model=abmil",
        *tiny_overrides(tmp_path, data_dir),
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    check(run_survlab(args))
    sweep_dir = tmp_path / "sweep"
    trials = sorted((sweep_dir / "abmil" / "synthetic" / "fold0").glob("trial*"))
    assert len(trials) == 2 and all((t / "DONE").is_file() for t in trials)
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    val = [json.loads((t / "metrics.json").read_text())["val/best"] for t in trials]
    assert best["best_value"] == pytest.approx(max(val)), "the sampler must see the inner-validation metric"
    assert set(best["best_params"]) >= {"model.task.lr", "model.task.weight_decay"}


def test_seed_sweep_gives_one_job_and_one_summary_row_per_seed(tmp_path: Path, data_dir: Path) -> None:
    """`-m seed=0,1 fold=0,1` runs four jobs in four dirs (seeds used to collapse into fold<k>, the second value
    'skipping completed job'); the summary has one row per seed, or pools them with --over seed."""
    sweep_dir = tmp_path / "sweep"
    args = [
        "-m",
        "model=snn",
        "seed=0,1",
        "fold=0,1",
        *tiny_overrides(tmp_path, data_dir),
        f"hydra.sweep.dir={sweep_dir}",
        CALLBACK,
    ]
    out = check(run_survlab(args))
    assert "skipping completed job" not in out
    done = sorted(p.parent.relative_to(sweep_dir).as_posix() for p in sweep_dir.rglob("DONE"))
    assert done == [
        "snn/synthetic/fold0/seed=0",
        "snn/synthetic/fold0/seed=1",
        "snn/synthetic/fold1/seed=0",
        "snn/synthetic/fold1/seed=1",
    ]
    seeds = {d: json.loads((sweep_dir / d / "metrics.json").read_text())["seed"] for d in done}
    assert seeds == {d: int(d[-1]) for d in done}
    preds = {d: pd.read_csv(sweep_dir / d / "predictions.csv") for d in done}
    assert not np.allclose(preds[done[0]].risk, preds[done[1]].risk), "seed 1 must train another model"
    table = pd.read_csv(sweep_dir / "summary.csv")
    assert table.seed.tolist() == [0, 1] and table.n_folds.tolist() == [2, 2]
    for seed, row in table.set_index("seed").iterrows():
        per_job = [
            json.loads((sweep_dir / d / "metrics.json").read_text())["test/cindex"]
            for d in done
            if d.endswith(f"seed={seed}")
        ]
        assert row["test/cindex_mean"] == pytest.approx(np.mean(per_job))
    from survlab.report.sweep import summarize_sweep

    pooled = summarize_sweep(sweep_dir, over=["seed"], write=False).table
    assert len(pooled) == 1 and pooled.n_folds.iloc[0] == 4
    # the same sweep again: every job is skipped because its recorded configuration matches
    assert check(run_survlab(args)).count("skipping completed job") == 4


def test_lr_sweep_and_a_changed_config_never_reuse_a_job_dir(tmp_path: Path, data_dir: Path) -> None:
    """Two learning rates -> two dirs and two summary rows; re-running into the same sweep dir with another setting
    is refused in one line and leaves the finished jobs untouched."""
    sweep_dir = tmp_path / "sweep"
    base = [
        "-m",
        "model=snn",
        "fold=0",
        *tiny_overrides(tmp_path, data_dir),
        f"hydra.sweep.dir={sweep_dir}",
        CALLBACK,
    ]
    check(run_survlab([*base, "model.task.lr=1e-3,1e-4"]))
    dirs = sorted(p.parent.name for p in sweep_dir.rglob("DONE"))
    assert dirs == ["model.task.lr=0.0001", "model.task.lr=0.001"]  # as Hydra writes the values
    table = pd.read_csv(sweep_dir / "summary.csv")
    assert sorted(table["model.task.lr"]) == [0.0001, 0.001] and table.n_folds.tolist() == [1, 1]
    done = {p: p.stat().st_mtime_ns for p in sweep_dir.rglob("DONE")}
    proc = run_survlab([*base, "model.task.lr=1e-3,1e-4", "data.batch_size=4"])
    out = proc.stdout + proc.stderr
    # a refused sweep does not look finished: non-zero exit, one line, refusals counted apart from completions
    assert proc.returncode == 1, out[-3000:]
    assert "Jobs: 2 — 0 completed, 0 failed, 2 refused" in (sweep_dir / "summary.md").read_text()
    table = pd.read_csv(sweep_dir / "summary.csv")
    assert table.n_refused.tolist() == [1, 1] and table.n_folds.tolist() == [0, 0]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"survlab: error: sweep {sweep_dir}: 2 job(s) not completed (2 refused, 0 failed; "
    ), last
    errors = [ln for ln in out.splitlines() if "[ERROR]" in ln]
    assert len(errors) == 2 and all(
        "refused: " in ln and "holds a job with another configuration (data.batch_size: 8 -> 4)" in ln
        for ln in errors
    ), out[-3000:]
    assert {p: p.stat().st_mtime_ns for p in sweep_dir.rglob("DONE")} == done  # left untouched
    assert not list(sweep_dir.rglob("FAILED"))
    # the first configuration again: both jobs are skipped as completed, the sweep exits 0 and counts them done
    out = check(run_survlab([*base, "model.task.lr=1e-3,1e-4"]))
    assert out.count("skipping completed job") == 2
    assert "Jobs: 2 — 2 completed, 0 failed, 0 incomplete." in (sweep_dir / "summary.md").read_text()


def test_killed_sweep_job_resumes_from_its_last_checkpoint(tmp_path: Path, data_dir: Path) -> None:
    """A job killed at epoch 2 of 3 leaves last.ckpt; re-running the same sweep resumes it (no ckpt_path needed)
    and finishes the remaining epoch only. (The kill fires only while SURVLAB_TEST_KILL=1, so both runs have the
    same configuration, as a requeued SLURM job does.)"""
    sweep_dir = tmp_path / "sweep"
    args = [
        "-m",
        "model=snn",
        "fold=0",
        *tiny_overrides(tmp_path, data_dir),
        "trainer.max_epochs=3",
        f"hydra.sweep.dir={sweep_dir}",
        "+callbacks.kill._target_=tests.helpers.runs.KillAtEpoch",
        "+callbacks.kill.epoch=2",
        "+callbacks.kill.env=SURVLAB_TEST_KILL",
    ]
    killed = run_survlab(args, env={"SURVLAB_TEST_KILL": "1"})
    assert killed.returncode == 1, (killed.stdout + killed.stderr)[-3000:]  # a sweep with a failed job
    job = sweep_dir / "snn" / "synthetic" / "fold0"
    assert (job / "FAILED").is_file() and not (job / "DONE").is_file()
    assert "simulated kill" in (job / "FAILED").read_text()
    out = check(run_survlab(args))
    assert f"resuming from {job / 'checkpoints' / 'last.ckpt'}" in out, out[-3000:]
    assert (job / "DONE").is_file() and not (job / "FAILED").is_file()
    logs = pd.concat([pd.read_csv(f) for f in job.glob("csv/**/metrics.csv")])
    assert sorted(logs.dropna(subset=["train/loss"]).epoch.unique().tolist()) == [2], "only epoch 2 ran again"


@pytest.mark.slow
def test_repeated_cv_sweep_gives_a_split_and_a_job_dir_per_repeat_and_pools_them(
    tmp_path: Path, data_dir: Path
) -> None:
    """`-m fold=0,1 +data.splits.repeat=0,1`: four job dirs, repeat 0 on the split dir survlab always wrote (meta.json
    without a repeat) and repeat 1 on its own seeded re-draw; the summary pools the repeats in one row."""

    sweep_dir = tmp_path / "sweep"
    args = [
        "-m",
        "model=snn",
        "fold=0,1",
        "+data.splits.repeat=0,1",
        *tiny_overrides(tmp_path, data_dir),
        f"hydra.sweep.dir={sweep_dir}",
        CALLBACK,
    ]
    check(run_survlab(args))
    done = sorted(p.parent.relative_to(sweep_dir).as_posix() for p in sweep_dir.rglob("DONE"))
    assert done == [f"snn/synthetic/fold{k}/data.splits.repeat={r}" for k in (0, 1) for r in (0, 1)]
    cohort = json.loads((sweep_dir / done[0] / "protocol.json").read_text())["cohort"]
    split0 = Path(cohort["split_file"]).parent
    split1 = split0.with_name(split0.name + "_rep1")
    assert "repeat" not in json.loads((split0 / "meta.json").read_text())
    assert json.loads((split1 / "meta.json").read_text())["repeat"] == 1
    cards = {d: json.loads((sweep_dir / d / "protocol.json").read_text())["cohort"] for d in done}
    assert (
        cards[done[1]]["split_repeat"] == 1 and cards[done[0]]["split_hash"] != cards[done[1]]["split_hash"]
    )
    tests = {d: set(pd.read_csv(sweep_dir / d / "predictions.csv")["case_id"]) for d in done}
    assert tests[done[0]] != tests[done[1]]  # fold 0 of repeat 1 tests other patients
    table = pd.read_csv(sweep_dir / "summary.csv")
    assert len(table) == 1 and table.n_folds.iloc[0] == 4 and table.n_repeats.iloc[0] == 2
    per_repeat = []
    for r in (0, 1):
        pool = pd.concat(pd.read_csv(sweep_dir / d / "predictions.csv") for d in done if d.endswith(f"={r}"))
        per_repeat.append(within_fold_cindex(pool))
    assert table.pooled_cindex_by_repeat.iloc[0] == ";".join(f"{c:.4f}" for c in per_repeat)
    assert table.pooled_cindex.iloc[0] == pytest.approx(np.mean(per_repeat))
    assert (
        table.pooled_cindex_ci_low.iloc[0]
        <= table.pooled_cindex.iloc[0]
        <= table.pooled_cindex_ci_high.iloc[0]
    )
