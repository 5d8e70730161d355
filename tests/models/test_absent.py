"""Absent modalities (issue #23 item 2, data.missing=keep), the networks' side: the five networks that accept absence
(late fusion, MCAT, GGMF, CoxMLP, MM-DLS) replace an absent modality by a learned stand-in
(`survlab.models.blocks.AbsentModalities`), so a patient's output does not depend on the placeholder; patients with
every modality are untouched; gradients stay finite and reach the stand-ins; modality dropout drops at the given rate
in training only and never every modality of a patient; a late fusion trained with genomics-absent patients learns
the genomic signal and still ranks the genomics-absent ones by their slides."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
import torch

import survlab.models
from survlab.data.batch import Batch, PatientItem, collate
from survlab.data.sources.examples import random_batch
from survlab.metrics.survival import harrell_cindex
from survlab.models.base import ModalityDims, Prediction, SurvivalNet, risk_score
from survlab.models.coxmlp import CoxMLP
from survlab.models.ggmf import GGMF
from survlab.models.late_fusion import LateFusion
from survlab.models.mcat import MCAT
from survlab.models.mcat_gr import MCATGR
from survlab.models.mmdls import MMDLS
from tests.helpers.wsi_genomics import DIMS, _cohort, train_nll

WG = ModalityDims(wsi_dim=6, genomic_sizes=(3, 4, 5), n_bins=4)
TABLE = ModalityDims(genomic_sizes=(4, 3), clinical_dim=3, n_bins=4)
IMG = {"stack_length": 3, "image_size": 8, "radiomics": 6, "pet": 5}
PETCT = ModalityDims(
    clinical_dim=3, n_classes={"subtype": 2, "tnm": 3}, endpoints=("os", "dfs"), imaging=IMG, n_bins=4
)
BAGS = (5, 3, 4, 2)  # 4 patients; patient 1 is the one made absent


def _patients(dims: ModalityDims, absent: dict[str, list[int]], noise: bool) -> list[PatientItem]:
    """Patients as `random_batch` draws them (+ CT / PET for MM-DLS), absent ones with zero placeholders or, with
    `noise`, random placeholder content (and a 4-patch WSI bag instead of the one zero patch)."""
    gen = torch.Generator().manual_seed(1)
    fill = torch.Generator().manual_seed(2)  # placeholder noise: the patients' own draws stay the same
    items = []
    for i, n in enumerate(BAGS):
        item = PatientItem(case_id=f"p{i}", index=i, time=float(i + 1), event=i % 2 == 0, time_bin=i % 4)
        if dims.wsi_dim:
            item.wsi, item.slide_index = (
                torch.randn(n, dims.wsi_dim, generator=gen),
                torch.zeros(n, dtype=torch.long),
            )
        if dims.genomic_sizes:
            item.genomics = [torch.randn(g, generator=gen) for g in dims.genomic_sizes]
        if dims.clinical_dim:
            item.clinical = torch.randn(dims.clinical_dim, generator=gen)
        if dims.imaging:
            s, h = IMG["stack_length"], IMG["image_size"]
            item.extra = {
                "ct_lesion": torch.randn(s, h, h, generator=gen),
                "ct_space": torch.randn(s, h, h, generator=gen),
                "ct_lesion_mask": torch.ones(s, dtype=torch.bool),
                "ct_space_mask": torch.ones(s, dtype=torch.bool),
                "radiomics": torch.randn(IMG["radiomics"], generator=gen),
                "pet": torch.randn(IMG["pet"], generator=gen),
            }
        item.present = {m: i not in rows for m, rows in absent.items()}
        if i in absent.get("wsi", ()):
            k = 4 if noise else 1
            item.wsi = torch.randn(k, dims.wsi_dim, generator=fill) if noise else torch.zeros(1, dims.wsi_dim)
            item.slide_index = torch.zeros(k, dtype=torch.long)
        if i in absent.get("genomics", ()):
            item.genomics = [
                torch.randn(g.shape, generator=fill) if noise else torch.zeros_like(g) for g in item.genomics
            ]
        if i in absent.get("pet", ()):
            pet = item.extra["pet"]
            item.extra["pet"] = torch.randn(pet.shape, generator=fill) if noise else torch.zeros_like(pet)
        items.append(item)
    return items


def make_batch(dims: ModalityDims, absent: dict[str, list[int]], noise: bool = False) -> Batch:
    return collate(_patients(dims, absent, noise))


@dataclass
class Case:
    name: str
    build: Callable[..., SurvivalNet]
    dims: ModalityDims
    accepts: frozenset[str]
    anchored: bool  # reads an input that is never absent (clinical, CT)


def _late(fusion: str) -> Callable[..., SurvivalNet]:
    return lambda **kw: LateFusion(WG, wsi_hidden=8, genomic_hidden=(8,), fusion=fusion, fusion_dim=8, **kw)


CASES = [
    Case("late_fusion_concat", _late("concat"), WG, frozenset({"wsi", "genomics"}), False),
    Case("late_fusion_bilinear", _late("bilinear"), WG, frozenset({"wsi", "genomics"}), False),
    Case(
        "mcat",
        lambda **kw: MCAT(WG, dim=8, heads=2, ff_dim=16, **kw),
        WG,
        frozenset({"wsi", "genomics"}),
        False,
    ),
    Case("ggmf", lambda **kw: GGMF(WG, dim=8, heads=2, **kw), WG, frozenset({"wsi", "genomics"}), False),
    Case("coxmlp", lambda **kw: CoxMLP(TABLE, hidden=(8,), **kw), TABLE, frozenset({"genomics"}), True),
    Case(
        "mmdls",
        lambda **kw: MMDLS(PETCT, dim=8, hidden=8, heads=2, task_embed_dim=2, **kw),
        PETCT,
        frozenset({"pet"}),
        True,
    ),
]
ABSENT = [(c, m) for c in CASES for m in sorted(c.accepts)]


def _net(case: Case, **kw: float) -> SurvivalNet:
    torch.manual_seed(0)
    return case.build(**kw)


def outputs(pred: Prediction) -> torch.Tensor:
    """Every patient's risk and embedding side by side, [B, 1 + E]."""
    return torch.cat([risk_score(pred).unsqueeze(1), pred.embedding.float()], dim=1)


