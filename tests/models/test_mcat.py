"""MCAT: shapes, masks (padding invariance, 0 attention on padding), extension points, gradients, learning."""

from __future__ import annotations

import pytest
import torch

from survlab.data.batch import collate
from survlab.models.base import Features, ModalityDims, Prediction, risk_score
from survlab.models.mcat import MCAT, MCATBranches
from tests.helpers.wsi_genomics import DIMS, GENES, D, assert_padding_invariant, fit_and_cindex, make_items  # noqa: E402  (tests/models is on sys.path)


def small_net(**kw) -> MCAT:
    torch.manual_seed(0)
    return MCAT(DIMS, **{"dim": 16, "omic_hidden": [16, 16], "heads": 2, "ff_dim": 32, **kw})


@pytest.mark.parametrize("fusion", ["concat", "bilinear"])
def test_shapes_and_attention_keys(fusion):
    net = small_net(fusion=fusion).eval()
    batch = collate(make_items([10, 30, 4]))
    pred = net(batch)
    p = len(GENES)
    assert pred.hazard_logits.shape == (3, 4)
    assert pred.embedding.shape == (3, 16)
    assert pred.attention["coattn"].shape == (3, p, 30)
    assert pred.attention["patch"].shape == (3, 30)
    assert pred.attention["omic"].shape == (3, p)
    assert pred.attention["path_tokens"].shape == (3, p)
    assert torch.isfinite(risk_score(pred)).all()


def test_risk_output_and_bad_hparams():
    pred = small_net(output="risk").eval()(collate(make_items([6, 9])))
    assert pred.hazard_logits is None and pred.risk.shape == (2,)
    with pytest.raises(ValueError):
        small_net(fusion="sum")
    with pytest.raises(ValueError):
        MCAT(ModalityDims(wsi_dim=D), dim=16)  # no genomics in the cohort


@pytest.mark.parametrize("coattn_heads", [1, 4])
def test_padding_invariance(coattn_heads):
    net = small_net(coattn_heads=coattn_heads).eval()
    items = make_items([7, 30, 12], seed=1)
    assert_padding_invariant(net, items, extra_keys=("coattn",))


def test_padding_gets_zero_attention_and_rows_sum_to_one():
    net = small_net().eval()
    batch = collate(make_items([5, 20]))
    pred = net(batch)
    pad = ~batch.wsi_mask
    assert (pred.attention["patch"][pad] == 0).all()
    assert (pred.attention["coattn"].permute(0, 2, 1)[pad] == 0).all()
    torch.testing.assert_close(pred.attention["patch"].sum(dim=1), torch.ones(2))
    torch.testing.assert_close(pred.attention["coattn"].sum(dim=2), torch.ones(2, len(GENES)))
    torch.testing.assert_close(pred.attention["omic"].sum(dim=1), torch.ones(2))
    batch.wsi[pad] = 1e3  # garbage in the padded rows must not change anything
    torch.testing.assert_close(net(batch).hazard_logits, pred.hazard_logits, atol=1e-5, rtol=0)


def test_gradient_reaches_every_encoder():
    net = small_net().train()
    pred = net(collate(make_items([9, 4])))
    pred.hazard_logits.sum().backward()
    for enc in net.omic_encoders:
        assert enc[0][0].weight.grad.abs().sum() > 0
    assert net.wsi_proj[0].weight.grad.abs().sum() > 0
    assert net.coattention.attn.in_proj_weight.grad.abs().sum() > 0


def test_subclass_adds_a_head_without_copying_layers():
    """The MCAT_GR pattern (specs/pathgen.md): a grade head with its own gated pool over the path tokens."""
    from survlab.models.blocks import GatedAttentionPool

    class WithGrade(MCAT):
        def __init__(self, dims, n_grade: int = 3, **kw):
            super().__init__(dims, **kw)
            self.grade_pool = GatedAttentionPool(self.dim, hidden=self.dim)
            self.grade_head = torch.nn.Linear(self.dim, n_grade)

        def predict(self, features: Features) -> Prediction:
            pred = super().predict(features)
            branches: MCATBranches = features.extra["branches"]
            pooled, _ = self.grade_pool(branches.path_tokens)
            pred.class_logits["grade"] = self.grade_head(pooled)
            return pred

    torch.manual_seed(0)
    net = WithGrade(DIMS, dim=16, omic_hidden=[16, 16], heads=2, ff_dim=32).eval()
    pred = net(collate(make_items([5, 8])))
    assert pred.hazard_logits.shape == (2, 4) and pred.class_logits["grade"].shape == (2, 3)


# --- learning check: planted signal split across WSI patches and gene groups (tests/models/_planted.py)
def test_learns_planted_signal():
    c = fit_and_cindex(lambda dims: MCAT(dims, dim=16, omic_hidden=[16, 16], heads=2, ff_dim=32), seed=0)
    assert c > 0.65, c
