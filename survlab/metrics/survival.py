"""Survival metrics on per-patient predictions (gathered across ranks by the task), equal to scikit-survival.

All functions take 1-D torch tensors / numpy arrays (risk: higher = earlier event; event: True/1 = event observed)
and return python floats / numpy arrays. IPCW metrics use the Kaplan–Meier estimate G of the *censoring*
distribution fitted on the TRAINING patients, evaluated right-continuously (G(t) includes censorings at t; events
precede censorings at tied times), as scikit-survival does. G is only defined up to the training patients' last
follow-up time: an IPCW weight is never taken past it (scikit-survival refuses such data). Uno's C is then NaN, and
`survival_metrics` truncates it at that time (recorded as `cindex_uno_tau`); the td-AUC is NaN at eval times at or
past it (the other times are kept) and the IBS is NaN. Times are float64 end to end (`Batch.time` is float64).

Implementation: float64 numpy throughout. Harrell's C, Uno's C and the time-dependent AUC are ratios of one
chunked O(n²) kernel, `survlab.metrics.concordance.concordance_counts` (Harrell = unit weights, Uno = 1/G(T_i)²,
AUC(t) = case/control pairs weighted 1/G(T_i)); the Brier score is computed directly. Not torchsurv: its
`Auc` / `BrierScore` cast `time` to float32 (torchsurv 0.2.0, SurvivalInputs) — `Auc` then compares it with the
float64 `new_time`, so a death at exactly an eval time t that float32 cannot represent (e.g. 12.3 months) was a
control — and its false-positive rate is float32 (~1e-8 off); its weighted ConcordanceIndex does not reproduce
Uno's estimator. The mean AUC is the KM-weighted mean of scikit-survival. Undefined metrics are NaN with a logged
warning, never an exception (and never a made-up 0.5); `survival_notes` says why, for metrics.json.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping

import numpy as np
from scipy.special import expit

from survlab.metrics.concordance import concordance_counts
from survlab.metrics.km import ArrayLike, as_numpy, kaplan_meier, risk_table, step_at

log = logging.getLogger(__name__)

__all__ = [
    "harrell_cindex",
    "uno_cindex",
    "time_dependent_auc",
    "integrated_brier_score",
    "default_eval_times",
    "survival_metrics",
    "survival_notes",
    "survival_at_times",
    "breslow_survival",
    "brier_score",
    "train_followup",
]

NAN = float("nan")


def _survival_arrays(time: ArrayLike, event: ArrayLike, *others: ArrayLike) -> tuple[np.ndarray, ...]:
    """Convert and check that all per-patient arrays are 1-D with the same length."""
    t, e = as_numpy(time).reshape(-1), as_numpy(event).reshape(-1).astype(bool)
    rest = tuple(as_numpy(o).reshape(-1) for o in others)
    if any(len(a) != len(t) for a in (e, *rest)):
        raise ValueError(f"per-patient arrays differ in length: {[len(a) for a in (t, e, *rest)]}")
    return (t, e, *rest)


def _censoring_survival(train_time: ArrayLike, train_event: ArrayLike) -> Callable[[ArrayLike], np.ndarray]:
    """G(t) = P(C > t): Kaplan–Meier of the censoring distribution of the training patients (right-continuous).

    G(t) = prod_{s <= t} (1 − c_s / (n_s − d_s)): at a tied time, events are taken to precede censorings, so the
    patients at risk of being censored at s exclude those with an event at s (the convention of sksurv).
    """
    uniq, at_risk, deaths, censored = risk_table(*_survival_arrays(train_time, train_event))
    g = np.cumprod(1.0 - censored / np.maximum(at_risk - deaths, 1))
    return lambda x: step_at(uniq, g, x)


def train_followup(train_time: ArrayLike) -> float:
    """The training patients' last follow-up time: the censoring KM G (an IPCW weight) is defined up to it."""
    t = as_numpy(train_time).reshape(-1).astype(float)
    t = t[np.isfinite(t)]
    return float(t.max()) if len(t) else NAN


