"""Small random batches for docstring examples and quick shape checks (no files, no cohort).

Example:
    >>> from survlab.data.dims import ModalityDims
    >>> batch = random_batch(ModalityDims(wsi_dim=8, genomic_sizes=(3, 4), n_classes={"grade": 3}), bag_sizes=(5, 2))
    >>> batch.wsi.shape, batch.wsi_mask.sum(dim=1).tolist(), [g.shape[1] for g in batch.genomics]
    (torch.Size([2, 5, 8]), [5, 2], [3, 4])
    >>> batch.labels["grade"].tolist(), batch.time_bin.tolist()
    ([0, 1], [0, 1])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from survlab.data.batch import Batch, PatientItem, collate
from survlab.data.dims import ModalityDims


def random_batch(
    dims: ModalityDims,
    bag_sizes: Sequence[int] = (5, 3),
    seed: int = 0,
    absent: Mapping[str, Sequence[int]] | None = None,
) -> Batch:
    """A padded `Batch` of B = len(bag_sizes) patients with every table / bag modality `dims` describes.

    Patient i has a WSI bag [bag_sizes[i], wsi_dim] from one slide, each scale s a bag [bag_sizes[i], D_s], genomic
    groups [g], clinical [clinical_dim] (standard normal draws from `seed`); time i + 1, event on even i, time bin
    i mod n_bins, class i mod K of every label. CT / PET and text are not drawn (see the imaging and text modules).

    `absent`: modality ("wsi" | "genomics") -> patient indices without it (data.missing=keep): those get the
    placeholders (zero gene groups; a WSI bag of one zero patch) and `present[m]` False. The other patients' draws
    are the same as without `absent`.

    >>> b = random_batch(ModalityDims(wsi_dim=4, genomic_sizes=(3,)), bag_sizes=(5, 2), absent={"wsi": [0]})
    >>> b.present["wsi"].tolist(), b.wsi_mask.sum(dim=1).tolist(), b.wsi[0].abs().sum().item()
    ([False, True], [1, 2], 0.0)
    """
    if not bag_sizes or min(bag_sizes) < 1:
        raise ValueError(f"bag_sizes {list(bag_sizes)} must list at least one patient, each with >= 1 patch")
    marked: dict[str, set[int]] = {m: {int(i) for i in rows} for m, rows in (absent or {}).items()}
    drawn = {"wsi": dims.wsi_dim is not None, "genomics": bool(dims.genomic_sizes)}
    for m, rows in marked.items():
        if not drawn.get(m):
            raise ValueError(
                f"random_batch absent={{{m!r}: ...}}: only wsi / genomics of the dims can be absent "
                f"(dims provide: {[k for k, v in drawn.items() if v]})"
            )
        if not rows <= set(range(len(bag_sizes))):
            raise ValueError(
                f"random_batch absent[{m!r}] {sorted(rows)}: patients are 0..{len(bag_sizes) - 1}"
            )
    gen = torch.Generator().manual_seed(seed)

    def draw(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    items = []
    for i, n in enumerate(bag_sizes):
        items.append(
            PatientItem(
                case_id=f"patient_{i}",
                index=i,
                time=float(i + 1),
                event=i % 2 == 0,
                time_bin=i % dims.n_bins,
                wsi=draw(n, dims.wsi_dim) if dims.wsi_dim is not None else None,
                slide_index=torch.zeros(n, dtype=torch.long) if dims.wsi_dim is not None else None,
                scales={s: draw(n, d) for s, d in dims.scale_dims.items()} if dims.scale_dims else None,
                genomics=[draw(g) for g in dims.genomic_sizes] if dims.genomic_sizes else None,
                clinical=draw(dims.clinical_dim) if dims.clinical_dim else None,
                labels={name: i % k for name, k in dims.n_classes.items()},
                n_slides=1 if dims.wsi_dim is not None else 0,
                present={m: i not in rows for m, rows in marked.items()},
            )
        )
        item = items[-1]
        if i in marked.get("wsi", set()):
            assert item.wsi is not None
            item.wsi, item.slide_index = (
                item.wsi.new_zeros(1, item.wsi.shape[1]),
                torch.zeros(1, dtype=torch.long),
            )
        if i in marked.get("genomics", set()):
            assert item.genomics is not None
            item.genomics = [torch.zeros_like(g) for g in item.genomics]
    return collate(items)
