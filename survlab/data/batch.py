"""Per-patient dataset items and the padded `Batch` every network consumes.

Data flow: `Dataset.__getitem__` → `PatientItem` (one patient, unpadded) → `collate` → `Batch`.
WSI bags are padded to the longest bag in the batch with a boolean mask (True = real patch); each scale of a
multi-scale cohort is padded separately with its own mask. Genomic groups stay a list of [B, g_i] tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor

from survlab.data.modalities.resident import lookup


@dataclass
class PatientItem:
    """One patient. Tensors are unbatched: wsi [N, D], slide_index [N], coords [N, 2], genomics[i] [g_i]."""

    case_id: str
    index: int  # row of the patient in the cohort table (used to de-duplicate DDP-gathered predictions)
    time: float = float("nan")
    event: bool = False
    time_bin: int = -1
    wsi: Tensor | None = None
    slide_index: Tensor | None = None
    coords: Tensor | None = None
    patch_index: Tensor | None = None  # row of each kept patch in the patient's concatenated bag
    scales: dict[str, Tensor] | None = None  # multi-scale bags: scale name -> [N_s, D]
    genomics: list[Tensor] | None = None
    clinical: Tensor | None = None
    labels: dict[str, int] = field(default_factory=dict)  # classification targets (-1 = missing)
    extra: dict[str, Tensor] = field(default_factory=dict)  # task-specific tensors (e.g. CT stacks, PET)
    endpoint_time: dict[str, float] = field(default_factory=dict)  # every endpoint (NaN = patient lacks it)
    endpoint_event: dict[str, bool] = field(default_factory=dict)
    endpoint_time_bin: dict[str, int] = field(default_factory=dict)  # -1 = patient lacks the endpoint
    slide_labels: dict[str, list[int]] = field(
        default_factory=dict
    )  # name -> class of slide j (-1 = missing)
    n_slides: int = 0  # slides of the patient (slide j = slide_index j of its WSI bag)
    # data.wsi.cache=device: target ("wsi" | "scale:<name>") -> (resident store key, start, rows [N]); the features
    # stay on the device and are gathered by `Batch.to` (survlab.data.modalities.resident)
    resident: dict[str, tuple[str, int, Tensor]] = field(default_factory=dict)
    # data.missing=keep: modality -> whether the patient has it (a modality not listed is present). An absent
    # modality's tensors are placeholders: zeros (genomics groups, clinical, tables), one zero patch for a WSI bag
    present: dict[str, bool] = field(default_factory=dict)


@dataclass
class Batch:
    """A padded batch of B patients. Optional fields are None when the cohort lacks the modality.

    Shapes: wsi [B, N, D] (float), wsi_mask [B, N] (bool, True = real), slide_index [B, N] (long, -1 on padding),
    coords [B, N, 2], patch_index [B, N] (long, -1 on padding); scales[s] [B, N_s, D_s] with scale_masks[s] [B, N_s];
    genomics: list of [B, g_i]; clinical [B, C]; time [B] (float64: the table's exact value, which every IPCW
    metric compares with the float64 training times — float32 would move e.g. 12.3 months off a tied training
    censoring), event [B] (bool), time_bin [B] (long): the PRIMARY endpoint (NaN / False / -1 when the cohort has
    no survival); endpoint_time (float64) / endpoint_event / endpoint_time_bin[name] [B]: every endpoint (NaN /
    False / -1 where a patient lacks it); labels[name] [B] (long, -1 = missing); slide_labels[name] [B, S] (long; S = most slides of a patient in the batch; slide j of patient b
    is the slide with slide_index == j; -1 = missing label or padding slot); n_slides [B] (long); index [B] (long).
    """

    case_ids: list[str]
    index: Tensor
    time: Tensor
    event: Tensor
    time_bin: Tensor
    wsi: Tensor | None = None
    wsi_mask: Tensor | None = None
    slide_index: Tensor | None = None
    coords: Tensor | None = None
    patch_index: Tensor | None = None
    scales: dict[str, Tensor] | None = None
    scale_masks: dict[str, Tensor] | None = None
    genomics: list[Tensor] | None = None
    clinical: Tensor | None = None
    labels: dict[str, Tensor] = field(default_factory=dict)
    extra: dict[str, Tensor] = field(default_factory=dict)
    endpoint_time: dict[str, Tensor] = field(default_factory=dict)
    endpoint_event: dict[str, Tensor] = field(default_factory=dict)
    endpoint_time_bin: dict[str, Tensor] = field(default_factory=dict)
    slide_labels: dict[str, Tensor] = field(default_factory=dict)
    n_slides: Tensor | None = None
    # data.wsi.cache=device: target -> [resident store key, start [B], rows [B, N] (-1 = padding)]; `to` gathers
    # the bags of each target on the device and empties this (wsi / scales[name] are None until then)
    resident: dict[str, list[Any]] = field(default_factory=dict)
    # data.missing=keep: modality -> [B] bool (True = the patient has it); a modality not listed is present for
    # every patient. An absent modality's inputs are placeholders (zeros; a WSI bag of one zero patch, real in
    # wsi_mask so pooling stays finite) that a network accepting absence must replace (`Batch.has`)
    present: dict[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.case_ids)

    def has(self, modality: str) -> Tensor:
        """[B] bool: which patients have `modality` (all True unless data.missing=keep marked some absent)."""
        mask = self.present.get(modality)
        if mask is not None:
            return mask
        return torch.ones(len(self.case_ids), dtype=torch.bool, device=self.index.device)

    @property
    def censorship(self) -> Tensor:
        """MCAT convention: 1 = censored (no event), as float [B]."""
        return (~self.event).float()

    def _map(self, fn: Callable[[Tensor], Tensor]) -> Batch:
        """A new Batch with `fn` applied to every tensor (also inside lists / dicts)."""

        def move(value: Any) -> Any:
            if isinstance(value, Tensor):
                return fn(value)
            if isinstance(value, list):
                return [move(v) for v in value]
            if isinstance(value, dict):
                return {k: move(v) for k, v in value.items()}
            return value

        return Batch(**{f.name: move(getattr(self, f.name)) for f in fields(self)})

    def pin_memory(self) -> Batch:
        """Page-locked copy of every tensor; the DataLoader calls this with `pin_memory=True` (without it a Batch
        was never pinned: the loader only pins tensors, mappings, sequences and objects with this method)."""
        return self._map(lambda t: t.pin_memory())

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """Move every tensor (also inside lists/dicts) to `device`; Lightning calls this for device transfer.
        Host -> GPU copies are asynchronous (safe: later kernels on the stream wait for them; from pinned memory
        they overlap). Device-resident bags (`resident`) are gathered on `device` here."""
        target = torch.device(device)
        non_blocking = non_blocking or target.type == "cuda"
        out = self._map(lambda t: t.to(target, non_blocking=non_blocking))
        if out.resident:
            for name, (key, start, rows) in out.resident.items():
                bags = lookup(key).gather(start, rows, target)
                if name == "wsi":
                    out.wsi = bags
                else:
                    out.scales = {**(out.scales or {}), name.removeprefix("scale:"): bags}
            out.resident = {}
        return out


def pad_bags(bags: list[Tensor], pad_value: float = 0.0) -> tuple[Tensor, Tensor]:
    """Pad a list of [N_i, ...] tensors to [B, max N, ...]; returns (padded, mask [B, max N] with True = real)."""
    if any(b.shape[0] == 0 for b in bags):
        raise ValueError("pad_bags got an empty bag; readers must reject empty bags before batching")
    n_max = max(b.shape[0] for b in bags)
    out = bags[0].new_empty(
        (len(bags), n_max, *bags[0].shape[1:])
    )  # each element written once: bag or padding
    mask = torch.zeros(len(bags), n_max, dtype=torch.bool)
    for i, b in enumerate(bags):
        out[i, : b.shape[0]] = b
        out[i, b.shape[0] :] = pad_value
        mask[i, : b.shape[0]] = True
    return out, mask


def collate(items: list[PatientItem]) -> Batch:
    """Stack `PatientItem`s into a `Batch`, padding bags (and every scale) with masks."""
    first = items[0]
    batch = Batch(
        case_ids=[it.case_id for it in items],
        index=torch.tensor([it.index for it in items], dtype=torch.long),
        time=torch.tensor([it.time for it in items], dtype=torch.float64),
        event=torch.tensor([bool(it.event) for it in items], dtype=torch.bool),
        time_bin=torch.tensor([it.time_bin for it in items], dtype=torch.long),
    )
    for name, (key, _, _) in first.resident.items():  # device-resident bags: row numbers only
        rows, mask = pad_bags([it.resident[name][2] for it in items], pad_value=-1)
        start = torch.tensor([it.resident[name][1] for it in items], dtype=torch.long)
        batch.resident[name] = [key, start, rows]
        if name == "wsi":
            batch.wsi_mask = mask
        else:
            batch.scale_masks = {**(batch.scale_masks or {}), name.removeprefix("scale:"): mask}
    if first.wsi is not None or "wsi" in first.resident:
        if first.wsi is not None:
            batch.wsi, batch.wsi_mask = pad_bags([it.wsi for it in items])
        if first.slide_index is not None:
            batch.slide_index, _ = pad_bags([it.slide_index for it in items], pad_value=-1)
        if first.coords is not None:
            batch.coords, _ = pad_bags([it.coords for it in items])
        if first.patch_index is not None:
            batch.patch_index, _ = pad_bags([it.patch_index for it in items], pad_value=-1)
    if first.scales is not None:
        batch.scales, batch.scale_masks = {}, dict(batch.scale_masks or {})
        for name in first.scales:
            batch.scales[name], batch.scale_masks[name] = pad_bags([it.scales[name] for it in items])
    if first.genomics is not None:
        batch.genomics = [torch.stack([it.genomics[g] for it in items]) for g in range(len(first.genomics))]
    if first.clinical is not None:
        batch.clinical = torch.stack([it.clinical for it in items])
    for name in first.labels:
        batch.labels[name] = torch.tensor([it.labels[name] for it in items], dtype=torch.long)
    for name in first.extra:
        batch.extra[name] = torch.stack([it.extra[name] for it in items])
    for name in first.endpoint_time:
        batch.endpoint_time[name] = torch.tensor(
            [it.endpoint_time[name] for it in items], dtype=torch.float64
        )
        batch.endpoint_event[name] = torch.tensor(
            [bool(it.endpoint_event[name]) for it in items], dtype=torch.bool
        )
        batch.endpoint_time_bin[name] = torch.tensor(
            [it.endpoint_time_bin[name] for it in items], dtype=torch.long
        )
    for name in first.present:
        batch.present[name] = torch.tensor([bool(it.present[name]) for it in items], dtype=torch.bool)
    batch.n_slides = torch.tensor([it.n_slides for it in items], dtype=torch.long)
    n_max = max((it.n_slides for it in items), default=0)
    for name in first.slide_labels:
        out = torch.full((len(items), n_max), -1, dtype=torch.long)
        for b, it in enumerate(items):
            out[b, : len(it.slide_labels[name])] = torch.tensor(it.slide_labels[name], dtype=torch.long)
        batch.slide_labels[name] = out
    return batch