def _ratio_or_nan(num: float, den: float, name: str) -> float:
    if den <= 0:
        log.warning(
            "%s undefined: no comparable pairs (need an event before another patient's time); NaN", name
        )
        return NAN
    return num / den


def harrell_cindex(risk: ArrayLike, time: ArrayLike, event: ArrayLike) -> float:
    """Harrell's C-index (= sksurv `concordance_index_censored`); NaN if there is no comparable pair.

    Example: harrell_cindex([2., 1., 0.], [1., 2., 3.], [1, 1, 0]) -> 1.0
    """
    t, e, r = _survival_arrays(time, event, risk)
    return _ratio_or_nan(*concordance_counts(r, t, e), "Harrell C-index")


def uno_cindex(
    risk: ArrayLike,
    time: ArrayLike,
    event: ArrayLike,
    train_time: ArrayLike,
    train_event: ArrayLike,
    tau: float | None = None,
) -> float:
    """Uno's IPCW C-index (= sksurv `concordance_index_ipcw`): Harrell's pairs weighted by 1/G(T_i)², G the
    censoring KM of the TRAINING patients; only patients with T_i < tau act as the earlier member of a pair.

    NaN (with a warning) if no comparable pair, or if a weighted event lies past the training follow-up (G
    undefined there) or has G(T_i) = 0: pass tau <= `train_followup(train_time)`, as scikit-survival requires.
    Example: uno_cindex(risk, t, e, t_train, e_train, tau=60.0)
    """
    t, e, r = _survival_arrays(time, event, risk)
    g = _censoring_survival(train_time, train_event)(t)
    used = e if tau is None else e & (t < tau)
    undefined = used & ((t > train_followup(train_time)) | (g <= 0))
    if np.any(undefined):
        log.warning(
            "Uno C-index undefined: %d test event(s) at or past the training follow-up %.6g (censoring survival "
            "undefined or 0 there, last such event %.6g); pass tau <= %.6g; NaN",
            int(undefined.sum()),
            train_followup(train_time),
            float(t[undefined].max()),
            train_followup(train_time),
        )
        return NAN
    weight = np.where(used, _inverse_or_zero(g) ** 2, 0.0)
    return _ratio_or_nan(*concordance_counts(r, t, e, weight), "Uno C-index")


def _check_eval_times(t: np.ndarray, eval_times: ArrayLike, g: np.ndarray, name: str) -> np.ndarray | None:
    """Sorted unique eval times, or None (with a warning) when `name` is undefined at them."""
    times = np.unique(as_numpy(eval_times).reshape(-1))
    if len(times) == 0:
        log.warning("%s undefined: no evaluation times; NaN", name)
        return None
    if times[0] < t.min() or times[-1] >= t.max():
        log.warning(
            "%s undefined: eval times [%.4g, %.4g] not inside the test follow-up [%.4g, %.4g); NaN",
            name,
            times[0],
            times[-1],
            t.min(),
            t.max(),
        )
        return None
    if np.any(g <= 0):
        log.warning(
            "%s undefined: censoring survival G(t)=0 at an eval time (past the training follow-up); NaN", name
        )
        return None
    return times


