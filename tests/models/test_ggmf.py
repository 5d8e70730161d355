"""GGMF: shapes, masks (padding invariance, 0 attention on padding), top-k semantics, gradients, learning."""

from __future__ import annotations

import math

import pytest
import torch

from survlab.data.batch import collate
from survlab.models.base import ModalityDims, Prediction, risk_score
from survlab.models.ggmf import GGMF
from tests.helpers.wsi_genomics import DIMS, GENES, D, assert_padding_invariant, fit_and_cindex, make_items  # noqa: E402  (tests/models is on sys.path)


def small_net(**kw) -> GGMF:
    torch.manual_seed(0)
    return GGMF(DIMS, **{"dim": 16, "heads": 4, **kw})


def test_shapes_and_attention_keys():
    net = small_net().eval()
    batch = collate(make_items([10, 30, 4]))
    pred = net(batch)
    k = math.floor(0.8 * len(GENES))
    assert pred.hazard_logits.shape == (3, 4)
    assert pred.embedding.shape == (3, 16)
    assert pred.attention["pathway"].shape == (3, len(GENES))
    assert pred.attention["topk"].shape == (3, k) and pred.attention["topk"].dtype == torch.long
    assert pred.attention["patch"].shape == (3, 30)
    assert torch.isfinite(risk_score(pred)).all()


def test_risk_output_and_bad_hparams():
    pred = small_net(output="risk").eval()(collate(make_items([6, 9])))
    assert pred.hazard_logits is None and pred.risk.shape == (2,)
    with pytest.raises(ValueError):
        small_net(output="probs")
    with pytest.raises(ValueError):
        GGMF(ModalityDims(wsi_dim=D), dim=16, heads=4)  # no genomics in the cohort


@pytest.mark.parametrize("heads", [2, 4])
def test_padding_invariance(heads):
    net = small_net(heads=heads).eval()
    items = make_items([7, 30, 12], seed=1)
    assert_padding_invariant(net, items)
    batched = net(collate(items))
    for i, item in enumerate(items):  # the same key pathways are kept
        assert torch.equal(net(collate([item])).attention["topk"][0], batched.attention["topk"][i])


def test_padding_gets_zero_attention_and_padding_values_do_not_matter():
    net = small_net().eval()
    batch = collate(make_items([5, 20]))
    pred = net(batch)
    patch = pred.attention["patch"]
    assert (patch[~batch.wsi_mask] == 0).all()
    torch.testing.assert_close(patch.sum(dim=1), torch.ones(2))
    batch.wsi[~batch.wsi_mask] = 1e3  # garbage in the padded rows must not change anything
    torch.testing.assert_close(net(batch).hazard_logits, pred.hazard_logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("ratio", [0.8, 0.5, 0.1, 1.0])
def test_topk_indices_and_importance(ratio):
    heads = 4
    net = small_net(topk_ratio=ratio, heads=heads).eval()
    pred = net(collate(make_items([6, 8, 3, 11])))
    p = len(GENES)
    k = max(1, math.floor(ratio * p))
    idx, imp = pred.attention["topk"], pred.attention["pathway"]
    assert idx.shape == (4, k)
    assert ((idx >= 0) & (idx < p)).all()
    assert all(len(set(row.tolist())) == k for row in idx)  # unique
    gathered = torch.gather(imp, 1, idx)
    assert (gathered[:, :-1] >= gathered[:, 1:]).all()  # ordered by importance, descending
    # the kept ones are the most important: every dropped pathway has importance <= the smallest kept
    dropped = torch.ones_like(imp, dtype=torch.bool).scatter(1, idx, False)
    assert (imp.masked_fill(~dropped, -1).max(dim=1).values <= gathered[:, -1] + 1e-7).all()
    # invariant: each softmax row sums to 1, so attention received summed over heads, averaged over queries sums to H
    torch.testing.assert_close(imp.sum(dim=1), torch.full((4,), float(heads)))
    assert (imp >= 0).all()


def test_gradient_flows_to_pathway_encoders_through_selected_tokens():
    net = small_net(topk_ratio=0.4)  # k = 2 of 5
    net.train()
    pred: Prediction = net(collate(make_items([9, 4])))
    pred.hazard_logits.sum().backward()
    for enc in net.pathway_encoders:
        grad = enc[0][0].weight.grad
        assert grad is not None and grad.abs().sum() > 0
    assert net.key_attention.qkv.weight.grad.abs().sum() > 0
    assert net.wsi_proj[0].weight.grad.abs().sum() > 0


# --- learning check: planted signal split across WSI patches and gene groups (tests/models/_planted.py)
def test_learns_planted_signal():
    c = fit_and_cindex(lambda dims: GGMF(dims, dim=16, heads=4), seed=0)
    assert c > 0.65, c
