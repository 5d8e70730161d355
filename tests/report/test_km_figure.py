"""The KM-by-risk-group figure (survlab.report.km.plot_km_by_risk / km_figure): groups, curves, HR and log-rank p
against lifelines / scikit-survival, the at-risk table, the print files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.km_data import km_data as _data
from lifelines import KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test

from survlab.metrics.km import kaplan_meier, logrank_test, risk_cutoffs, risk_groups
from survlab.report.km import km_figure, plot_km_by_risk


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000


@pytest.mark.parametrize("method", ["median", "tertiles"])
def test_plot_km_by_risk_writes_png(tmp_path: Path, method: str) -> None:
    time, event, groups = _data(0)
    risk = -time + np.random.default_rng(0).normal(size=len(time))
    out = plot_km_by_risk(risk, time, event, tmp_path / "sub" / "km.png", method=method, title="test")
    assert _is_png(tmp_path / "sub" / "km.png")
    k = 2 if method == "median" else 3
    assert sum(out["n_per_group"]) == len(time) and len(out["n_per_group"]) == k
    assert out["chi2"] == pytest.approx(logrank_test(time, event, risk_groups(risk, method))[0])
    assert out["logrank_p"] < 0.05  # risk is strongly prognostic here


def test_plot_km_degenerate_groups_do_not_crash(tmp_path: Path) -> None:
    out = plot_km_by_risk(
        [0.0, 1.0], [5.0, 6.0], [False, False], tmp_path / "km.png"
    )  # one patient per group
    assert np.isnan(out["logrank_p"]) and out["n_per_group"] == [1, 1]
    assert _is_png(tmp_path / "km.png")
    out = plot_km_by_risk(
        [1.0, 1.0, 1.0], [5.0, 6.0, 7.0], [True, False, True], tmp_path / "km2.png"
    )  # all tied
    assert np.isnan(out["logrank_p"]) and out["n_per_group"] == [3, 0]


def test_groups_are_cut_at_the_training_cutoff_not_the_test_median(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    train_risk = rng.normal(0.0, 1.0, 200)
    test_risk = rng.normal(1.5, 1.0, 60)  # a shifted test fold: its own median is far above the training one
    time, event = rng.integers(1, 30, 60).astype(float), rng.random(60) < 0.7
    cut = risk_cutoffs(train_risk, "median")
    assert cut == pytest.approx([np.median(train_risk)])
    assert abs(np.median(test_risk) - cut[0]) > 1.0
    groups = risk_groups(test_risk, "median", cut)
    np.testing.assert_array_equal(groups, (test_risk > np.median(train_risk)).astype(int))
    assert groups.sum() > 45  # most test patients are above the TRAINING median (a test median would give 30)
    out = plot_km_by_risk(test_risk, time, event, tmp_path / "km.png", cutoffs=cut)
    assert out["n_per_group"] == [int((groups == 0).sum()), int((groups == 1).sum())]
    assert out["cutoffs"] == pytest.approx(list(cut))
    assert out["chi2"] == pytest.approx(logrank_test(time, event, groups)[0])
    # tertiles likewise from the training risks
    tert = risk_cutoffs(train_risk, "tertiles")
    np.testing.assert_allclose(tert, np.quantile(train_risk, [1 / 3, 2 / 3]))
    expected = (test_risk > tert[0]).astype(int) + (test_risk > tert[1]).astype(int)
    np.testing.assert_array_equal(risk_groups(test_risk, "tertiles", tert), expected)
    out3 = plot_km_by_risk(test_risk, time, event, tmp_path / "km3.png", method="tertiles", cutoffs=tert)
    assert out3["n_per_group"] == np.bincount(expected, minlength=3).tolist()


@pytest.mark.parametrize("seed", [0, 4])
def test_plotted_curves_equal_lifelines_and_sksurv_with_ties(tmp_path: Path, seed: int) -> None:
    from sksurv.nonparametric import kaplan_meier_estimator

    time, event, _ = _data(seed)  # integer times: many ties, events and censorings at the same time
    risk = np.random.default_rng(seed).normal(size=len(time))
    out = plot_km_by_risk(risk, time, event, tmp_path / "km.png", cutoffs=[0.0])
    groups = risk_groups(risk, "median", [0.0])
    for k, name in enumerate(["low", "high"]):
        t, e = time[groups == k], event[groups == k]
        times, surv = out["curves"][name]
        ref = KaplanMeierFitter().fit(t, e).survival_function_
        np.testing.assert_allclose(times, ref.index.to_numpy(float))
        np.testing.assert_allclose(surv, ref.iloc[:, 0].to_numpy(float))
        sk_times, sk_surv = kaplan_meier_estimator(e, t)  # at every distinct observed time
        np.testing.assert_allclose(surv[np.searchsorted(times, sk_times)], sk_surv, atol=1e-12)
        own_times, own_surv = kaplan_meier(t, e)  # survlab's own estimator at the event times
        np.testing.assert_allclose(surv[np.searchsorted(times, own_times)], own_surv, atol=1e-12)


def test_km_figure_has_the_at_risk_table_bands_and_time_unit() -> None:
    import matplotlib.pyplot as plt

    time, event, groups = _data(1)
    two = (groups > 0).astype(int)
    fig, fitters = km_figure(time, event, two, ["low", "high"], time_unit="days", title="t")
    main = fig.axes[0]
    assert main.get_xlabel() == "time (days)"
    assert len(main.collections) == 2  # one confidence band per group
    assert set(fitters) == {"low", "high"}
    table = fig.axes[1]  # the at-risk table lifelines adds under the axis
    labels = [lab.get_text() for lab in table.get_xticklabels()]
    assert "At risk" in labels[0] and "Events" in labels[0]
    ticks = table.get_xticks()
    assert len(ticks) >= 4
    for tick, label in zip(
        ticks, labels, strict=True
    ):  # lifelines' count: still at risk after the tick, #{T > tick}
        numbers = [int(x) for x in label.split() if x.isdigit()]
        at_risk = [int((time[two == k] > tick).sum()) for k in (0, 1)]
        assert numbers[0] == at_risk[0] and numbers[3] == at_risk[1]
    plt.close(fig)


def _km_texts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text artist of the figures `plot_km_by_risk` saves (captured at savefig)."""
    from matplotlib.figure import Figure

    texts: list[str] = []
    save = Figure.savefig

    def spy(fig: Figure, *args: object, **kwargs: object) -> None:
        texts.extend(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))
        save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    return texts


