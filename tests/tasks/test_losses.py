"""Loss tests: discrete NLL against a hand loop, Cox against lifelines (Efron) and a hand Breslow loop."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from survlab.tasks.losses import cox_partial_likelihood, nll_discrete_survival


def _nll_by_hand(logits: list[list[float]], bins: list[int], events: list[bool], alpha: float) -> float:
    total = 0.0
    for row, y, ev in zip(logits, bins, events, strict=True):
        h = [1.0 / (1.0 + math.exp(-v)) for v in row]
        surv_before = 1.0
        for k in range(y):
            surv_before *= 1.0 - h[k]
        if ev:
            unc, cen = -math.log(surv_before) - math.log(h[y]), 0.0
        else:
            unc, cen = 0.0, -math.log(surv_before * (1.0 - h[y]))
        total += (1 - alpha) * (unc + cen) + alpha * unc
    return total / len(bins)


@pytest.mark.parametrize("alpha", [0.0, 0.4])
def test_nll_matches_hand_computation(alpha: float) -> None:
    logits = [[0.3, -1.0, 2.0, 0.1], [-0.5, 0.2, 0.7, -2.0], [1.5, 1.0, -0.3, 0.4], [0.0, -0.2, 0.9, 1.1]]
    bins = [0, 3, 0, 3]  # first and last bin, each both censored and uncensored
    events = [True, True, False, False]
    got = nll_discrete_survival(torch.tensor(logits), torch.tensor(bins), torch.tensor(events), alpha=alpha)
    assert got.item() == pytest.approx(_nll_by_hand(logits, bins, events, alpha), rel=1e-6)


def test_nll_alpha_changes_loss_and_backprops() -> None:
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(0), requires_grad=True)
    bins, events = torch.tensor([0, 1, 2, 3, 4, 2]), torch.tensor([True, False, True, False, True, False])
    l0 = nll_discrete_survival(logits, bins, events, alpha=0.0)
    l4 = nll_discrete_survival(logits, bins, events, alpha=0.4)
    assert l0.item() != pytest.approx(l4.item())
    l4.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_nll_rejects_out_of_range_bins() -> None:
    with pytest.raises(ValueError, match=r"out of range \[0, 3\)"):
        nll_discrete_survival(torch.zeros(2, 3), torch.tensor([0, 3]), torch.tensor([True, False]))
    with pytest.raises(ValueError, match="out of range"):
        nll_discrete_survival(torch.zeros(2, 3), torch.tensor([-1, 0]), torch.tensor([True, False]))


def _tied_cox_data(seed: int, n: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    time = rng.integers(1, 12, size=n).astype(float)  # many tied times, events and censorings
    event = rng.random(n) < 0.6
    return x, time, event


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cox_efron_matches_lifelines(seed: int) -> None:
    from lifelines import CoxPHFitter

    x, time, event = _tied_cox_data(seed)
    fit = CoxPHFitter().fit(pd.DataFrame({"x": x, "T": time, "E": event.astype(int)}), "T", "E")
    beta = float(fit.params_["x"])
    loss = cox_partial_likelihood(
        torch.tensor(beta * x), torch.tensor(time), torch.tensor(event), ties="efron"
    )
    assert loss.item() * event.sum() == pytest.approx(-fit.log_likelihood_, abs=1e-4)


def test_cox_event_censored_tie_without_event_ties_matches_lifelines() -> None:
    """No tied event times, but an event and a censoring at the same time: the censored one is at risk."""
    from lifelines import CoxPHFitter

    x, _, event = _tied_cox_data(3)
    time = np.arange(len(x), dtype=float)
    time[1], event[0], event[1] = time[0], True, False
    fit = CoxPHFitter().fit(pd.DataFrame({"x": x, "T": time, "E": event.astype(int)}), "T", "E")
    beta = float(fit.params_["x"])
    for perm in (np.arange(len(x)), np.random.default_rng(0).permutation(len(x)), np.arange(len(x))[::-1]):
        loss = cox_partial_likelihood(
            torch.tensor(beta * x[perm]), torch.tensor(time[perm]), torch.tensor(event[perm])
        )
        assert loss.item() * event.sum() == pytest.approx(-fit.log_likelihood_, abs=1e-4)


def test_cox_breslow_matches_hand_loop() -> None:
    x, time, event = _tied_cox_data(4, n=25)
    log_hz = 0.7 * x
    expected = 0.0
    for t in np.unique(time[event]):
        dead = event & (time == t)
        at_risk = time >= t
        expected -= log_hz[dead].sum() - dead.sum() * np.log(np.exp(log_hz[at_risk]).sum())
    loss = cox_partial_likelihood(
        torch.tensor(log_hz), torch.tensor(time), torch.tensor(event), ties="breslow"
    )
    assert loss.item() == pytest.approx(expected / event.sum(), rel=1e-6)


@pytest.mark.parametrize(
    ("log_hz", "time", "event"),
    [([0.3, -1.0, 2.0], [1.0, 2.0, 3.0], [False, False, False]), ([1.7], [4.0], [True])],
    ids=["no-events", "batch-of-one"],
)
def test_cox_degenerate_batches_give_zero_loss_with_grad(log_hz: list, time: list, event: list) -> None:
    lh = torch.tensor(log_hz, requires_grad=True)
    loss = cox_partial_likelihood(lh, torch.tensor(time), torch.tensor(event))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(lh.grad, torch.zeros_like(lh))


def test_cox_rejects_unknown_ties() -> None:
    with pytest.raises(ValueError, match="ties must be"):
        cox_partial_likelihood(torch.zeros(3), torch.ones(3), torch.ones(3, dtype=torch.bool), ties="exact")
