"""Per-slide attention written as h5 files that CLAM / TRIDENT heatmap tools read.

One file per test slide, `<out>/<slide>.h5` (the slide id without its WSI extension, as TRIDENT names feature
files), holding:
- `coords` [n, 2] int64: top-left level-0 pixel coords of the patches (from the feature file; its attrs, e.g.
  TRIDENT's patch_size_level0 / target_magnification, are copied so `trident.visualize_heatmap` has them),
- `attention_scores` [n] float32: the network's patch attention (`Prediction.attention["patch"]`, normalised over
  the patient's whole bag, so a patient's slides together sum to 1) — the key CLAM's create_heatmaps block maps and
  TRIDENT's heatmap scores use; `attention` is a hard link to the same data,
- `patch_index` [n] int64: the row of each patch in the slide's feature file (rows in file order; all rows unless
  `data.eval_max_patches` subsampled the bag).
The test part only (the files are per slide and can be large); off unless `export_attention_h5: true`. The
attention is that of the run's one prediction pass (survlab.runner.predict: `PatientRows.slide_attention`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from survlab.data.batch import Batch
from survlab.data.modalities.wsi_files import slide_key
from survlab.report.rows import SlideAttention
from survlab.utils.files import atomic_path

log = logging.getLogger(__name__)


def slide_rows(
    batch: Batch, attn: torch.Tensor, b: int, slides: Sequence[str], n_patches: dict[str, int] | None
) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """Patient `b` of a batch, split by slide -> (slide_id, patch_index [n], coords [n, 2], attention [n]) with
    rows sorted by their row in the slide's file. attn [B, N]; `n_patches`: patches per slide file (to turn a row of
    the concatenated bag into a row of its slide; without it, all patches of every slide must be in the batch)."""
    if (
        batch.wsi_mask is None
        or batch.slide_index is None
        or batch.patch_index is None
        or batch.coords is None
    ):
        raise ValueError("attention h5 needs a WSI batch with slide_index, patch_index and coords")
    real = batch.wsi_mask[b]
    sidx, pidx = batch.slide_index[b][real], batch.patch_index[b][real]
    coords, scores = batch.coords[b][real], attn[b][real]
    out, offset = [], 0
    for s, slide in enumerate(slides):
        member = sidx == s
        if n_patches is None:
            size = int(member.sum())
        else:
            size = int(n_patches[slide])
        rows = (pidx[member] - offset).numpy()
        order = np.argsort(rows, kind="stable")
        out.append((slide, rows[order], coords[member].numpy()[order], scores[member].numpy()[order]))
        offset += size
    return out


def _source_attrs(store: Any, slide: str) -> dict[str, Any]:
    """Attributes of the `coords` dataset of a slide's .h5 feature file (empty for .pt files or without coords)."""
    import h5py

    path = store.path_of(slide) if store is not None else None
    if path is None or path.suffix != ".h5":
        return {}
    with h5py.File(path, "r") as f:
        c = f.get("coords")
        return dict(c.attrs) if isinstance(c, h5py.Dataset) else {}


def write_slide_h5(
    path: Path, coords: np.ndarray, attention: np.ndarray, patch_index: np.ndarray, attrs: dict[str, Any]
) -> None:
    """One slide's file: coords [n, 2], attention_scores [n] (+ `attention` link), patch_index [n]."""
    import h5py

    if not (len(coords) == len(attention) == len(patch_index)):
        raise ValueError(f"{path}: {len(coords)} coords but {len(attention)} attention values")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        c = f.create_dataset("coords", data=np.rint(coords).astype(np.int64))
        c.attrs.update(attrs)
        f.create_dataset("attention_scores", data=attention.astype(np.float32))
        f["attention"] = f["attention_scores"]
        f.create_dataset("patch_index", data=patch_index.astype(np.int64))


def slide_attention(
    batch: Batch,
    attention: dict[str, torch.Tensor],
    slides_of: dict[str, Sequence[str]],
    n_patches: dict[str, int] | None,
) -> list[SlideAttention]:
    """Every slide of every patient of one batch (batch and attention on the CPU) whose network reports
    `attention["patch"]` [B, N]: (slide id, patch_index [n], coords [n, 2], attention [n]); [] for networks without
    patch attention or batches without coords."""
    # wsi_mask, not wsi: with data.wsi.cache=device the host batch carries row numbers only
    if "patch" not in attention or batch.wsi_mask is None or batch.coords is None:
        return []
    attn = attention["patch"].float()
    has_wsi = batch.has("wsi").tolist()  # a patient without slides (data.missing=keep) has only a placeholder
    return [
        row
        for b, case in enumerate(batch.case_ids)
        if has_wsi[b]
        for row in slide_rows(batch, attn, b, slides_of[case], n_patches)
    ]


def write_attention_h5(slides: Sequence[SlideAttention], out_dir: Path, store: Any = None) -> list[Path]:
    """Write `<out_dir>/<slide>.h5` for every slide of one pass (`PatientRows.slide_attention`); `store`: the WSI
    feature store whose coords attrs are copied. -> written paths."""
    written: list[Path] = []
    for slide, rows, coords, scores in slides:
        path = out_dir / f"{slide_key(slide)}.h5"
        out_dir.mkdir(parents=True, exist_ok=True)
        write_slide_h5(path, coords, scores, rows, _source_attrs(store, slide))
        written.append(path)
    if written:
        log.info("attention h5: %d slide files in %s", len(written), out_dir)
    else:
        log.warning(
            "export_attention_h5: nothing written (the network reports no patch attention, or no coords)"
        )
    return written


__all__ = ["slide_attention", "slide_rows", "write_attention_h5", "write_slide_h5"]
