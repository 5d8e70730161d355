"""Attention exports name the slide each exported patch came from, also after slides were dropped."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import torch

from survlab.models.abmil import ABMIL
from survlab.report.attention import write_attention
from survlab.runner.predict import AttentionSpec, predict


def _h5(root: Path, slide: str) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(root / "features" / "synthetic" / "h5_files" / f"{slide}.h5", "r") as f:
        return f["features"][()], f["coords"][()]


def test_exported_slides_exist_and_hold_the_patch_after_a_slide_was_dropped(
    tiny_cohort: Path, tmp_path: Path, make_datamodule: Callable[..., Any]
) -> None:
    kw: dict[str, Any] = dict(
        genomics=None,
        clinical=None,
        modalities=("wsi",),
        eval_max_patches=None,
        wsi={"encoder": "synthetic", "feature_dim": 8, "cache": False},
    )  # exact fp32 bags
    full = make_datamodule(**kw)
    case = next(
        c
        for c, s in zip(full.cohort.case_ids, full.cohort.table["slide_ids"], strict=True)
        if len(s) > 1 and c in full.split.test
    )
    dropped = full.cohort.rows([case])["slide_ids"].iloc[0][
        0
    ]  # the FIRST slide of a multi-slide test patient
    root = tmp_path / "cohort"
    shutil.copytree(tiny_cohort, root)
    for kind in ("h5", "pt"):
        (root / "features" / "synthetic" / f"{kind}_files" / f"{dropped}.{kind}").unlink()
    dm = make_datamodule(root=root, allow_missing=True, **kw)
    assert dm.drop_report["wsi"]["slides"] == {dropped: "missing features"} and case in dm.split.test

    torch.manual_seed(0)
    rows = predict(ABMIL(dm.dims, hidden_dim=8), [dm.test_dataloader()], AttentionSpec.of(dm, top_k=10_000))
    written = write_attention(rows.attention, tmp_path / "attn")  # every patch
    rows = pd.read_csv(written["patches"], dtype={"case_id": str, "slide": str})
    slides_of = dict(zip(dm.cohort.case_ids, dm.cohort.table["slide_ids"], strict=True))
    assert set(rows["case_id"]) == set(dm.split.test)
    assert rows["slide"].isin({s for ss in slides_of.values() for s in ss}).all()
    assert dropped not in set(rows["slide"])
    items = {it.case_id: it for it in (dm.datasets["test"][i] for i in range(len(dm.datasets["test"])))}
    for c, patient in rows.groupby("case_id"):
        offsets = np.cumsum([0] + [len(_h5(root, s)[0]) for s in slides_of[c]])
        for slide, part in patient.groupby("slide"):
            k = slides_of[c].index(slide)
            feats, coords = _h5(root, slide)
            assert len(part) == len(feats)  # every patch of this slide exported once, under its name
            local = part["patch_index"].to_numpy() - offsets[k]
            assert ((local >= 0) & (local < len(feats))).all()
            assert np.array_equal(coords[local], part[["x", "y"]].to_numpy())
            bag = items[c].wsi[torch.as_tensor(part["patch_index"].to_numpy())].numpy()
            assert np.array_equal(bag, feats[local])  # the patch the network saw is that slide's row
    assert set(rows.loc[rows["case_id"] == case, "slide"]) == set(slides_of[case])


def test_no_attention_records_for_a_patient_without_the_modality() -> None:
    """data.missing=keep: a patient without slides has one placeholder patch (and one without genomics zero gene
    groups); their attention is not attention over real data, so no record or heatmap row is written for them."""
    import torch

    from survlab.data.dims import ModalityDims
    from survlab.data.sources.examples import random_batch
    from survlab.models.mcat import MCAT
    from survlab.report.attention import attention_records
    from survlab.report.attention_h5 import slide_attention

    dims = ModalityDims(wsi_dim=8, genomic_sizes=(4, 5, 6), n_bins=4)
    torch.manual_seed(0)
    net = MCAT(dims).eval()

    def with_positions(b):  # random_batch draws no coords / patch rows; the h5 writer needs them
        b.coords = torch.zeros(*b.wsi_mask.shape, 2)
        b.patch_index = torch.where(b.wsi_mask, torch.arange(b.wsi_mask.shape[1]), -1)
        return b

    batch = with_positions(random_batch(dims, bag_sizes=(5, 3, 4), absent={"wsi": [0], "genomics": [1]}))
    with torch.no_grad():
        attention = {k: v.float() for k, v in net(batch).attention.items() if torch.is_tensor(v)}
    records = attention_records(batch, attention, top_k=2)
    cases = batch.case_ids
    assert {r["case_id"] for r in records["patches"]} == {cases[1], cases[2]}
    if "pathway" in attention:
        assert {r["case_id"] for r in records["pathways"]} == {cases[0], cases[2]}
    slides = slide_attention(batch, attention, {c: ["s"] for c in cases}, None)
    assert len(slides) == 2  # patients 1 and 2: one slide each; patient 0 (no slides) none
