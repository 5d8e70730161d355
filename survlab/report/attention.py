"""Interpretation exports: per test patient, the top gene groups (pathways) and the top patches by attention.

Writes `<out>/top_pathways.csv` (case_id, rank, pathway, importance) when the network reports
`attention["pathway"]` [B, P], and `<out>/top_patches.csv` (case_id, scale, rank, slide, patch_index, x, y, attention)
from `attention["patch"]` [B, N] (or per-scale maps named like the batch's scales).
Hierarchical networks (slide -> patient, e.g. HMF) also get `<out>/top_slides.csv` (case_id, rank, slide, weight)
from `attention["slide"]` [B, S] and `<out>/top_slide_patches.csv` (case_id, slide, rank, patch_index, x, y,
attention) from `attention["slide_patch"]` [B, S, N] (the top patches of EACH slide).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import torch

from survlab.data.batch import Batch
from survlab.utils.files import atomic_path

log = logging.getLogger(__name__)


def _top_pathways(
    batch: Batch, importance: torch.Tensor, names: tuple[str, ...] | None, k: int
) -> list[dict]:
    rows = []
    k = min(k, importance.shape[1])
    values, idx = importance.topk(k, dim=1)
    for b, case in enumerate(batch.case_ids):
        for r in range(k):
            j = int(idx[b, r])
            rows.append(
                {
                    "case_id": case,
                    "rank": r + 1,
                    "pathway": names[j] if names else str(j),
                    "importance": float(values[b, r]),
                }
            )
    return rows


def _top_patches(
    batch: Batch,
    attn: torch.Tensor,
    mask: torch.Tensor | None,
    scale: str,
    k: int,
    slide_names: Callable[[str], Sequence[str] | None] | None,
) -> list[dict]:
    """Top-k patches per patient of attn [B, N]; `slide_names(case_id)` -> the patient's slide ids in bag order
    (those `batch.slide_index` counts)."""
    rows = []
    if mask is not None:
        attn = attn.masked_fill(~mask, float("-inf"))
    for b, case in enumerate(batch.case_ids):
        n_real = int(mask[b].sum()) if mask is not None else attn.shape[1]
        values, idx = attn[b].topk(min(k, n_real))
        slides = slide_names(case) if slide_names is not None else None
        for r, (v, j) in enumerate(zip(values.tolist(), idx.tolist(), strict=True)):
            row = {"case_id": case, "scale": scale, "rank": r + 1, "attention": v, "position": j}
            if scale == "wsi":
                if batch.patch_index is not None:
                    row["patch_index"] = int(batch.patch_index[b, j])
                if batch.slide_index is not None:
                    s = int(batch.slide_index[b, j])
                    row["slide"] = slides[s] if slides is not None and 0 <= s < len(slides) else s
                if batch.coords is not None:
                    row["x"], row["y"] = (float(c) for c in batch.coords[b, j])
            rows.append(row)
    return rows


def _top_slides(
    batch: Batch, weights: torch.Tensor, slide_names: Callable[[str], Sequence[str] | None] | None
) -> list[dict]:
    """Every real slide of each patient ranked by its weight in the patient's pooling: weights [B, S]."""
    rows = []
    for b, case in enumerate(batch.case_ids):
        n = int(batch.n_slides[b]) if batch.n_slides is not None else weights.shape[1]
        names = slide_names(case) if slide_names is not None else None
        values, idx = weights[b, :n].sort(descending=True)
        for r, (v, s) in enumerate(zip(values.tolist(), idx.tolist(), strict=True)):
            rows.append(
                {
                    "case_id": case,
                    "rank": r + 1,
                    "slide": names[s] if names and s < len(names) else s,
                    "weight": v,
                }
            )
    return rows


def _top_slide_patches(
    batch: Batch, attn: torch.Tensor, k: int, slide_names: Callable[[str], Sequence[str] | None] | None
) -> list[dict]:
    """Top-k patches of each slide of each patient from attn [B, S, N] (0 outside the slide)."""
    rows = []
    for s in range(attn.shape[1]):  # a patient without slide s has no member patch there: no rows
        member = batch.wsi_mask & (batch.slide_index == s)
        rows += _top_patches(batch, attn[:, s], member, "wsi", k, slide_names)
    for row in rows:
        del row["scale"]
    return rows


def attention_records(
    batch: Batch,
    attention: dict[str, torch.Tensor],
    top_k: int,
    gene_names: tuple[str, ...] | None = None,
    slide_names: Callable[[str], Sequence[str] | None] | None = None,
) -> dict[str, list[dict]]:
    """The top-k records of one batch's `Prediction.attention` (batch and attention on the CPU): table name
    (pathways / patches / slides / slide_patches) -> rows of attention/top_<name>.csv. `slide_names(case_id)`: the
    patient's slide ids in bag order (of the FILTERED cohort: `batch.slide_index` counts the slides with features)."""
    out: dict[str, list[dict]] = {"pathways": [], "patches": [], "slides": [], "slide_patches": []}
    if "pathway" in attention:
        out["pathways"] += _top_pathways(batch, attention["pathway"].float(), gene_names, top_k)
    if "patch" in attention and batch.wsi is not None:
        out["patches"] += _top_patches(
            batch, attention["patch"].float(), batch.wsi_mask, "wsi", top_k, slide_names
        )
    if "slide" in attention and batch.slide_index is not None:
        out["slides"] += _top_slides(batch, attention["slide"].float(), slide_names)
    if "slide_patch" in attention and batch.slide_index is not None:
        out["slide_patches"] += _top_slide_patches(
            batch, attention["slide_patch"].float(), top_k, slide_names
        )
    masks = batch.scale_masks or {}
    for scale in batch.scales or {}:
        if scale in attention:
            out["patches"] += _top_patches(batch, attention[scale].float(), masks[scale], scale, top_k, None)
    # data.missing=keep: a patient without slides / genomics has placeholders, not attention worth a record
    absent = {
        m: {c for c, has in zip(batch.case_ids, batch.has(m).tolist(), strict=True) if not has}
        for m in ("wsi", "genomics")
    }
    of_table = {"pathways": "genomics", "patches": "wsi", "slides": "wsi", "slide_patches": "wsi"}
    return {k: [r for r in rows if r["case_id"] not in absent[of_table[k]]] for k, rows in out.items()}


def write_attention(records: dict[str, list[dict]], out_dir: Path) -> dict[str, Path]:
    """Write the top-k tables of one pass (`PatientRows.attention`) as `<out_dir>/top_<name>.csv`; -> written paths
    (none when the network reports no attention)."""
    written: dict[str, Path] = {}
    for name in ("slides", "slide_patches", "pathways", "patches"):
        rows = records.get(name) or []
        if rows:
            out_dir.mkdir(parents=True, exist_ok=True)
            written[name] = out_dir / f"top_{name}.csv"
            with atomic_path(written[name]) as tmp:
                pd.DataFrame(rows).to_csv(tmp, index=False)
    if written:
        log.info("attention exports: %s", ", ".join(str(p) for p in written.values()))
    return written


__all__ = ["attention_records", "write_attention"]
