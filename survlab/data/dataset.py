"""`PatientDataset`: one `PatientItem` per patient of a split, joining every modality by case_id.

Training (`train=True`): each access samples at most `max_patches` patches of the patient's bag at random (per
scale: `max_patches_per_scale[scale]`), seeded by (seed, epoch, case_id) — the training sampler passes the epoch with
the index (`dataset[(i, epoch)]`), so the subset does not depend on batch order, workers or resumption.
Evaluation: the full bag, or — when `eval_max_patches` is set — a fixed subset seeded by (seed, case_id), identical
on every call, so evaluation is deterministic.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import Dataset

from survlab.data.batch import PatientItem
from survlab.data.cohort.time_bins import TimeBins
from survlab.data.modalities.resident import ResidentBags
from survlab.data.modalities.wsi import BagStore


@dataclass
class ModalitySources:
    """What a dataset reads per patient. Tabular modalities are precomputed dicts keyed by case_id."""

    wsi: BagStore | None = None
    scales: dict[str, BagStore] | None = None
    genomics: dict[str, list[np.ndarray]] | None = None
    clinical: dict[str, np.ndarray] | None = None
    imaging: Any = (
        None  # survlab.data.modalities.imaging.ImagingStore: CT stacks + PET / radiomics -> PatientItem.extra
    )
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # patient label name -> class order
    labels: dict[str, dict[str, int]] = field(
        default_factory=dict
    )  # label name -> case_id -> class (-1 missing)
    slide_classes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # slide label name -> class order
    slide_labels: dict[str, dict[str, int]] = field(
        default_factory=dict
    )  # name -> slide_id -> class (-1 missing)
    # data.missing=keep: the modalities marked on every item (PatientItem.present) and, per modality, the patients
    # without it (their tensors are placeholders); both empty otherwise
    marked: tuple[str, ...] = ()
    absent: dict[str, set[str]] = field(default_factory=dict)
    wsi_placeholder: tuple[int, bool] | None = (
        None  # (D, has coords) of the one zero patch of a patient w/o slides
    )


def _subset(n: int, k: int | None, generator: torch.Generator) -> Tensor | None:
    """Sorted random indices of k out of n (None = keep all)."""
    if k is None or k <= 0 or n <= k:
        return None
    return torch.randperm(n, generator=generator)[:k].sort().values


def _resident_rows(
    res: ResidentBags, slide_ids: Sequence[str], cap: int | None, generator: torch.Generator
) -> tuple[int, Tensor]:
    """(start, rows [n']) of a patient's bag in a resident store: the same seeded subset `_subset` gives the RAM path."""
    start, n = res.span(slide_ids)
    keep = _subset(n, cap, generator)
    return start, torch.arange(n) if keep is None else keep


class PatientDataset(Dataset):
    """rows: patient rows (case_id, time, event, time:<endpoint>, event:<endpoint>, slide_ids) in dataset order;
    index_of: case_id -> row index in the full cohort; bins: endpoint name -> fitted TimeBins (primary first; empty
    for a cohort without survival); label_cols: names of the patient labels in `sources.labels`."""

    def __init__(
        self,
        rows: pd.DataFrame,
        index_of: dict[str, int],
        bins: dict[str, TimeBins],
        sources: ModalitySources,
        label_cols: Sequence[str] = (),
        train: bool = False,
        max_patches: int | None = None,
        max_patches_per_scale: dict[str, int] | None = None,
        eval_max_patches: int | None = None,
        seed: int = 0,
    ) -> None:
        self.rows = rows.reset_index(drop=True)
        self.case_ids: list[str] = self.rows["case_id"].astype(str).tolist()
        self.index_of, self.sources, self.label_cols = index_of, sources, list(label_cols)
        self.endpoint_time_bins = {
            name: np.where(
                np.isnan(t := self.rows[f"time:{name}"].to_numpy(float)), -1, b.transform(np.nan_to_num(t))
            )
            for name, b in bins.items()
        }
        primary = next(iter(self.endpoint_time_bins.values()), None)
        self.time_bins = primary if primary is not None else np.full(len(self.rows), -1, dtype=np.int64)
        self.train, self.seed = train, seed
        self.max_patches, self.eval_max_patches = max_patches, eval_max_patches
        self.max_patches_per_scale = dict(max_patches_per_scale or {})

    def __len__(self) -> int:
        return len(self.rows)

    def _generator(self, case_id: str, salt: int = 0, epoch: int | None = None) -> torch.Generator:
        """Patch-subset generator: seeded by (seed, epoch, case) in training, by (seed, case) in evaluation."""
        key = (
            f"{self.seed}:{salt}:{case_id}"
            if not self.train
            else f"{self.seed}:{salt}:{case_id}:e{epoch or 0}"
        )
        return torch.Generator().manual_seed(zlib.crc32(key.encode()))

    def _cap(self, scale: str | None) -> int | None:
        if self.train:
            return self.max_patches_per_scale.get(scale, self.max_patches) if scale else self.max_patches
        return self.eval_max_patches

    def _endpoints(self, i: int, row: pd.Series) -> tuple[dict[str, float], dict[str, bool], dict[str, int]]:
        """(time, event, time bin) per endpoint of patient i: NaN / False / -1 when the patient lacks it."""
        names = list(self.endpoint_time_bins)
        return (
            {n: float(row[f"time:{n}"]) for n in names},
            {n: bool(row[f"event:{n}"]) for n in names},
            {n: int(self.endpoint_time_bins[n][i]) for n in names},
        )

    def __getitem__(self, key: int | tuple[int, int]) -> PatientItem:
        """`dataset[i]` or `dataset[(i, epoch)]` (from `EpochSampler`; the epoch seeds training patch subsets)."""
        i, epoch = key if isinstance(key, tuple) else (key, 0)
        row = self.rows.iloc[i]
        case = self.case_ids[i]
        item = PatientItem(
            case_id=case,
            index=self.index_of[case],
            time=float(row["time"]),
            event=bool(row["event"]),
            time_bin=int(self.time_bins[i]),
            labels={n: self.sources.labels[n][case] for n in self.label_cols},
            slide_labels={
                n: [m.get(s, -1) for s in row["slide_ids"]] for n, m in self.sources.slide_labels.items()
            },
            n_slides=len(row["slide_ids"]),
        )
        item.endpoint_time, item.endpoint_event, item.endpoint_time_bin = self._endpoints(i, row)
        src = self.sources
        for m in src.marked:
            item.present[m] = case not in src.absent.get(m, ())
        if src.wsi is not None and not len(row["slide_ids"]):  # data.missing=keep: no slide, one zero patch
            if src.wsi_placeholder is None:
                raise ValueError(f"case {case}: no slides and no WSI placeholder (data.missing=keep sets it)")
            dim, with_coords = src.wsi_placeholder
            item.wsi = torch.zeros(1, dim)
            item.slide_index = torch.zeros(1, dtype=torch.long)
            item.coords = torch.zeros(1, 2) if with_coords else None
            item.patch_index = torch.full((1,), -1, dtype=torch.long)
        elif src.wsi is not None and src.wsi.resident is not None:  # bags on the device: row numbers only
            res = src.wsi.resident
            start, rows = _resident_rows(
                res, row["slide_ids"], self._cap(None), self._generator(case, epoch=epoch)
            )
            item.resident["wsi"] = (res.key, start, rows)
            item.slide_index, item.patch_index = res.slide_index[start + rows], rows
            item.coords = None if res.coords is None else res.coords[start + rows]
        elif src.wsi is not None:
            raw = src.wsi.load_raw(row["slide_ids"])
            n = raw.features.shape[0]
            keep = _subset(n, self._cap(None), self._generator(case, epoch=epoch))
            bag = raw.take(keep)  # subsample first, then fp32: only the kept rows are copied
            item.wsi, item.slide_index, item.coords = bag.features, bag.slide_index, bag.coords
            item.patch_index = torch.arange(n) if keep is None else keep
        if src.scales is not None:
            item.scales = {}
            for j, (name, store) in enumerate(src.scales.items()):
                generator = self._generator(case, salt=j + 1, epoch=epoch)
                if store.resident is not None:
                    start, rows = _resident_rows(store.resident, row["slide_ids"], self._cap(name), generator)
                    item.resident[f"scale:{name}"] = (store.resident.key, start, rows)
                    continue
                raw = store.load_raw(row["slide_ids"])
                keep = _subset(raw.features.shape[0], self._cap(name), generator)
                item.scales[name] = raw.take(keep).features
            if not item.scales:
                item.scales = None  # every scale is device-resident: `Batch.to` fills batch.scales
        if src.genomics is not None:
            item.genomics = [torch.from_numpy(g) for g in src.genomics[case]]
        if src.clinical is not None:
            item.clinical = torch.from_numpy(src.clinical[case])
        if src.imaging is not None:
            item.extra.update(src.imaging.item(case))
        return item
