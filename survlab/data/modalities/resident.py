"""Device-resident WSI bags (`data.wsi.cache: device`): a whole store in one flat tensor, gathered on the device.

The usual path copies every batch's bags from host memory to the accelerator: `Dataset` -> fp32 rows -> padded
[B, N, D] batch -> `.to(device)`. With a resident store the cohort's bags are copied to the device ONCE (fp16, the
cache dtype) and a batch carries only row numbers; `Batch.to(device)` then gathers and pads the features on the
device itself (`ResidentBags.gather`), so no feature bytes cross the host-device link after the first step.

Layout: `features` [T, D] (cache dtype) holds every patient's concatenated slides back to back; `spans` maps a
patient's slide tuple to (start, n) in it. Per-patch metadata (`slide_index` [T], `coords` [T, 2]) stays on the host:
the dataset hands it out as before (it is small and models read it from the padded batch).

Each process (a DDP rank, or a CPU run, where the "device" is the host and nothing is copied) gathers from its own
device copy; once the copy is on an accelerator the host tensor is released (copied back if a host pass needs it).
Processes find a store by its `key` (`lookup`); DataLoader workers receive the store without its feature tensor
(pickling drops it), since only the main process gathers.

    >>> import torch
    >>> bags = ResidentBags.from_bags({("s1",): torch.ones(3, 2), ("s2",): torch.zeros(1, 2)}, dtype=torch.float16)
    >>> bags.span(["s2"]), bags.features.shape
    ((3, 1), torch.Size([4, 2]))
    >>> x = bags.gather(torch.tensor([0, 3]), torch.tensor([[0, 2], [0, -1]]), torch.device("cpu"))
    >>> x.dtype, x.shape, x[1].tolist()
    (torch.float32, torch.Size([2, 2, 2]), [[0.0, 0.0], [0.0, 0.0]])
"""

from __future__ import annotations

import gc
import uuid
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

_REGISTRY: weakref.WeakValueDictionary[str, ResidentBags] = weakref.WeakValueDictionary()


def lookup(key: str) -> ResidentBags:
    """The resident store `key` of this process (the one that built it, or a forked child of it)."""
    try:
        return _REGISTRY[key]
    except KeyError:
        raise RuntimeError(
            f"resident WSI store {key} is not in this process: data.wsi.cache=device gathers bags in the process "
            "that set up the data module; move batches to the device there (Batch.to), not in a spawned worker"
        ) from None


