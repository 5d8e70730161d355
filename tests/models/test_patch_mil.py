"""MeanMIL and MaxMIL share one constructor (survlab.models.patch_mil.PatchMIL): the same parameters (names, order,
initial values for a seed — so checkpoints of either load as before), and they differ only in how they pool."""

from __future__ import annotations

import pytest
import torch

from survlab.data.batch import PatientItem, collate
from survlab.data.dims import ModalityDims
from survlab.models.max_mil import MaxMIL
from survlab.models.mean_mil import MeanMIL
from survlab.models.patch_mil import PatchMIL

DIMS = ModalityDims(wsi_dim=6, n_bins=4, n_classes={"subtype": 3, "grade": 2})


def _net(cls: type[PatchMIL], **kw: object) -> PatchMIL:
    torch.manual_seed(0)
    return cls(DIMS, hidden_dim=8, dropout=0.0, **kw).eval()


@pytest.mark.parametrize(
    "kw", [{}, {"survival": True}, {"survival": True, "output": "risk", "targets": ["grade"]}]
)
def test_mean_and_max_mil_build_the_same_parameters(kw: dict) -> None:
    mean, mx = _net(MeanMIL, **kw), _net(MaxMIL, **kw)
    assert "__init__" not in vars(MeanMIL) and "__init__" not in vars(MaxMIL)
    a, b = mean.state_dict(), mx.state_dict()
    assert list(a) == list(b) and list(a)[:2] == ["patch_fc.0.weight", "patch_fc.0.bias"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(k.startswith("head.") for k in a) is bool(kw.get("survival"))


def test_mean_and_max_mil_differ_only_in_pooling() -> None:
    mean, mx = _net(MeanMIL, survival=True), _net(MaxMIL, survival=True)
    gen = torch.Generator().manual_seed(1)
    one = collate([PatientItem("a", 0, wsi=torch.randn(1, 6, generator=gen))])
    with torch.no_grad():  # one patch: the mean and the max of a single patch embedding are that embedding
        p, q = mean(one), mx(one)
        torch.testing.assert_close(p.embedding, q.embedding)
        torch.testing.assert_close(p.hazard_logits, q.hazard_logits)
        many = collate([PatientItem("b", 1, wsi=torch.randn(7, 6, generator=gen))])
        h = mean.patch_fc(many.wsi)[0]  # [7, H]
        torch.testing.assert_close(mean(many).embedding[0], h.mean(0))
        torch.testing.assert_close(mx(many).embedding[0], h.amax(0))
        assert not torch.allclose(h.mean(0), h.amax(0))


def test_bad_targets_still_name_the_network() -> None:
    with pytest.raises(ValueError, match=r"^MaxMIL targets \['stage'\] are not patient labels"):
        MaxMIL(DIMS, targets=["stage"])