def test_km_figure_shows_lifelines_hr_ci_and_logrank_p_and_writes_print_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """km.png at 300 dpi + km.pdf beside it; the HR (95% CI) and log-rank p on the figure are lifelines' numbers."""
    import pandas as pd
    from lifelines import CoxPHFitter
    from PIL import Image

    texts = _km_texts(monkeypatch)
    rng = np.random.default_rng(0)
    risk = rng.normal(size=80)
    t_event, t_cens = rng.exponential(20 * np.exp(-0.8 * risk)), rng.exponential(30, 80)
    event, time = t_event < t_cens, np.minimum(t_event, t_cens)
    out = plot_km_by_risk(risk, time, event, tmp_path / "km.png", cutoffs=[0.0], title="run")
    high = (risk > 0).astype(float)
    cox = CoxPHFitter().fit(pd.DataFrame({"h": high, "T": time, "E": event.astype(int)}), "T", "E")
    hr, (lo, hi) = np.exp(cox.params_["h"]), np.exp(cox.confidence_intervals_.loc["h"].to_numpy())
    p = multivariate_logrank_test(time, high, event).p_value
    assert out["hr_high_vs_low"] == pytest.approx(hr) and out["hr_ci_low"] == pytest.approx(lo)
    assert out["logrank_p"] == pytest.approx(p, rel=1e-9)
    stats = [t for t in texts if t.startswith("HR high vs low")]
    assert stats == [f"HR high vs low {hr:.3g} (95% CI {lo:.3g}\u2013{hi:.3g})\nlog-rank p = {p:.3g}"] * 2
    with Image.open(tmp_path / "km.png") as im:
        width, height = im.size
        assert im.info["dpi"][0] == pytest.approx(300, abs=1)
    assert width > 1800 and height > 1500  # 7.5 x 6.4 in at 300 dpi, trimmed to the drawing
    assert (tmp_path / "km.pdf").read_bytes()[:5] == b"%PDF-"


def test_km_title_never_shows_p_nan_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = _km_texts(monkeypatch)
    out = plot_km_by_risk([1.0, 1.0, 1.0], [5.0, 6.0, 7.0], [True, False, True], tmp_path / "a.png")
    assert out["logrank_note"] == "log-rank: one group empty" and np.isnan(out["logrank_p"])
    out = plot_km_by_risk([0.0, 1.0, 2.0, 3.0], [5.0, 6.0, 7.0, 8.0], [False] * 4, tmp_path / "b.png")
    assert out["logrank_note"] == "log-rank: no events"
    assert not any("nan" in t for t in texts)
    assert any(t.endswith("log-rank: one group empty") for t in texts)
    assert any(t.endswith("log-rank: no events") for t in texts)
