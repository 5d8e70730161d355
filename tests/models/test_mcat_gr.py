"""MCAT_GR: MCAT + grade head on its own pooling of the path tokens; padding invariance; patch-level inference."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from survlab.data.batch import collate
from survlab.eval.patch_inference import patch_predictions
from survlab.models.mcat_gr import MCATGR
from tests.models._wsi_genomics import DIMS, assert_padding_invariant, make_items

GDIMS = replace(DIMS, n_classes={"grade": 3})


def _net() -> MCATGR:
    torch.manual_seed(0)
    return MCATGR(GDIMS, dim=16, omic_hidden=[16, 16], heads=2, ff_dim=32).eval()


def test_outputs_and_own_grade_pooling() -> None:
    net = _net()
    pred = net(collate(make_items([5, 9, 3])))
    assert pred.hazard_logits.shape == (3, 4) and pred.class_logits["grade"].shape == (3, 3)
    w = pred.attention["grade_path_tokens"]
    assert w.shape == (3, len(DIMS.genomic_sizes)) and torch.allclose(w.sum(1), torch.ones(3))
    assert not torch.allclose(w, pred.attention["path_tokens"])  # its own pool, not the survival branch's
    assert {n for n, _ in net.named_parameters() if n.startswith("grade_")} >= {"grade_pool.score.weight"}


def test_padding_does_not_change_outputs() -> None:
    net = _net()
    items = make_items([4, 11, 2], seed=3)
    assert_padding_invariant(net, items)
    batched = net(collate(items)).class_logits["grade"]
    for i, item in enumerate(items):
        torch.testing.assert_close(
            net(collate([item])).class_logits["grade"][0], batched[i], atol=1e-5, rtol=0
        )


def test_missing_grade_label_is_a_one_line_error() -> None:
    with pytest.raises(ValueError, match="grade_label 'grade' is not a patient label of the cohort"):
        MCATGR(DIMS, dim=16)


def test_patch_predictions_one_row_per_real_patch() -> None:
    net = _net()
    items = make_items([4, 7], seed=1)
    batch = collate(items)
    batch.coords = torch.arange(2 * 7 * 2).reshape(2, 7, 2)
    batch.slide_index = torch.zeros(2, 7, dtype=torch.long)
    frame = patch_predictions(
        net, batch, {"c0": ["c0-DX1"], "c1": ["c1-DX1"]}, "grade", ["G1", "G2", "G3"], chunk=3
    )
    assert len(frame) == 11 and frame.groupby("case_id").size().to_dict() == {"c0": 4, "c1": 7}
    assert frame.filter(like="grade_prob_").sum(1).round(5).eq(1).all()
    # a patch alone through the network gives its row
    one = collate([items[1]])
    one.wsi, one.wsi_mask = items[1].wsi[2:3].unsqueeze(0), torch.ones(1, 1, dtype=torch.bool)
    alone = torch.softmax(net(one).class_logits["grade"], -1)[0]
    row = frame[frame.case_id == "c1"].iloc[2]
    assert torch.allclose(
        alone,
        torch.tensor(row[["grade_prob_G1", "grade_prob_G2", "grade_prob_G3"]].to_numpy(dtype="float32")),
        atol=1e-5,
    )
    assert (row["x"], row["y"]) == (batch.coords[1, 2, 0].item(), batch.coords[1, 2, 1].item())
