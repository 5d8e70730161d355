"""Shared blocks: masked pooling and attention ignore padding exactly."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from survlab.models.blocks import (
    CrossAttention,
    GatedAttentionPool,
    masked_adaptive_avg_pool,
    masked_max,
    masked_mean,
    masked_softmax,
)


def test_masked_adaptive_pool_equals_adaptive_pool_on_each_bags_real_part() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 11, 4)
    lengths = [11, 7, 3]
    mask = torch.arange(11).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    x[~mask] = 1e6  # padding must never leak in
    pooled = masked_adaptive_avg_pool(x, mask, 5)
    for b, n in enumerate(lengths):
        expected = F.adaptive_avg_pool1d(x[b : b + 1, :n].transpose(1, 2), 5).transpose(1, 2)[0]
        torch.testing.assert_close(pooled[b], expected)  # also n < bins: bins repeat tokens, as in torch
    assert pooled.abs().max() < 1e3


def test_masked_softmax_zero_on_padding() -> None:
    scores = torch.tensor([[1.0, 2.0, 3.0], [0.5, 9.0, 9.0]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    w = masked_softmax(scores, mask)
    torch.testing.assert_close(w[0], torch.softmax(scores[0], dim=0))
    assert w[1].tolist() == [1.0, 0.0, 0.0]


def test_gated_pool_and_cross_attention_ignore_padding() -> None:
    torch.manual_seed(0)
    bag = torch.randn(1, 5, 8)
    padded = torch.cat([bag, torch.randn(1, 4, 8) * 100], dim=1)
    mask = torch.tensor([[True] * 5 + [False] * 4])
    pool = GatedAttentionPool(8, 16).eval()
    alone, _ = pool(bag)
    inside, attn = pool(padded, mask)
    torch.testing.assert_close(alone, inside)
    assert attn[0, 5:].abs().max() == 0
    ca = CrossAttention(8, heads=2).eval()
    q = torch.randn(1, 3, 8)
    torch.testing.assert_close(ca(q, bag)[0], ca(q, padded, mask)[0], atol=1e-5, rtol=1e-5)


def test_masked_mean_and_max_use_only_real_tokens() -> None:
    x = torch.tensor([[[1.0, -4.0], [3.0, -2.0], [1e6, 1e6]], [[-5.0, 2.0], [-1e6, 1e6], [1e6, -1e6]]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    torch.testing.assert_close(masked_mean(x, mask), torch.tensor([[2.0, -3.0], [-5.0, 2.0]]))
    torch.testing.assert_close(masked_max(x, mask), torch.tensor([[3.0, -2.0], [-5.0, 2.0]]))
    torch.testing.assert_close(masked_max(x[:, :2, 0], mask[:, :2]), torch.tensor([3.0, -5.0]))  # [B, N] too