@pytest.mark.parametrize(("case", "modality"), ABSENT, ids=[f"{c.name}-{m}" for c, m in ABSENT])
def test_absent_patient_output_ignores_the_placeholder(case: Case, modality: str) -> None:
    net = _net(case).eval()
    with torch.no_grad():
        zero = outputs(net(make_batch(case.dims, {modality: [1]})))
        noise = outputs(net(make_batch(case.dims, {modality: [1]}, noise=True)))
        unmarked = outputs(net(replace(make_batch(case.dims, {modality: [1]}, noise=True), present={})))
    torch.testing.assert_close(noise[1], zero[1], rtol=0, atol=1e-6)
    assert not torch.allclose(
        unmarked[1], zero[1], atol=1e-3
    )  # unmarked, the random placeholder would move it
    keep = [0, 2, 3]
    torch.testing.assert_close(noise[keep], zero[keep], rtol=0, atol=1e-6)  # (others unaffected by patient 1)


@pytest.mark.parametrize(("case", "modality"), ABSENT, ids=[f"{c.name}-{m}" for c, m in ABSENT])
def test_patients_with_every_modality_are_unaffected(case: Case, modality: str) -> None:
    net = _net(case).eval()
    marked = make_batch(case.dims, {modality: [1, 3]})
    with torch.no_grad():
        with_marks, without = outputs(net(marked)), outputs(net(replace(marked, present={})))
    assert torch.equal(with_marks[[0, 2]], without[[0, 2]])
    assert not torch.allclose(with_marks[[1, 3]], without[[1, 3]], atol=1e-4)  # the stand-in is used for them


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_backward_with_absent_patients_is_finite_and_trains_the_stand_ins(case: Case) -> None:
    net = _net(case, modality_dropout=0.3).train()
    absent = {
        m: [1, 2] if i == 0 else [3] for i, m in enumerate(sorted(case.accepts))
    }  # every pattern occurs
    pred = net(make_batch(case.dims, absent))
    (risk_score(pred).sum() + pred.embedding.float().pow(2).sum()).backward()
    for name, p in net.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name
    for m in case.accepts:
        grad = net.absent.embeddings[m].grad
        assert grad is not None and grad.abs().sum() > 0, m


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_modality_dropout_rate_train_only_and_never_every_modality(case: Case) -> None:
    p, n = 0.3, 4000
    net = _net(case, modality_dropout=p)
    names = sorted(net.absent.embeddings)
    assert names == sorted(case.accepts)
    truly_absent = torch.arange(n) % 5 == 0  # a fifth of the patients lacks the first accepted modality
    batch = random_batch(ModalityDims(n_bins=4, clinical_dim=1), bag_sizes=(1,) * n)
    batch.present = {names[0]: ~truly_absent}
    torch.manual_seed(3)
    net.train()
    drawn = net.absent.presence(batch)
    kept = torch.stack([drawn[m] for m in names], dim=1)  # [n, M]
    assert not kept[truly_absent, 0].any()  # a real absence is never undone
    if not case.anchored:
        assert kept.any(dim=1).all()  # never all of a patient's modalities
        assert kept[truly_absent, 1:].all()  # the only modality of those patients is never dropped
    both = ~truly_absent
    # two droppable modalities: a patient losing both gets one back (rate p - p^2/2); one: rate p
    expected = p - p * p / 2 if len(names) > 1 and not case.anchored else p
    for j in range(len(names)):
        rate = 1.0 - kept[both, j].float().mean().item()
        assert abs(rate - expected) < 0.03, (names[j], rate, expected)
    net.eval()
    marks = net.absent.presence(batch)
    assert set(marks) == {names[0]} and torch.equal(marks[names[0]], ~truly_absent)  # eval: the marks only
    batch.present = {}
    assert net.absent.presence(batch) == {}  # nothing marked, nothing dropped: the forward is the usual one


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_stand_ins_take_part_in_every_training_step(case: Case) -> None:
    """DDP (trainer=ddp, find_unused_parameters off) needs every parameter in every step's graph: with nobody absent
    the stand-ins get a zero gradient, and the training outputs are those of the bypass (x passed bit for bit)."""
    net = _net(case).train()
    batch = make_batch(case.dims, {})
    torch.manual_seed(5)
    pred = net(batch)
    risk_score(pred).sum().backward()
    for m, stand_in in net.absent.embeddings.items():
        assert stand_in.grad is not None and not stand_in.grad.any(), m
    net.absent.eval()  # the stand-ins bypassed, the rest still in training mode (same dropout masks from the seed)
    torch.manual_seed(5)
    assert torch.equal(outputs(net(batch)), outputs(pred))