def time_dependent_auc(
    risk: ArrayLike,
    time: ArrayLike,
    event: ArrayLike,
    train_time: ArrayLike,
    train_event: ArrayLike,
    eval_times: ArrayLike,
) -> tuple[np.ndarray, float]:
    """Cumulative/dynamic IPCW AUC at each eval time and its mean (= sksurv `cumulative_dynamic_auc`).

    AUC(t): cases T_i <= t with δ_i = 1 (weight 1/G(T_i)), controls T_j > t; risk ties count 1/2. The mean is
    the AUC integrated against the test KM, sum_k AUC(t_k)(S(t_{k-1}) − S(t_k)) / (1 − S(t_last)), S(t_0) = 1.
    Eval times at or past the training follow-up (`train_followup`: G undefined there) are dropped with a warning
    (NaN there); the mean is over the kept times — scikit-survival's value on the kept times with test events past
    the training follow-up censored there (they are controls at every kept time either way).
    Returns (AUC at the sorted unique times [T], mean); NaN entries (with a warning) where undefined.
    """
    t, e, r = _survival_arrays(time, event, risk)
    g_fn = _censoring_survival(train_time, train_event)
    raw_times = np.unique(as_numpy(eval_times).reshape(-1))
    followup = train_followup(train_time)
    kept = raw_times < followup
    if not kept.all():
        log.warning(
            "time-dependent AUC undefined at eval times %s: at or past the training follow-up %.6g (censoring "
            "weights undefined); NaN there, restricted to the earlier times",
            raw_times[~kept],
            followup,
        )
    auc_all = np.full(len(raw_times), NAN)
    if not kept.any():
        return auc_all, NAN
    auc, mean = _td_auc_within_followup(r, t, e, g_fn, raw_times[kept])
    auc_all[kept] = auc
    return auc_all, mean


def _td_auc_within_followup(
    r: np.ndarray,
    t: np.ndarray,
    e: np.ndarray,
    g_fn: Callable[[ArrayLike], np.ndarray],
    raw_times: np.ndarray,
) -> tuple[np.ndarray, float]:
    """`time_dependent_auc` at sorted unique eval times [T] all before the training follow-up."""
    times = _check_eval_times(t, raw_times, g_fn(raw_times), "time-dependent AUC")
    if times is None:
        return np.full(len(raw_times), NAN), NAN
    g_t = g_fn(t)
    if np.any(e & (t <= times[-1]) & (g_t <= 0)):
        log.warning("time-dependent AUC undefined: G(T)=0 at a test event time; NaN")
        return np.full(len(times), NAN), NAN
    valid = np.array([(e & (t <= s)).any() and (t > s).any() for s in times])
    auc = np.full(len(times), NAN)
    if not valid.all():
        log.warning(
            "time-dependent AUC undefined at times %s (no cases or no controls); NaN there", times[~valid]
        )
    weight = _inverse_or_zero(g_t)
    for k in np.flatnonzero(valid):
        auc[k] = _cumulative_dynamic_auc(r, t, e, weight, times[k])
    return auc, _km_weighted_mean(auc, t, e, times)


def _inverse_or_zero(g: np.ndarray) -> np.ndarray:
    """1/G where G > 0, else 0 (an IPCW weight that drops the term, as sksurv does). [n] -> [n]."""
    return np.where(g > 0, 1.0 / np.where(g > 0, g, 1.0), 0.0)


def _cumulative_dynamic_auc(
    risk: np.ndarray, time: np.ndarray, event: np.ndarray, weight: np.ndarray, at: float
) -> float:
    """AUC at one time: weighted share of (case, control) pairs ordered by risk (ties 1/2); all arrays [n].

    Cases δ_i = 1, T_i <= at (weight w_i); controls T_j > at. It is the concordance kernel on relabelled times:
    cases are events at 0, controls censored at 1, everyone else censored at −1 (comparable with no one).
    Risks within TIED_TOL of each other tie pairwise; sksurv chains near-ties along the sorted risks, which can
    differ only for several risks spaced < 1e-8 apart.
    """
    case, control = event & (time <= at), time > at
    pseudo_time = np.where(case, 0.0, np.where(control, 1.0, -1.0))
    num, den = concordance_counts(risk, pseudo_time, case, np.where(case, weight, 0.0))
    return num / den


def _km_weighted_mean(values: np.ndarray, time: np.ndarray, event: np.ndarray, times: np.ndarray) -> float:
    """Mean of per-time values weighted by the drop of the test KM between eval times (sksurv's mean AUC)."""
    if len(times) == 1:
        return float(values[0])
    km_times, km_surv = kaplan_meier(time, event)
    s = step_at(km_times, km_surv, times)
    drops = -np.diff(np.concatenate([[1.0], s]))
    if 1.0 - s[-1] <= 0:
        log.warning("mean time-dependent AUC undefined: no test events up to the last eval time; NaN")
        return NAN
    return float((values * drops).sum() / (1.0 - s[-1]))


