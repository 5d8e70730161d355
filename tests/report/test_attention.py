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
