"""Sweep summary on fake job dirs (no training): numbers equal the per-job files, failures are listed."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.pooled import within_fold_auc, within_fold_cindex
from scipy import stats

from survlab.report.sweep import summarize_sweep
from survlab.report.sweep_jobs import collect_jobs
from survlab.report.sweep_stats import paired_comparison
from survlab.utils.job_identity import write_record
from survlab.utils.jobs import (
    job_is_complete,
    job_status,
    mark_done,
    mark_failed,
    read_job_metric,
)
from tests.helpers.proc import run_group

REPO = Path(__file__).resolve().parents[2]

N_PER_FOLD = 25


def _fake_job(
    root: Path,
    model: str,
    cohort: str,
    fold: int,
    cindex: float,
    seed: int = 0,
    rng=None,
    status: str = "done",
    repeat: int | None = None,
    folds: int | None = None,
) -> Path:
    d = root / model / cohort / f"fold{fold}"
    if repeat is not None:  # a repeated k-fold sweep: one dir per repeat, the override recorded in job.json
        d = d / f"data.splits.repeat={repeat}"
        write_record(d, {}, [f"model={model}", f"fold={fold}", f"+data.splits.repeat={repeat}"])
    if folds is not None:
        (d / "protocol.json").parent.mkdir(parents=True, exist_ok=True)
        (d / "protocol.json").write_text(json.dumps({"cohort": {"folds": folds}}))
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "config.yaml").write_text(
        f"model:\n  name: {model}\ndata:\n  name: {cohort}\nfold: {fold}\nseed: {seed}\n"
    )
    if status == "failed":
        try:
            raise RuntimeError(f"boom in {model}\nsecond line")
        except RuntimeError as e:
            mark_failed(d, e)
        return d
    if status == "incomplete":
        return d
    rng = rng or np.random.default_rng(fold)
    case = [f"{cohort}-{fold}-{i:03d}" for i in range(N_PER_FOLD)]
    time = rng.uniform(1, 100, N_PER_FOLD)  # no ties: tie conventions differ between libraries
    event = rng.integers(0, 2, N_PER_FOLD)
    risk = -time * (1 if model == "good" else 0) + rng.normal(0, 30, N_PER_FOLD)
    pd.DataFrame({"case_id": case, "fold": fold, "risk": risk, "time": time, "event": event}).to_csv(
        d / "predictions.csv", index=False
    )
    metrics = {
        "model": model,
        "cohort": cohort,
        "fold": fold,
        "seed": seed,
        "status": "ok",
        "test/cindex": cindex,
        "test/cindex_uno": cindex - 0.01,
        "test/auc_td": cindex + 0.02,
        "test/ibs": float("nan") if fold == 0 else 0.2,
        "val/best": cindex + 0.05,
        "oracle_cindex": 0.8,
        "n_test": N_PER_FOLD,
        "wall_s": 1.5,
    }
    (d / "metrics.json").write_text(json.dumps(metrics))
    mark_done(d)
    return d


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "sweep"
    vals = {"base": [0.60, 0.62, 0.58, 0.61, 0.59], "good": [0.70, 0.69, 0.73, 0.68, 0.72]}
    for model, cs in vals.items():
        for fold, c in enumerate(cs):
            _fake_job(root, model, "synth_a", fold, c)
    _fake_job(root, "base", "synth_b", 0, 0.55)
    _fake_job(root, "good", "synth_b", 0, 0.65)
    _fake_job(root, "good", "synth_b", 1, 0.0, status="failed")
    _fake_job(root, "base", "synth_b", 1, 0.0, status="incomplete")
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def test_job_markers(tmp_path: Path) -> None:
    d = tmp_path / "job"
    assert not job_is_complete(d) and job_status(d) == "incomplete"
    mark_done(d)
    assert not job_is_complete(d), "DONE without metrics.json is not complete"
    (d / "metrics.json").write_text(json.dumps({"test/cindex": 0.7, "oracle_cindex": None}))
    assert job_is_complete(d) and read_job_metric(d, "test/cindex") == 0.7
    assert math.isnan(read_job_metric(d, "oracle_cindex")) and math.isnan(read_job_metric(d, "missing"))
    try:
        raise ValueError("bad input")
    except ValueError as e:
        mark_failed(d, e)
    assert job_status(d) == "failed" and not (d / "DONE").exists()
    assert (
        (d / "FAILED").read_text().startswith("bad input\n")
    )  # the one-line error first, as the console shows it
    assert "Traceback" in (d / "FAILED").read_text()
    mark_done(d)
    assert job_status(d) == "done" and not (d / "FAILED").exists()


def test_summary_numbers_equal_job_files(sweep: Path) -> None:
    s = summarize_sweep(sweep, reference="base")
    for name in ("summary.csv", "summary.md", "paired.csv", "comparison.png"):
        assert (sweep / name).is_file(), name
    table = pd.read_csv(sweep / "summary.csv")
    assert set(zip(table.model, table.cohort, strict=True)) == {
        ("base", "synth_a"),
        ("good", "synth_a"),
        ("base", "synth_b"),
        ("good", "synth_b"),
    }
    for r in table.itertuples():
        dirs = sorted((sweep / r.model / r.cohort).glob("fold*"))
        done = [d for d in dirs if job_is_complete(d)]
        assert r.n_folds == len(done)
        for key in ("test/cindex", "test/cindex_uno", "val/best", "test/ibs"):
            vals = np.array([json.loads((d / "metrics.json").read_text())[key] for d in done], float)
            vals = vals[np.isfinite(vals)]
            row = table[(table.model == r.model) & (table.cohort == r.cohort)].iloc[0]
            assert row[f"{key}_mean"] == pytest.approx(vals.mean() if len(vals) else np.nan, nan_ok=True)
            if len(vals) >= 2:
                assert row[f"{key}_std"] == pytest.approx(vals.std(ddof=1))
        # pooled C-index equals scikit-survival's counts on each fold's predictions, summed (pairs within a fold)
        pred = pd.concat([pd.read_csv(d / "predictions.csv") for d in done])
        row = table[(table.model == r.model) & (table.cohort == r.cohort)].iloc[0]
        assert row["pooled_cindex"] == pytest.approx(within_fold_cindex(pred), abs=1e-9)
        assert row["pooled_n"] == len(pred)
    # failed and incomplete are counted and listed, not hidden
    b = table[(table.model == "good") & (table.cohort == "synth_b")].iloc[0]
    assert (b.n_folds, b.n_failed, b.n_incomplete) == (1, 1, 0)
    md = (sweep / "summary.md").read_text()
    assert "| failed | `good` | synth_b | 1 | RuntimeError: boom in good |" in md
    assert "| incomplete | `base` | synth_b | 1 |" in md
    assert len(s.failed) == 1 and len(s.incomplete) == 1


def test_main_table_flags_every_fold_left_out_of_the_means(sweep: Path) -> None:
    """A fold that never finished (incomplete: killed, still running) is missing from the fold mean and the pooled
    C-index exactly as a failed one; the folds cell says so for both (it used to show only failed folds, so
    `base` on synth_b read "1" beside a mean of one fold out of two)."""
    summarize_sweep(sweep, reference="base", plot=False)
    md = (sweep / "summary.md").read_text()
    rows = {tuple(line.split(" | ")[:3]): line for line in md.splitlines() if line.startswith("| `")}
    assert rows[("| `base`", "synth_b", "1 (+1 incomplete)")].count("0.550") == 1
    assert ("| `good`", "synth_b", "1 (+1 failed)") in rows
    assert ("| `good`", "synth_a", "5") in rows


def test_paired_comparison(sweep: Path) -> None:
    s = summarize_sweep(sweep, reference="base", plot=False)
    row = s.table[(s.table.model == "good") & (s.table.cohort == "synth_a")].iloc[0]
    good = np.array([0.70, 0.69, 0.73, 0.68, 0.72])
    base = np.array([0.60, 0.62, 0.58, 0.61, 0.59])
    assert row["vs_ref_n_paired"] == 5
    assert row["vs_ref_diff_mean"] == pytest.approx((good - base).mean())
    assert row["vs_ref_p_ttest_uncorrected"] == pytest.approx(stats.ttest_rel(good, base).pvalue)
    assert row["vs_ref_p_wilcoxon"] == pytest.approx(stats.wilcoxon(good - base).pvalue)
    per_fold = s.paired[(s.paired.model == "good") & (s.paired.cohort == "synth_a")]
    np.testing.assert_allclose(per_fold["diff"], good - base)
    # synth_b: only fold 0 is paired (good fold1 failed) -> no p-values
    b = s.table[(s.table.model == "good") & (s.table.cohort == "synth_b")].iloc[0]
    assert (
        b["vs_ref_n_paired"] == 1
        and np.isnan(b["vs_ref_p_ttest_uncorrected"])
        and np.isnan(b["vs_ref_p_wilcoxon"])
    )
    # Wilcoxon only from n >= 5
    assert np.isnan(paired_comparison(np.array([0.1, 0.2, 0.05, 0.3]))["p_wilcoxon"])
    with pytest.raises(ValueError, match="not in the sweep"):
        summarize_sweep(sweep, reference="nope", write=False)


def test_collect_identity_from_hydra_config(tmp_path: Path) -> None:
    root = tmp_path / "s"
    d = _fake_job(root, "abmil", "c1", 3, 0.0, status="failed")
    jobs = collect_jobs(root)
    assert jobs[["model", "cohort", "fold", "status"]].values.tolist() == [["abmil", "c1", 3, "failed"]]
    assert jobs.error[0].startswith("RuntimeError") and Path(jobs.dir[0]) == d


@pytest.mark.slow  # end-to-end: a training run / CLI subprocess (make test-e2e)
def test_cli(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = run_group(
        [sys.executable, "-m", "survlab", "summarize", str(sweep), "--reference", "good", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "Paired comparison vs `good`" in r.stdout and (out / "summary.csv").is_file()
    r = run_group(
        [sys.executable, "-m", "survlab", "summarize", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_callback_writes_summary_and_never_raises(sweep: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from omegaconf import OmegaConf

    from survlab.runner.hydra_callbacks import SweepSummaryCallback

    monkeypatch.setenv("WANDB_MODE", "disabled")
    cfg = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}, "logger": {"csv": {}}})
    SweepSummaryCallback(reference="not-in-sweep").on_multirun_end(cfg)
    assert (sweep / "summary.md").is_file() and (sweep / "summary.csv").is_file()
    SweepSummaryCallback().on_multirun_end(
        OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep / "nope")}}})
    )
    SweepSummaryCallback().on_multirun_end(OmegaConf.create({}))


_WANDB_SUMMARY = """
import sys
from omegaconf import OmegaConf
from survlab.report.sweep import summarize_sweep
from survlab.runner.hydra_callbacks import log_summary_to_wandb
sweep = sys.argv[1]
cfg = OmegaConf.create({"hydra": {"sweep": {"dir": sweep}}, "logger": {"wandb": {"project": "survlab-test", "offline": True}}})
log_summary_to_wandb(summarize_sweep(sweep, reference="base"), cfg)  # raises here, the callback would log
"""


@pytest.mark.slow  # end-to-end: a training run / CLI subprocess (make test-e2e)
def test_callback_logs_wandb_table_offline(sweep: Path) -> None:
    """In a process of its own (W&B's service process is ended with it, never left in the test worker)."""
    pytest.importorskip("wandb")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": str(REPO)}
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        env[var] = str(sweep / "wandb")
    proc = run_group(
        [sys.executable, "-c", _WANDB_SUMMARY, str(sweep)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = list((sweep / "wandb").rglob("offline-run-*"))
    assert runs, "no offline W&B run written"
    assert list(runs[0].rglob("*.wandb")), "the offline run has no data file"
    assert list(runs[0].rglob("sweep/summary*.table.json")), "the summary table was not logged"


def test_rows_split_by_keys_swept_within_a_model_only(tmp_path: Path) -> None:
    """model.task.lr swept for `good`: one row per value, each paired with `base` fold by fold; `selection` set per
    cohort (two sweeps in one dir) does not split rows."""
    from survlab.utils.job_identity import write_record

    root = tmp_path / "sweep"
    for fold in range(3):
        base = _fake_job(root, "base", "synth_a", fold, 0.6 + 0.01 * fold)
        write_record(base, {}, ["model=base", f"fold={fold}", "selection=best_val"])
        for lr, bonus in (("0.001", 0.1), ("0.0001", 0.05)):
            d = _fake_job(root / lr, "good", "synth_a", fold, 0.6 + 0.01 * fold + bonus)
            write_record(d, {}, ["model=good", f"fold={fold}", f"model.task.lr={lr}", "selection=best_val"])
        other = _fake_job(root, "base", "synth_b", fold, 0.5)
        write_record(other, {}, ["model=base", f"fold={fold}", "selection=last"])
    s = summarize_sweep(root, reference="base", write=False)
    assert s.group_keys == ["model.task.lr"]
    rows = s.table.set_index("variant")
    assert sorted(rows.index) == [
        "base model.task.lr=default",
        "base model.task.lr=default",
        "good model.task.lr=0.0001",
        "good model.task.lr=0.001",
    ]
    good = s.table[s.table.model == "good"].set_index("model.task.lr")
    assert good.loc["0.001", "vs_ref_diff_mean"] == pytest.approx(0.1)
    assert good.loc["0.0001", "vs_ref_diff_mean"] == pytest.approx(0.05)
    assert good["n_folds"].tolist() == [3, 3]


def test_two_models_times_two_seeds_pair_by_fold_and_seed(tmp_path: Path) -> None:
    """A seed sweep over two models: one row per model and seed, each paired with the reference's same seed (the
    paired table used to carry the seed column twice and summary.md failed to render)."""
    root = tmp_path / "sweep"
    for seed in (0, 1):
        for fold in range(2):
            _fake_job(root / f"s{seed}", "base", "c", fold, 0.60 + 0.1 * seed, seed=seed)
            _fake_job(root / f"s{seed}", "good", "c", fold, 0.65 + 0.1 * seed + 0.01 * fold, seed=seed)
    s = summarize_sweep(root, reference="base")
    assert s.group_keys == ["seed"] and len(s.table) == 4
    assert list(s.paired.columns).count("seed") == 1
    good = s.table[s.table.model == "good"].set_index("seed")
    assert good.loc[0, "vs_ref_diff_mean"] == pytest.approx(0.055) and good.loc[
        1, "vs_ref_diff_mean"
    ] == pytest.approx(0.055)
    assert "`good seed=1`" in (root / "summary.md").read_text()


def _harrell(f: pd.DataFrame) -> float:
    return within_fold_cindex(f)


def _pool(dirs: list[Path]) -> pd.DataFrame:
    return pd.concat([pd.read_csv(d / "predictions.csv") for d in dirs]).set_index("case_id").sort_index()


def test_corrected_t_holm_and_bootstrap_cis_in_the_summary(tmp_path: Path) -> None:
    """p_corrected = Nadeau–Bengio by hand; p_holm = Holm over the models vs the reference; the pooled C-index CI
    and the paired Δ pooled CI = a plain numpy loop over the same seeded resamples with scikit-survival."""
    root = tmp_path / "sweep"
    vals = {
        "base": [0.60, 0.62, 0.58, 0.61, 0.59],
        "good": [0.70, 0.69, 0.73, 0.68, 0.72],
        "meh": [0.61, 0.60, 0.62, 0.63, 0.58],
    }
    dirs = {
        m: [
            _fake_job(root, m, "c", k, c, rng=np.random.default_rng(10 * k + len(m)))
            for k, c in enumerate(cs)
        ]
        for m, cs in vals.items()
    }
    s = summarize_sweep(root, reference="base", n_boot=60, boot_seed=3, plot=False)
    t = s.table.set_index("model")
    p = {}
    for m in ("good", "meh"):
        d = np.array(vals[m]) - np.array(vals["base"])
        t_nb = d.mean() / math.sqrt((1 / 5 + 1 / 4) * d.var(ddof=1))  # k = 5 folds: n_test/n_train = 1/4
        p[m] = 2 * stats.t.sf(abs(t_nb), 4)
        assert t.loc[m, "vs_ref_p_corrected"] == pytest.approx(p[m])
        assert (
            t.loc[m, "vs_ref_p_corrected"] > t.loc[m, "vs_ref_p_ttest_uncorrected"]
        )  # the correction widens
    lo, hi = sorted(p, key=p.get)
    assert t.loc[lo, "vs_ref_p_holm"] == pytest.approx(min(1, 2 * p[lo]))
    assert t.loc[hi, "vs_ref_p_holm"] == pytest.approx(max(min(1, 2 * p[lo]), p[hi]))
    # bootstrap: the same draws, materialised, scored by scikit-survival
    pools = {m: _pool(ds) for m, ds in dirs.items()}
    ids = sorted(pools["base"].index)
    draws = np.random.default_rng(3).integers(0, len(ids), size=(60, len(ids)))
    for m in ("base", "good"):
        f = pools[m].loc[ids]
        ref = [_harrell(f.iloc[i]) for i in draws]
        assert (t.loc[m, "pooled_cindex_ci_low"], t.loc[m, "pooled_cindex_ci_high"]) == pytest.approx(
            tuple(np.percentile(ref, [2.5, 97.5]))
        )
        assert (
            t.loc[m, "pooled_cindex_ci_low"] < t.loc[m, "pooled_cindex"] < t.loc[m, "pooled_cindex_ci_high"]
        )
    g, b = pools["good"].loc[ids], pools["base"].loc[ids]
    diff = [_harrell(g.iloc[i]) - _harrell(b.iloc[i]) for i in draws]
    assert t.loc["good", "vs_ref_pooled_diff"] == pytest.approx(_harrell(g) - _harrell(b))
    assert (t.loc["good", "vs_ref_pooled_diff_ci_low"], t.loc["good", "vs_ref_pooled_diff_ci_high"]) == (
        pytest.approx(tuple(np.percentile(diff, [2.5, 97.5])))
    )
    md = (root / "summary.md").read_text()
    assert "p (corrected)" in md and "p (t-test, uncorrected)" in md and "60 seeded resamples" in md
    assert f"{t.loc['good', 'pooled_cindex']:.3f} [{t.loc['good', 'pooled_cindex_ci_low']:.3f}, " in md


def test_repeats_are_pooled_and_paired_by_fold_and_repeat(tmp_path: Path) -> None:
    """-m ... data.splits.repeat=0,1,2: one row per model (not per repeat), mean ± std over folds × repeats, one
    pooled C-index per repeat, pairs by (fold, repeat), corrected t with J = k·r and k from protocol.json."""
    root = tmp_path / "sweep"
    vals = {}
    dirs: dict[tuple[str, int], list[Path]] = {}
    for r in range(3):
        for k in range(2):  # 2 of the 5 folds ran: n_test/n_train still 1/4 (k = 5 from protocol.json)
            for m, c in (("base", 0.60 + 0.01 * r - 0.02 * k), ("good", 0.66 + 0.03 * k - 0.01 * r)):
                rng = np.random.default_rng(100 * r + 10 * k + len(m))
                dirs.setdefault((m, r), []).append(_fake_job(root, m, "c", k, c, rng=rng, repeat=r, folds=5))
                vals[(m, r, k)] = c
    s = summarize_sweep(root, reference="base", n_boot=0, plot=False)
    assert len(s.table) == 2 and s.group_keys == [] and sorted(s.jobs["repeat"].unique()) == [0, 1, 2]
    t = s.table.set_index("model")
    good = np.array([vals[("good", r, k)] for r in range(3) for k in range(2)])
    base = np.array([vals[("base", r, k)] for r in range(3) for k in range(2)])
    assert t.loc["good", "n_folds"] == 6 and t.loc["good", "n_repeats"] == 3
    assert t.loc["good", "test/cindex_mean"] == pytest.approx(good.mean())
    assert t.loc["good", "test/cindex_std"] == pytest.approx(good.std(ddof=1))
    per_repeat = [_harrell(_pool(dirs[("good", r)])) for r in range(3)]
    assert t.loc["good", "pooled_cindex_by_repeat"] == ";".join(f"{c:.4f}" for c in per_repeat)
    assert t.loc["good", "pooled_cindex"] == pytest.approx(np.mean(per_repeat))
    d = good - base
    assert t.loc["good", "vs_ref_n_paired"] == 6
    t_nb = d.mean() / math.sqrt((1 / 6 + 1 / 4) * d.var(ddof=1))
    assert t.loc["good", "vs_ref_p_corrected"] == pytest.approx(2 * stats.t.sf(abs(t_nb), 5))
    pairs = s.paired.sort_values(["repeat", "fold"])
    assert pairs[["repeat", "fold"]].values.tolist() == [[r, k] for r in range(3) for k in range(2)]
    np.testing.assert_allclose(pairs["diff"], d)


def test_a_repeat_set_by_a_recipe_is_read_from_the_job_config(tmp_path: Path) -> None:
    """`-m experiment=rep0,rep1` where each recipe sets data.splits.repeat: no override names the repeat, the job's
    .hydra/config.yaml does; the two repeats are pooled in one row, not taken as repeat 0 twice."""
    root = tmp_path / "sweep"
    for r in range(2):
        for k in range(2):
            d = _fake_job(
                root / f"rep{r}", "good", "c", k, 0.6 + 0.01 * r + 0.02 * k, rng=np.random.default_rng(k)
            )
            cfg = d / ".hydra" / "config.yaml"
            cfg.write_text(cfg.read_text().replace("data:\n", f"data:\n  splits:\n    repeat: {r}\n"))
    jobs = summarize_sweep(root, n_boot=0, plot=False).jobs
    assert sorted(zip(jobs["repeat"], jobs["fold"], strict=True)) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    (root / "rep1" / "good" / "c" / "fold0" / ".hydra" / "config.yaml").write_text(
        "model:\n  name: good\ndata:\n  name: c\n  splits:\n    repeat: two\nfold: 0\nseed: 0\n"
    )
    assert summarize_sweep(root, n_boot=0, plot=False).jobs["repeat"].tolist().count(0) == 3  # a bad value: 0


def test_classification_sweep_gets_the_pooled_auc_and_its_bootstrap_ci(tmp_path: Path) -> None:
    """A classification sweep (predictions with <label>, <label>_pred, <label>_prob_<class>): pooled_auc =
    scikit-learn's AUC per fold weighted by the fold's pairs (pairs within a fold); its CI the percentile interval of
    the same seeded resamples."""

    root = tmp_path / "sweep"
    frames = []
    for fold in range(3):
        d = root / "clam_sb" / "c" / f"fold{fold}"
        d.mkdir(parents=True)
        rng = np.random.default_rng(fold)
        y = rng.integers(0, 2, 20)
        p1 = np.clip(0.3 * y + rng.uniform(0, 0.7, 20), 0, 1)
        f = pd.DataFrame({"case_id": [f"P{fold}-{i}" for i in range(20)], "fold": fold})
        f["grade"] = np.where(y == 1, "high", "low")
        f["grade_pred"] = np.where(p1 > 0.5, "high", "low")
        f["grade_prob_low"], f["grade_prob_high"] = 1 - p1, p1
        f.to_csv(d / "predictions.csv", index=False)
        frames.append(f)
        metrics = {"model": "clam_sb", "cohort": "c", "fold": fold, "seed": 0, "test/balanced_accuracy": 0.7}
        (d / "metrics.json").write_text(json.dumps(metrics))
        mark_done(d)
    s = summarize_sweep(root, n_boot=40, boot_seed=1, plot=False)
    row = s.table.iloc[0]
    pool = pd.concat(frames).set_index("case_id").sort_index()

    # classes in the file's column order (low, high): the positive class is the last one, "high"
    def auc(f: pd.DataFrame) -> float:
        return within_fold_auc(
            (f["grade"] == "high").to_numpy(), f["grade_prob_high"].to_numpy(), f["fold"].to_numpy()
        )

    assert row["pooled_auc"] == pytest.approx(auc(pool))
    draws = np.random.default_rng(1).integers(0, 60, size=(40, 60))
    ref = [auc(pool.iloc[i]) for i in draws]
    assert (row["pooled_auc_ci_low"], row["pooled_auc_ci_high"]) == pytest.approx(
        tuple(np.percentile(ref, [2.5, 97.5]))
    )
    assert "pooled AUC (95% CI)" in (root / "summary.md").read_text()
