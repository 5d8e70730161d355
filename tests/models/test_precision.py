"""Mixed precision: every network under CPU autocast (bf16, fp16) gives the fp32 outputs up to the reduced
precision's rounding; GGMF's masked residual pooling picks the same patches; the losses and the risk score are
computed in fp32; `trainer=bf16` trains GGMF end to end."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from survlab.data.batch import PatientItem
from survlab.models.abmil import ABMIL
from survlab.models.base import ModalityDims
from survlab.models.blocks import masked_adaptive_avg_pool
from survlab.models.clinical_mlp import ClinicalMLP
from survlab.models.crossfusion import CrossFusion
from survlab.models.ggmf import GGMF
from survlab.models.late_fusion import LateFusion
from survlab.models.mcat import MCAT
from survlab.models.snn import SNN

D, GENES, C = 8, (3, 5, 7, 4, 6), 6
DIMS = ModalityDims(
    wsi_dim=D,
    scale_dims={"x5": D, "x10": D, "x20": D},
    genomic_sizes=GENES,
    genomic_names=tuple(f"p{i}" for i in range(len(GENES))),
    clinical_dim=C,
    n_bins=4,
)
# CPU fp16 autocast exists in torch 2.13 (Linear/matmul run in float16 under it); both are checked.
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

NETS: dict[str, Callable[[], nn.Module]] = {
    "abmil": lambda: ABMIL(DIMS, hidden_dim=16),
    "snn": lambda: SNN(DIMS, hidden=[16, 16]),
    "clinical_mlp": lambda: ClinicalMLP(DIMS, hidden=[16]),
    "late_fusion": lambda: LateFusion(DIMS, wsi_hidden=16, genomic_hidden=[16], fusion="concat", fusion_dim=16),
    "late_fusion_bilinear": lambda: LateFusion(
        DIMS, wsi_hidden=16, genomic_hidden=[16], fusion="bilinear", fusion_dim=16, gate_dim=4
    ),
    "ggmf": lambda: GGMF(DIMS, dim=16, heads=2),
    "mcat": lambda: MCAT(DIMS, dim=16, layers=1, heads=2, ff_dim=32, fusion="concat"),
    "mcat_bilinear": lambda: MCAT(DIMS, dim=16, layers=1, heads=2, ff_dim=32, fusion="bilinear"),
    "crossfusion": lambda: CrossFusion(DIMS, dim=16, heads=2, mlp_dim=32),
}


def make_items(wsi_lengths: list[int], seed: int = 0) -> list[PatientItem]:
    """Patients with every modality; x10 bags hold a quarter of the WSI bag's patches, x5 a quarter of x10, x20 4x x10."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for i, n in enumerate(wsi_lengths):
        n10 = max(1, n // 4)
        items.append(
            PatientItem(
                case_id=f"c{i}",
                index=i,
                time=1.0 + i,
                event=bool(i % 2),
                time_bin=i % 4,
                wsi=torch.randn(n, D, generator=g),
                scales={s: torch.randn(m, D, generator=g) for s, m in
                        (("x5", max(1, n10 // 4)), ("x10", n10), ("x20", 4 * n10))},
                genomics=[torch.randn(s, generator=g) for s in GENES],
                clinical=torch.randn(C, generator=g),
            )
        )
    return items


@pytest.mark.parametrize("amp", list(AMP_DTYPES))
@pytest.mark.parametrize("n_bins", [3, 7, 13, 40])
def test_masked_adaptive_pool_bins_under_autocast(amp: str, n_bins: int) -> None:
    """Bag of 3,001 patches (and a padded 2,000-patch bag): channel j of patch i is 1 iff i lies in bin j
    = [floor(jL/n), ceil((j+1)L/n)) (exact integers here), so pooled[b, j, j] must be exactly 1 in any dtype
    and pooled[b, j, j'] the exact overlap fraction. Before the fix bf16 put patches in the wrong bins
    (pooled[j, j] down to 0.84 at 40 bins, 0.96 at 13) and fp16 overflowed j·L > 65504: 18 of 40 bins empty."""
    lengths = [3001, 2000]
    x = torch.zeros(2, 3001, n_bins)
    for b, n in enumerate(lengths):
        for j in range(n_bins):
            start, end = (j * n) // n_bins, -((-(j + 1) * n) // n_bins)
            x[b, start:end, j] = 1.0
    mask = torch.arange(3001).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    ref = masked_adaptive_avg_pool(x, mask, n_bins)
    torch.testing.assert_close(torch.diagonal(ref, dim1=1, dim2=2), torch.ones(2, n_bins))
    with torch.autocast("cpu", dtype=AMP_DTYPES[amp]):
        got = masked_adaptive_avg_pool(x.to(AMP_DTYPES[amp]), mask, n_bins)
    assert got.dtype == AMP_DTYPES[amp]
    assert torch.equal(torch.diagonal(got, dim1=1, dim2=2).float(), torch.ones(2, n_bins))
    # off-diagonal: overlap of two bins (<= 2 patches) / bin size, rounded once to the reduced precision
    torch.testing.assert_close(got.float(), ref.to(AMP_DTYPES[amp]).float(), atol=0, rtol=0)