def integrated_brier_score(
    surv_at_times: ArrayLike,
    time: ArrayLike,
    event: ArrayLike,
    train_time: ArrayLike,
    train_event: ArrayLike,
    eval_times: ArrayLike,
) -> float:
    """IPCW integrated Brier score (= sksurv `integrated_brier_score`); surv_at_times [n, T] = S_i(t_k).

    BS(t) = mean_i [ 1{T_i <= t, δ_i=1} S_i(t)² / G(T_i) + 1{T_i > t} (1 − S_i(t))² / G(t) ] (a term with
    G(T_i) = 0 counts 0, as in sksurv); IBS = trapezoid of BS over the eval times / (t_last − t_first).
    Needs >= 2 eval times (sorted ascending, columns of surv_at_times in the same order), all before the training
    follow-up (`train_followup`, where G is defined); else NaN.
    """
    t, e = _survival_arrays(time, event)
    surv = as_numpy(surv_at_times)
    times_in = as_numpy(eval_times).reshape(-1)
    if surv.shape != (len(t), len(times_in)):
        raise ValueError(f"surv_at_times must be [n={len(t)}, T={len(times_in)}], got {surv.shape}")
    if len(times_in) < 2 or np.any(np.diff(times_in) <= 0):
        log.warning("integrated Brier score undefined: needs >= 2 strictly increasing eval times; NaN")
        return NAN
    if times_in[-1] >= train_followup(train_time):
        log.warning(
            "integrated Brier score undefined: eval time %.6g at or past the training follow-up %.6g (censoring "
            "weights undefined); NaN",
            times_in[-1],
            train_followup(train_time),
        )
        return NAN
    g_fn = _censoring_survival(train_time, train_event)
    times = _check_eval_times(t, times_in, g_fn(times_in), "integrated Brier score")
    if times is None:
        return NAN
    return float(np.trapezoid(_brier_at(surv, t, e, g_fn, times), times) / (times[-1] - times[0]))


def _brier_at(
    surv: np.ndarray, t: np.ndarray, e: np.ndarray, g_fn: Callable[[ArrayLike], np.ndarray], times: np.ndarray
) -> np.ndarray:
    """IPCW Brier score BS(t_k) of survival curves surv [n, T] at times [T] (G > 0 there) -> [T]."""
    case = e[:, None] & (t[:, None] <= times[None, :])  # [n, T]
    control = t[:, None] > times[None, :]
    residuals = surv**2 * case * _inverse_or_zero(g_fn(t))[:, None] + (1.0 - surv) ** 2 * control / g_fn(
        times
    )
    return residuals.mean(axis=0)


def brier_score(
    surv_at_times: ArrayLike,
    time: ArrayLike,
    event: ArrayLike,
    train_time: ArrayLike,
    train_event: ArrayLike,
    eval_times: ArrayLike,
) -> np.ndarray:
    """IPCW Brier score at each eval time (= sksurv `brier_score`); surv_at_times [n, T] = S_i(t_k) -> [T].

    The terms of `integrated_brier_score` at one time. NaN (with a warning) at a time outside the test follow-up
    [min, max) or at / past the training follow-up (`train_followup`: censoring weights undefined).
    """
    t, e = _survival_arrays(time, event)
    surv = as_numpy(surv_at_times)
    times = as_numpy(eval_times).reshape(-1).astype(float)
    if surv.shape != (len(t), len(times)):
        raise ValueError(f"surv_at_times must be [n={len(t)}, T={len(times)}], got {surv.shape}")
    g_fn = _censoring_survival(train_time, train_event)
    ok = (times >= t.min()) & (times < t.max()) & (times < train_followup(train_time))
    out = np.full(len(times), NAN)
    if not ok.all():
        log.warning(
            "Brier score undefined at times %s: outside the test follow-up [%.6g, %.6g) or at / past the training "
            "follow-up %.6g; NaN there",
            times[~ok],
            t.min(),
            t.max(),
            train_followup(train_time),
        )
    if ok.any():
        out[ok] = _brier_at(surv[:, ok], t, e, g_fn, times[ok])
    return out


