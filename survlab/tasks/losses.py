"""Survival losses: discrete-time NLL (MCAT/Zadeh) and the Cox negative partial log-likelihood.

Both return a scalar tensor that carries grad w.r.t. the network output, even when it is zero. Both lift bf16/fp16
network outputs to fp32 first: CPU autocast keeps sigmoid / cumprod / log / logcumsumexp in bf16 otherwise (on fp32
inputs autocast changes none of these elementwise ops, and neither loss has a matmul).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor
from torchsurv.loss.cox import neg_partial_log_likelihood

from survlab.models.precision import at_least_fp32

__all__ = ["nll_discrete_survival", "cox_partial_likelihood", "classification_loss"]


def nll_discrete_survival(
    hazard_logits: Tensor,
    time_bin: Tensor,
    event: Tensor,
    alpha: float = 0.0,
    eps: float = 1e-7,
) -> Tensor:
    r"""Discrete-time survival negative log-likelihood (MCAT / Zadeh & Schmid), mean over the batch.

    Shapes: hazard_logits [B, K], time_bin [B] (long, in [0, K)), event [B] (bool, True = event observed).

    With h_k = sigmoid(logit_k), S_k = prod_{j<=k} (1 - h_j) and S_{-1} = 1 (standard indexing, no off-by-one):

    - event in bin y:     uncensored_i = -log S_{y-1} - log h_y   (survived bins 0..y-1, event in bin y)
    - censored in bin y:  censored_i   = -log S_y                 (survived bin y)
    - loss = mean_i[(1 - alpha) * (uncensored_i + censored_i) + alpha * uncensored_i]

    (each patient has only one of the two terms; alpha > 0 up-weights the uncensored term, as in MCAT).
    h and S are clamped to [eps, 1] before the log.

    Example:
        >>> nll_discrete_survival(torch.zeros(1, 2), torch.tensor([1]), torch.tensor([True]))  # -log(.5) - log(.5)
        tensor(1.3863)
    """
    if hazard_logits.ndim != 2:
        raise ValueError(f"hazard_logits must be [B, K], got shape {tuple(hazard_logits.shape)}")
    n_bins = hazard_logits.shape[1]
    y = time_bin.long().reshape(-1)
    if y.numel() != hazard_logits.shape[0]:
        raise ValueError(f"time_bin has {y.numel()} entries for a batch of {hazard_logits.shape[0]}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= n_bins):
        raise ValueError(
            f"time_bin out of range [0, {n_bins}): got min {int(y.min())}, max {int(y.max())}; "
            "bin edges and the network's n_bins disagree"
        )
    hazard_logits = at_least_fp32(hazard_logits)
    ev = event.reshape(-1).to(hazard_logits.dtype)
    hazards = torch.sigmoid(hazard_logits)
    surv = torch.cumprod(1.0 - hazards, dim=1)
    surv_pad = torch.cat(
        [torch.ones_like(surv[:, :1]), surv], dim=1
    )  # surv_pad[:, k + 1] = S_k, [:, 0] = S_{-1}
    idx = y.unsqueeze(1)
    s_before = surv_pad.gather(1, idx).squeeze(1)  # S_{y-1}
    s_at = surv_pad.gather(1, idx + 1).squeeze(1)  # S_y
    h_at = hazards.gather(1, idx).squeeze(1)  # h_y
    uncensored = -ev * (torch.log(s_before.clamp(min=eps)) + torch.log(h_at.clamp(min=eps)))
    censored = -(1.0 - ev) * torch.log(s_at.clamp(min=eps))
    loss = (1.0 - alpha) * (uncensored + censored) + alpha * uncensored
    return loss.mean()


def cox_partial_likelihood(log_hz: Tensor, time: Tensor, event: Tensor, ties: str = "efron") -> Tensor:
    r"""Cox negative log partial likelihood, averaged over the events of the batch (torchsurv).

    Shapes: log_hz [B] (log relative hazard, higher = worse), time [B], event [B] bool. ties: "efron" | "breslow".

    loss = -(1 / n_events) * sum_{events i} [log_hz_i - log sum_{j: T_j >= T_i} exp(log_hz_j)]  (no tied event
    times; Efron/Breslow corrections otherwise). A patient censored at the time of an event is in that event's
    risk set (times are replaced by ranks that put such censorings just after the event before calling torchsurv,
    whose no-ties path otherwise depends on the arbitrary sort order of event/censoring ties).

    The partial likelihood only compares patients *within the batch*: a batch with no events, or a batch of
    size 1 (even with an event: its risk set is itself), gives a ZERO loss (``0 * log_hz.sum()``, so backward
    still works). The task must therefore use batches large enough to contain several events; Cox training
    at batch size 1 learns nothing.

    Example:
        >>> cox_partial_likelihood(torch.tensor([0.0, 0.0]), torch.tensor([1.0, 2.0]), torch.tensor([True, False]))
        tensor(0.6931)
    """
    if ties not in ("efron", "breslow"):
        raise ValueError(f"ties must be 'efron' or 'breslow', got {ties!r}")
    log_hz = at_least_fp32(log_hz.reshape(-1))
    event = event.reshape(-1).bool()
    zero = 0.0 * log_hz.sum()
    n_events = int(event.sum())
    if log_hz.numel() < 2 or n_events == 0:
        return zero
    # The likelihood depends on times only through their order: use ranks, with a censoring placed just after an
    # event at the same time (2k = events at the k-th distinct time, 2k + 1 = censorings there).
    _, inverse = torch.unique(time.reshape(-1).to(log_hz.device), return_inverse=True)
    t = (2 * inverse + (~event).long()).to(torch.float64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Ties in `time` detected")
        total = neg_partial_log_likelihood(log_hz, event, t, ties_method=ties, reduction="sum")
    return total / n_events


def classification_loss(
    logits: Tensor,
    target: Tensor,
    kind: str = "ce",
    label_smoothing: float = 0.0,
    class_weight: Tensor | None = None,
    gamma: float = 2.0,
) -> Tensor:
    """Cross-entropy (`ce`, with label smoothing and class weights, as torch's `cross_entropy`) or focal loss
    (`focal`, Lin et al. 2017: mean_i w_{y_i} (1 - p_{i,y_i})^gamma CE_i, with label smoothing in CE_i).

    logits [N, K], target [N] long in 0..K-1 (missing labels removed by the caller; N = 0 gives a zero loss that
    keeps the graph). The weighted CE is normalised by the summed weights (torch's convention); focal by N.
    """
    logits = at_least_fp32(logits)
    if target.numel() == 0:
        return logits.sum() * 0.0
    weight = None if class_weight is None else class_weight.to(logits)
    if kind == "ce":
        return torch.nn.functional.cross_entropy(
            logits, target, weight=weight, label_smoothing=label_smoothing
        )
    if kind != "focal":
        raise ValueError(f"classification loss must be 'ce' or 'focal', got {kind!r}")
    ce = torch.nn.functional.cross_entropy(logits, target, reduction="none", label_smoothing=label_smoothing)
    p_true = torch.softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
    focal = (1.0 - p_true).pow(gamma) * ce
    if weight is not None:
        focal = focal * weight[target]
    return focal.mean()
