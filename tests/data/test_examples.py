"""survlab.data.sources.examples.random_batch: the docstring examples' batches follow ModalityDims and the collate rules."""

from __future__ import annotations

import pytest
import torch

from survlab.data.dims import ModalityDims
from survlab.data.sources.examples import random_batch


def test_random_batch_pads_every_bag_modality_and_is_reproducible() -> None:
    dims = ModalityDims(scale_dims={"x5": 3, "x20": 4}, clinical_dim=2, n_bins=3, n_classes={"g": 2})
    a, b = random_batch(dims, bag_sizes=(4, 1, 2), seed=3), random_batch(dims, bag_sizes=(4, 1, 2), seed=3)
    assert a.wsi is None and a.genomics is None and a.clinical.shape == (3, 2)
    assert {s: tuple(t.shape) for s, t in a.scales.items()} == {"x5": (3, 4, 3), "x20": (3, 4, 4)}
    assert a.scale_masks["x20"].sum(dim=1).tolist() == [4, 1, 2]
    assert a.time_bin.tolist() == [0, 1, 2] and a.event.tolist() == [True, False, True]
    assert torch.equal(a.scales["x5"], b.scales["x5"]) and torch.equal(a.clinical, b.clinical)
    assert not torch.equal(a.clinical, random_batch(dims, bag_sizes=(4, 1, 2), seed=4).clinical)


def test_random_batch_refuses_empty_bags() -> None:
    with pytest.raises(
        ValueError, match=r"^bag_sizes \[3, 0\] must list at least one patient, each with >= 1 patch"
    ):
        random_batch(ModalityDims(wsi_dim=2), bag_sizes=(3, 0))