def default_eval_times(
    time: ArrayLike, event: ArrayLike, train_time: ArrayLike, train_event: ArrayLike
) -> np.ndarray:
    """Evaluation times for td-AUC / IBS: the 10%, ..., 80% quantiles (10 points) of the TEST event times, clipped
    strictly inside both follow-up ranges (max of the minima, min of the maxima), sorted and unique.

    Empty (with a warning) when the test set has no events or the ranges do not overlap.
    """
    t, e = _survival_arrays(time, event)
    tt, _ = _survival_arrays(train_time, train_event)
    lo, hi = max(t.min(), tt.min()), min(t.max(), tt.max())
    if not e.any() or not lo < hi:
        log.warning(
            "no evaluation times: %d test events, overlap of follow-up [%.4g, %.4g]", int(e.sum()), lo, hi
        )
        return np.empty(0)
    q = np.quantile(t[e], np.linspace(0.1, 0.8, 10))
    return np.unique(np.clip(q, np.nextafter(lo, np.inf), np.nextafter(hi, -np.inf)))


def survival_notes(metrics: Mapping[str, float], time: ArrayLike, event: ArrayLike) -> dict[str, str]:
    """{metric: reason} for each NaN value of `metrics` (from `survival_metrics` on time/event [n]): too few
    patients, no events, no comparable pair (C-indices), no evaluation time (td-AUC, IBS)."""
    t, e = _survival_arrays(time, event)
    n_pairs = concordance_counts(np.zeros(len(t)), t, e)[1]
    base = f"{len(t)} patients, {int(e.sum())} events"
    out = {}
    for name, value in metrics.items():
        if not (isinstance(value, float) and math.isnan(value)):
            continue
        if len(t) == 0:
            out[name] = "not computable: no patient with a known outcome in this part"
        elif name.startswith("cindex") and n_pairs == 0:
            out[name] = (
                f"not computable: no comparable pair ({base}; needs an event before another patient's time)"
            )
        elif not e.any():
            out[name] = f"not computable: no event in this part ({base})"
        else:
            out[name] = (
                f"not computable on this part ({base}): no evaluation time within the training follow-up, or "
                f"censoring weights undefined (see the log)"
            )
    return out


def survival_metrics(
    risk: ArrayLike,
    time: ArrayLike,
    event: ArrayLike,
    train_time: ArrayLike,
    train_event: ArrayLike,
    surv_at_times: ArrayLike | None = None,
    eval_times: ArrayLike | None = None,
    tau: float | None = None,
) -> dict[str, float]:
    """All survival metrics for one evaluation set.

    Keys: "cindex" (Harrell), "cindex_uno" (truncated at `tau` if given), "auc_td" (mean td-AUC), "ibs" (only
    if surv_at_times [n, T] — S_i at `eval_times` — is given), "n", "n_events". eval_times default to
    `default_eval_times`; surv_at_times requires explicit eval_times. Undefined metrics are NaN (logged).
    When test events lie past the training follow-up (where the IPCW weights are undefined), Uno's C is truncated
    there (tau = the follow-up, or the given tau if smaller) and two more keys say so: "cindex_uno_tau" (the tau
    used) and "n_events_past_followup" (the test events it leaves out).

    Example: survival_metrics(risk, t, e, *dm.fitted.train_survival())["cindex"]
    """
    t, e, r = _survival_arrays(time, event, risk)
    if surv_at_times is not None and eval_times is None:
        raise ValueError("surv_at_times needs the eval_times its columns correspond to")
    times = default_eval_times(t, e, train_time, train_event) if eval_times is None else as_numpy(eval_times)
    restricted: dict[str, float] = {}
    followup = train_followup(train_time)
    g = _censoring_survival(train_time, train_event)(t)
    past = e & ((t > followup) | (g <= 0)) & (t < (np.inf if tau is None else tau))
    if past.any():
        tau = followup if tau is None else min(float(tau), followup)
        restricted = {"cindex_uno_tau": float(tau), "n_events_past_followup": float(past.sum())}
        log.warning(
            "%d test event(s) at or past the training follow-up %.6g, where the censoring weights are undefined: "
            "Uno's C-index truncated at tau = %.6g (metrics cindex_uno_tau, n_events_past_followup)",
            int(past.sum()),
            followup,
            tau,
        )
    out = {
        "cindex": harrell_cindex(r, t, e),
        "cindex_uno": uno_cindex(r, t, e, train_time, train_event, tau=tau),
        "auc_td": time_dependent_auc(r, t, e, train_time, train_event, times)[1],
    }
    if surv_at_times is not None:
        out["ibs"] = integrated_brier_score(surv_at_times, t, e, train_time, train_event, times)
    out.update(n=float(len(t)), n_events=float(e.sum()), **restricted)
    return out