def test_modality_dropout_bad_values_are_one_line_errors() -> None:
    with pytest.raises(
        ValueError, match=r"LateFusion: model.net.modality_dropout must be in \[0, 1\), got 1.0"
    ):
        _late("concat")(modality_dropout=1.0)
    with pytest.raises(
        ValueError, match=r"MCATGR accepts no absent modality, so model.net.modality_dropout must be 0"
    ):
        MCATGR(
            ModalityDims(wsi_dim=6, genomic_sizes=(3, 4), n_classes={"grade": 2}), dim=8, modality_dropout=0.2
        )


def test_accepts_absent_is_declared_by_the_five_networks_only() -> None:
    declared = {}
    for info in pkgutil.iter_modules(survlab.models.__path__):
        module = importlib.import_module(f"survlab.models.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, SurvivalNet) and cls.__module__ == module.__name__:
                declared[cls.__name__] = cls.accepts_absent
    assert {k: v for k, v in declared.items() if v} == {
        "LateFusion": {"wsi", "genomics"},
        "MCAT": {"wsi", "genomics"},
        "GGMF": {"wsi", "genomics"},
        "CoxMLP": {"genomics"},
        "MMDLS": {"pet"},
    }
    assert declared["MCATGR"] == frozenset() and "ABMIL" in declared and "SNN" in declared


def test_old_checkpoint_without_stand_ins_loads() -> None:
    net = _net(CASES[0])
    old = {k: v for k, v in net.state_dict().items() if not k.startswith("absent.")}
    fresh = _net(CASES[0])
    fresh.load_state_dict(old)  # strict
    assert torch.equal(fresh.absent.embeddings["wsi"], net.absent.embeddings["wsi"])


def test_late_fusion_learns_genomics_and_still_ranks_genomics_absent_patients_by_slides() -> None:
    """Planted risk a + b (a in the slides, b in gene groups 0 and 2); 40% of the patients lack genomics."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        gen = torch.Generator().manual_seed(0)
        train, edges, _ = _cohort(96, gen)
        test, _, _ = _cohort(240, gen, edges)
        for items in (train, test):
            for i, item in enumerate(items):
                item.present = {"genomics": i % 5 >= 2}
                if i % 5 < 2:
                    item.genomics = [torch.zeros_like(g) for g in item.genomics]
        gen_absent = torch.tensor([i % 5 < 2 for i in range(len(test))])
        torch.manual_seed(0)
        net = LateFusion(DIMS, wsi_hidden=16, genomic_hidden=(16,), fusion_dim=16, dropout=0.1)
        train_nll(net, train, steps=100, lr=5e-3, batch_size=24)
        with torch.no_grad():
            batch = collate(test)
            pred = risk_score(net(batch))
            # the same patients with their genomics hidden: what the slides alone give
            hidden = risk_score(
                net(replace(batch, present={"genomics": torch.zeros(len(test), dtype=torch.bool)}))
            )
    finally:
        torch.set_num_threads(threads)
    both, only_wsi = ~gen_absent, gen_absent
    c_both = harrell_cindex(pred[both], batch.time[both], batch.event[both])
    c_both_hidden = harrell_cindex(hidden[both], batch.time[both], batch.event[both])
    c_wsi = harrell_cindex(pred[only_wsi], batch.time[only_wsi], batch.event[only_wsi])
    # seed 0: 0.767 with genomics, 0.657 with them hidden, 0.669 on the genomics-absent patients (seeds 1-3: margins
    # 0.04-0.08, genomics-absent 0.67-0.76)
    assert c_both > c_both_hidden + 0.03  # the genomic signal is used
    assert c_wsi > 0.6  # genomics-absent patients are still ranked, by their slides
