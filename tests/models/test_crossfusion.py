"""CrossFusion: shapes, per-bag square padding, batch-padding invariance, eval determinism, attention on padding,
and learning a survival signal planted only in the 5x bag."""

from __future__ import annotations

import math

import pytest
import torch

from survlab.data.batch import PatientItem, collate
from survlab.models.base import ModalityDims, risk_score
from survlab.models.crossfusion import CrossFusion, pad_to_square, square_side

D = 8
DIMS = ModalityDims(scale_dims={"x5": D, "x10": D, "x20": D}, n_bins=4)


def make_net(seed: int = 0, **kw) -> CrossFusion:
    torch.manual_seed(seed)
    return CrossFusion(DIMS, **{"dim": 16, "heads": 2, "mlp_dim": 32, **kw})


def make_item(i: int, n5: int, n10: int, n20: int, gen: torch.Generator) -> PatientItem:
    return PatientItem(
        case_id=f"p{i}",
        index=i,
        scales={
            "x5": torch.randn(n5, D, generator=gen),
            "x10": torch.randn(n10, D, generator=gen),
            "x20": torch.randn(n20, D, generator=gen),
        },
    )


def make_items(sizes, seed: int = 0) -> list[PatientItem]:
    gen = torch.Generator().manual_seed(seed)
    return [make_item(i, *s, gen) for i, s in enumerate(sizes)]


SIZES = [(2, 8, 32), (4, 16, 64), (3, 10, 40), (2, 9, 33)]  # 10x sides 3, 4, 4, 3


def test_shapes_and_outputs():
    net = make_net().eval()
    batch = collate(make_items(SIZES))
    pred = net(batch)
    assert pred.hazard_logits.shape == (4, 4)
    assert pred.embedding.shape == (4, 16)
    assert pred.attention["x5"].shape == (4, 4)
    assert pred.attention["x20"].shape == (4, 64)
    assert torch.isfinite(pred.hazard_logits).all()
    assert risk_score(pred).shape == (4,)
    # gradients reach every parameter (all branches are used)
    net.train()
    net(batch).hazard_logits.sum().backward()
    no_grad = [n for n, p in net.named_parameters() if p.grad is None]
    assert not no_grad, no_grad


def test_identity_projection_when_feature_dim_equals_d():
    dims = ModalityDims(scale_dims={"x5": 16, "x10": 16, "x20": 8})
    net = CrossFusion(dims, dim=16, heads=2, mlp_dim=32)
    assert isinstance(net.proj["x5"].proj, torch.nn.Identity)
    assert not isinstance(net.proj["x20"].proj, torch.nn.Identity)


def test_missing_scale_is_a_clear_error():
    with pytest.raises(ValueError, match="missing"):
        CrossFusion(ModalityDims(scale_dims={"x5": D, "x10": D}), dim=16, heads=2, mlp_dim=32)


@pytest.mark.parametrize("n, side", [(1, 1), (4, 2), (5, 3), (10, 4), (16, 4), (17, 5)])
def test_square_padding_repeats_own_first_tokens(n, side):
    assert square_side(n) == side == math.ceil(math.sqrt(n))
    x = torch.arange(1, n + 1, dtype=torch.float32).view(1, n, 1)
    # the bag sits in a padded batch row: padding tokens (value -1) must never be repeated
    padded = torch.cat([x, torch.full((1, 3, 1), -1.0)], dim=1)
    mask = torch.cat([torch.ones(1, n, dtype=torch.bool), torch.zeros(1, 3, dtype=torch.bool)], dim=1)
    out, s = pad_to_square(padded, mask)
    assert s == side and out.shape == (1, side * side, 1)
    vals = out.view(-1).tolist()
    assert vals[:n] == list(range(1, n + 1))  # real tokens first, in order
    assert vals[n:] == [float(1 + (k % n)) for k in range(side * side - n)]  # then the bag's own first tokens


def test_square_padding_per_bag_in_group():
    """Two bags of one group (same side 3, lengths 5 and 9) each repeat their own tokens."""
    x = torch.stack([torch.arange(10, 19), torch.arange(20, 29)]).float().unsqueeze(-1)
    mask = torch.tensor([[True] * 5 + [False] * 4, [True] * 9])
    out, s = pad_to_square(x, mask, side=3)
    assert s == 3
    assert out[0, :, 0].tolist() == [10, 11, 12, 13, 14, 10, 11, 12, 13]
    assert out[1, :, 0].tolist() == list(range(20, 29))


def test_bag_alone_equals_bag_in_batch():
    net = make_net().eval()
    items = make_items(SIZES + [(4, 25, 64), (3, 12, 50)])
    with torch.no_grad():
        together = net(collate(items))
        for i, item in enumerate(items):
            alone = net(collate([item]))
            torch.testing.assert_close(alone.hazard_logits[0], together.hazard_logits[i], atol=1e-5, rtol=0)
            torch.testing.assert_close(alone.embedding[0], together.embedding[i], atol=1e-5, rtol=0)
            n5, n20 = item.scales["x5"].shape[0], item.scales["x20"].shape[0]
            torch.testing.assert_close(
                alone.attention["x5"][0], together.attention["x5"][i, :n5], atol=1e-6, rtol=0
            )
            torch.testing.assert_close(
                alone.attention["x20"][0], together.attention["x20"][i, :n20], atol=1e-6, rtol=0
            )


def test_eval_is_deterministic_and_train_is_not():
    net = make_net(dropout=0.3, attn_dropout=0.2)
    batch = collate(make_items(SIZES))
    net.eval()
    with torch.no_grad():
        a, b = net(batch).hazard_logits, net(batch).hazard_logits
    assert torch.equal(a, b)
    net.train()
    with torch.no_grad():
        c, d = net(batch).hazard_logits, net(batch).hazard_logits
    assert not torch.allclose(c, d)


def test_attention_is_zero_on_padding_and_sums_to_one():
    net = make_net().eval()
    batch = collate(make_items(SIZES))
    with torch.no_grad():
        pred = net(batch)
    for s in ("x5", "x20"):
        att, mask = pred.attention[s], batch.scale_masks[s]
        assert (att[~mask] == 0).all()
        assert (att[mask] >= 0).all()
        torch.testing.assert_close(att.sum(dim=1), torch.ones(len(batch)), atol=1e-5, rtol=0)


def test_query_chunking_is_exact():
    batch = collate(make_items(SIZES))
    a, b = make_net().eval(), make_net(query_chunk=3).eval()
    with torch.no_grad():
        pa, pb = a(batch), b(batch)
    torch.testing.assert_close(pa.hazard_logits, pb.hazard_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(pa.attention["x20"], pb.attention["x20"], atol=1e-6, rtol=0)