def survival_at_times(hazard_logits: ArrayLike, bin_edges: ArrayLike, times: ArrayLike) -> np.ndarray:
    """Step survival at `times` from discrete-time hazard logits; [n, K], [K+1], [T] -> [n, T].

    Bin k covers [e_k, e_{k+1}); S_k = prod_{j<=k} (1 − sigmoid(logit_j)) is the survival past bin k.
    Convention: S is constant inside a bin and drops at the bin's UPPER edge: S(t) = 1 for t < e_1 and
    S(t) = S_k for e_{k+1} <= t < e_{k+2} (S_{K−1} from e_K on). Example: edges [0, 10, 20], h = [.5, .5]:
    S(5) = 1, S(10) = S(15) = .5, S(20) = S(99) = .25.
    """
    logits = as_numpy(hazard_logits)
    edges = as_numpy(bin_edges).reshape(-1)
    if logits.ndim != 2 or len(edges) != logits.shape[1] + 1:
        raise ValueError(
            f"need hazard_logits [n, K] and bin_edges [K+1]; got {logits.shape} and {edges.shape}"
        )
    surv = np.cumprod(1.0 - expit(logits), axis=1)
    padded = np.concatenate([np.ones((len(logits), 1)), surv], axis=1)
    n_passed = np.searchsorted(edges[1:], as_numpy(times).reshape(-1), side="right")  # upper edges <= t
    return padded[:, n_passed]


def breslow_survival(
    train_risk: ArrayLike, train_time: ArrayLike, train_event: ArrayLike, risk: ArrayLike, times: ArrayLike
) -> np.ndarray:
    """Cox survival S_i(t) = exp(−H0(t)·exp(r_i)) with the Breslow baseline from the TRAINING predictions:
    H0(t) = sum_{event times s <= t} d_s / sum_{j: T_j >= s} exp(r_j). risk [n] (log-hazards), times [T] -> [n, T].
    """
    tt, te, tr = _survival_arrays(train_time, train_event, train_risk)
    r = as_numpy(risk).reshape(-1)
    shift = tr.max()  # exp(r − shift) keeps the sums finite; H0 scales by exp(−shift), S is unchanged
    event_times, inverse = np.unique(tt[te], return_inverse=True)
    deaths = np.bincount(inverse, minlength=len(event_times))
    order = np.argsort(tt)
    suffix = np.concatenate(
        [np.cumsum(np.exp(tr - shift)[order][::-1])[::-1], [0.0]]
    )  # sum over sorted k..end
    risk_sum = suffix[
        np.searchsorted(tt[order], event_times, side="left")
    ]  # sum_{j: T_j >= s} exp(r_j - shift)
    cum_hazard = np.cumsum(deaths / risk_sum)
    h0 = step_at(event_times, cum_hazard, times, before=0.0)
    return np.exp(-np.exp(r - shift)[:, None] * h0[None, :])
