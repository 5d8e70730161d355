"""Shared piece of the table models (Cox MLP, linear Cox): which table modalities a network reads and how a batch
becomes one feature row per patient.

A table network declares `table_modalities = ("genomics", "clinical")` and reads whichever of them the cohort
provides (`dims.provides`); `table_features(batch, inputs)` concatenates them in that fixed order:

    genomics [B, g_1] ... [B, g_k], clinical [B, C]  ->  x [B, Σg + C]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from survlab.data.batch import Batch
from survlab.data.dims import ModalityDims

TABLE_MODALITIES = ("genomics", "clinical")


def table_inputs(owner: str, dims: ModalityDims, wanted: Sequence[str] = TABLE_MODALITIES) -> tuple[str, ...]:
    """The table modalities of `wanted` the cohort provides, in `wanted`'s order; none -> a one-line ValueError."""
    inputs = tuple(m for m in wanted if m in dims.provides)
    if not inputs:
        raise ValueError(
            f"{owner} reads {' and/or '.join(wanted)} but the cohort provides {sorted(dims.provides) or 'none'}; "
            f"pick a data config with an expression table (genomics:) or clinical columns (clinical.columns)"
        )
    return inputs


def table_width(dims: ModalityDims, inputs: Sequence[str]) -> int:
    """Number of features of `table_features` for these inputs: Σ gene-group sizes + encoded clinical width."""
    width = 0
    if "genomics" in inputs:
        width += sum(dims.genomic_sizes or ())
    if "clinical" in inputs:
        width += int(dims.clinical_dim or 0)
    return width


def table_features(
    batch: Batch, inputs: Sequence[str], block: Callable[[str, Tensor], Tensor] | None = None
) -> Tensor:
    """Batch -> x [B, Σg + C]: the patient's gene groups then clinical features (the order of `inputs`).

    `block(modality, x)`: applied to the gene block [B, Σg] before the concat (e.g. a network's absent-genomics
    stand-in, `AbsentModalities`)."""
    parts: list[Tensor] = []
    for m in inputs:
        if m == "genomics" and batch.genomics is not None:
            if block is None:
                parts.extend(batch.genomics)
            else:
                parts.append(block("genomics", torch.cat(list(batch.genomics), dim=-1)))
        elif m == "clinical" and batch.clinical is not None:
            parts.append(batch.clinical)
    return torch.cat(parts, dim=-1)
