"""Shared by the GGMF and MCAT tests (WSI + gene groups): tiny dims, random patient items, and a planted-signal
cohort with a plain-torch fit for the learning checks."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from survlab.data.batch import PatientItem, collate
from survlab.metrics.survival import harrell_cindex
from survlab.models.base import ModalityDims, risk_score
from survlab.tasks.losses import nll_discrete_survival

D, GENES = 8, (3, 5, 7, 4, 6)
DIMS = ModalityDims(wsi_dim=D, genomic_sizes=GENES, genomic_names=tuple(f"p{i}" for i in range(len(GENES))))


def make_items(lengths: list[int], seed: int = 0) -> list[PatientItem]:
    """Random patients with bags of the given lengths and one vector per gene group."""
    g = torch.Generator().manual_seed(seed)
    return [
        PatientItem(
            case_id=f"c{i}",
            index=i,
            time=1.0 + i,
            event=bool(i % 2),
            time_bin=i % 4,
            wsi=torch.randn(n, D, generator=g),
            genomics=[torch.randn(s, generator=g) for s in GENES],
        )
        for i, n in enumerate(lengths)
    ]


def _cohort(n: int, gen: torch.Generator, edges=None):
    """Risk = a + b: `a` planted in ~40% of each patient's patches, `b` in gene groups 0 and 2; the rest is noise."""
    a, b = torch.randn(n, generator=gen), torch.randn(n, generator=gen)
    direction = torch.zeros(D)
    direction[0] = 1.0
    items = []
    for i in range(n):
        n_patch = int(torch.randint(6, 21, (1,), generator=gen))
        wsi = torch.randn(n_patch, D, generator=gen)
        hot = torch.rand(n_patch, generator=gen) < 0.4
        hot[0] = True
        wsi[hot] += 2.0 * a[i] * direction
        genomics = [0.5 * torch.randn(s, generator=gen) for s in GENES]
        genomics[0][:2] += b[i]
        genomics[2][:3] += b[i]
        items.append((wsi, genomics))
    risk = a + b
    t_event = -torch.log(torch.rand(n, generator=gen)) * torch.exp(-1.5 * risk)
    t_cens = -torch.log(torch.rand(n, generator=gen)) * 2.0
    time = torch.minimum(t_event, t_cens)
    event = t_event <= t_cens
    if edges is None:
        edges = torch.quantile(time[event], torch.tensor([0.25, 0.5, 0.75]))
    bins = torch.bucketize(time, edges)
    pitems = [
        PatientItem(
            case_id=f"s{i}",
            index=i,
            time=float(time[i]),
            event=bool(event[i]),
            time_bin=int(bins[i]),
            wsi=w,
            genomics=g,
        )
        for i, (w, g) in enumerate(items)
    ]
    return pitems, edges, risk


def train_nll(net: nn.Module, items: list, steps: int, lr: float, batch_size: int) -> None:
    """`steps` Adam steps of the discrete-time NLL on random batches of `items` (torch's global RNG), then eval mode."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        batch = collate([items[j] for j in torch.randperm(len(items))[:batch_size]])
        net.train()
        loss = nll_discrete_survival(net(batch).hazard_logits, batch.time_bin, batch.event)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()


def fit_and_cindex(build: Callable[[ModalityDims], nn.Module], seed: int, **kw) -> float:
    """Train `build(DIMS)` on a planted-signal cohort with a plain torch loop; Harrell C on held-out patients."""
    threads = torch.get_num_threads()
    # tiny tensors: thread hand-off costs more than it saves (and CI boxes are shared)
    torch.set_num_threads(1)
    try:
        return _fit_and_cindex(build, seed, **kw)
    finally:
        torch.set_num_threads(threads)


def _fit_and_cindex(
    build, seed: int, n_train: int = 72, n_test: int = 120, steps: int = 80, lr: float = 5e-3
) -> float:
    gen = torch.Generator().manual_seed(seed)
    train, edges, _ = _cohort(n_train, gen)
    test, _, _ = _cohort(n_test, gen, edges)
    torch.manual_seed(seed)
    net = build(DIMS)
    train_nll(net, train, steps, lr, batch_size=16)
    with torch.no_grad():
        batch = collate(test)
        risk = risk_score(net(batch))
    return harrell_cindex(risk, batch.time, batch.event)


def assert_padding_invariant(
    net: nn.Module, items: list[PatientItem], extra_keys: tuple[str, ...] = ()
) -> None:
    """Each patient's outputs alone equal its outputs padded inside the batch (eval mode): hazards, embedding,
    patch attention over its real patches, and `extra_keys` attention maps whose last axis is patches."""
    batched = net(collate(items))
    for i, item in enumerate(items):
        alone = net(collate([item]))
        n = item.wsi.shape[0]
        torch.testing.assert_close(alone.hazard_logits[0], batched.hazard_logits[i], atol=1e-5, rtol=0)
        torch.testing.assert_close(alone.embedding[0], batched.embedding[i], atol=1e-5, rtol=0)
        for key in ("patch", *extra_keys):
            torch.testing.assert_close(
                alone.attention[key][0], batched.attention[key][i, ..., :n], atol=1e-5, rtol=0
            )