class ResidentBags:
    """Every patient bag of one store as one flat tensor: features [T, D] (cache dtype), slide_index [T] (long),
    coords [T, 2] (float) or None; spans: slide tuple -> (start, n)."""

    def __init__(
        self,
        features: Tensor,
        slide_index: Tensor,
        coords: Tensor | None,
        spans: Mapping[tuple[str, ...], tuple[int, int]],
        source: str = "",
    ) -> None:
        self.features: Tensor | None = features
        self.slide_index, self.coords = slide_index, coords
        self.spans = dict(spans)
        self.source = source  # what the bags were read from (for messages)
        self.dim, self.dtype = int(features.shape[1]), features.dtype
        self.nbytes = features.element_size() * features.nelement()
        self.key = uuid.uuid4().hex
        self.release_host = (
            True  # drop the host features once a device copy exists (host RAM back for the run)
        )
        self._on: dict[torch.device, Tensor] = {}
        _REGISTRY[self.key] = self

    def __getstate__(self) -> dict[str, Any]:
        """Pickled for DataLoader workers: spans and metadata only (workers hand out row numbers, never features)."""
        state = dict(self.__dict__)
        state["features"], state["_on"] = None, {}
        return state

    @classmethod
    def from_bags(
        cls, bags: Mapping[tuple[str, ...], Tensor], dtype: torch.dtype = torch.float16
    ) -> ResidentBags:
        """From in-memory bags (slide tuple -> features [n, D]); slide_index 0 and no coords (tests, examples)."""
        sizes = {k: int(v.shape[0]) for k, v in bags.items()}
        out = cls._empty(sizes, int(next(iter(bags.values())).shape[1]), dtype, coords=False)
        for key, feats in bags.items():
            start, n = out.spans[key]
            out._features()[start : start + n] = feats.to(dtype)
        return out

    @classmethod
    def _empty(
        cls,
        sizes: Mapping[tuple[str, ...], int],
        dim: int,
        dtype: torch.dtype,
        coords: bool,
        source: str = "",
    ) -> ResidentBags:
        spans, start = {}, 0
        for key in sorted(sizes):  # content order, not table order
            spans[key] = (start, sizes[key])
            start += sizes[key]
        return cls(
            torch.empty((start, dim), dtype=dtype),
            torch.zeros(start, dtype=torch.long),
            torch.zeros((start, 2), dtype=torch.float32) if coords else None,
            spans,
            source,
        )

    @classmethod
    def build(
        cls, store: Any, patients: Sequence[Sequence[str]], slide_patches: Mapping[str, int]
    ) -> ResidentBags:
        """Read every patient's bag of a `BagStore` once (values checked as the store reads them) into one flat
        tensor of the store's cache dtype. slide_patches: patches per slide (from the header checks)."""
        sizes = {tuple(p): sum(int(slide_patches[s]) for s in p) for p in patients if len(p)}
        first = store.load_raw(next(iter(sorted(sizes))))
        out = cls._empty(
            sizes, int(first.features.shape[1]), store.cache_dtype, first.coords is not None, str(store.base)
        )
        feats = out._features()
        for key, (start, n) in out.spans.items():
            bag = store.load_raw(key)
            if bag.features.shape[0] != n:
                raise ValueError(
                    f"{out.source}: slides {', '.join(key)} hold {bag.features.shape[0]} patches but their headers "
                    f"said {n}; a feature file changed during setup, run again"
                )
            feats[start : start + n] = bag.features
            out.slide_index[start : start + n] = bag.slide_index
            if out.coords is not None:
                if bag.coords is None:
                    raise ValueError(
                        f"{out.source}: slides {', '.join(key)} have no coords while other slides do; "
                        "re-extract them with coords"
                    )
                out.coords[start : start + n] = bag.coords
        return out

    def _features(self) -> Tensor:
        if self.features is None and self._on:  # the host copy was released after the upload: copy back once
            self.features = next(iter(self._on.values())).cpu()
        if self.features is None:
            raise RuntimeError(
                "this copy of the resident WSI store has no features: it was pickled into another process "
                "(a DataLoader worker or ddp_spawn); data.wsi.cache=device needs strategy=ddp, not ddp_spawn"
            )
        return self.features

    def span(self, slide_ids: Sequence[str]) -> tuple[int, int]:
        """(start, n): the patient's rows in the flat tensor."""
        return self.spans[tuple(slide_ids)]

    def on(self, device: torch.device) -> Tensor:
        """The features [T, D] on `device`, copied there on the first call (the host tensor itself on the CPU)."""
        device = torch.device(device)
        if device.type == "cpu":
            return self._features()
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if device not in self._on:
            gc.collect()  # an earlier job's store (in-process sweeps) may still hold device memory in a cycle
            try:
                self._on[device] = self._features().to(device)
                if (
                    self.release_host
                ):  # workers only need spans and metadata; the device copy is the store now
                    self.features = None
            except torch.OutOfMemoryError:
                raise RuntimeError(
                    f"data.wsi.cache=device: the WSI bags of {self.source} ({self.nbytes / 1e9:.1f} GB, "
                    f"{str(self.dtype).removeprefix('torch.')}) do not fit in the memory of {device}; use "
                    "data.wsi.cache=auto (host RAM) or data.wsi.packed=true data.wsi.cache=false"
                ) from None
        return self._on[device]

    def gather(self, start: Tensor, rows: Tensor, device: torch.device) -> Tensor:
        """Padded fp32 bags [B, N, D] on `device`: patient b's row n is features[start[b] + rows[b, n]]; rows -1 =
        padding (zeros, as `collate` pads). start [B] long, rows [B, N] long (both moved to `device` if needed)."""
        flat = self.on(device)
        start, rows = start.to(flat.device), rows.to(flat.device)
        real = rows >= 0
        index = (start[:, None] + rows.clamp(min=0)).reshape(-1)
        out = flat.index_select(0, index).reshape(*rows.shape, flat.shape[1]).float()
        return out.masked_fill_(~real[..., None], 0.0)
