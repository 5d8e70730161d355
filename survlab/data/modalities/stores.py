"""The feature stores a data config's `wsi:` block describes, and how their bags are held in memory.

`build_stores` is the one builder of `BagStore`s: training (CohortDataModule) and `survlab check` (data.audit) call it,
so both read the same folders (the CLAM layout `<features_dir>/<encoder>[/<scale>]/{h5,pt}_files/`, or TRIDENT's job
dir with `wsi.layout: trident`). `prepare_bags` then checks every slide file once and applies the cache policy:
packed file, host RAM cache (`cache: auto | true`) or a device-resident copy (`cache: device`).

Example:
    >>> from survlab.data.options import WsiOptions
    >>> wsi, scales = build_stores(option_dict(WsiOptions, {"encoder": "uni"}, "wsi"), Path("/data/c"), "c", ["wsi"])
    >>> wsi.base, scales
    (PosixPath('/data/c/features/uni'), None)
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from survlab.data.modalities.resident import ResidentBags
from survlab.data.modalities.trident import trident_folder
from survlab.data.modalities.wsi import BagStore
from survlab.data.options import TridentOptions, option_dict, under
from survlab.utils.malloc import release_free_memory
from survlab.utils.memory import available_bytes

log = logging.getLogger(__name__)

# cache: auto fills the RAM cache only if the files take at most this share of the memory the process may use;
# cache: device refuses when its host staging copy needs more than this share
CACHE_MEMORY_SHARE, DEVICE_STAGING_SHARE = 0.5, 0.8
CACHE_CHOICES = (True, False, "true", "false", "auto", "device")


def memory_left() -> int | None:
    """Bytes this process may still fill (the machine's available memory, or the job's cgroup headroom if lower),
    after collecting an earlier in-process job's data module (a reference cycle may still hold its cache) and
    returning the heap blocks malloc reuse kept from it. None where unknown."""
    gc.collect()
    release_free_memory()
    return available_bytes()


def check_cache_option(wsi: dict[str, Any]) -> None:
    """`wsi.cache` is one of CACHE_CHOICES (one-line error otherwise)."""
    if wsi["cache"] not in CACHE_CHOICES:
        raise ValueError(
            f"data.wsi.cache must be auto (host RAM when the cohort fits cache_max_gb), true, false or device "
            f"(every bag held on the training device), got {wsi['cache']!r}"
        )


def build_stores(
    wsi: dict[str, Any] | None, root: Path, name: str, modalities: Iterable[str]
) -> tuple[BagStore | None, dict[str, BagStore] | None]:
    """(single-scale store or None, scale -> store or None) of the `wsi:` options (WsiOptions keys) for the
    `modalities` read (wsi and/or scales). Stores start with the cache off (`prepare_bags` decides)."""
    if wsi is None:
        return None, None
    modalities = set(modalities)
    common: dict[str, Any] = dict(
        encoder=wsi["encoder"],
        format=wsi["format"],
        cache=False,
        cache_dtype=wsi["cache_dtype"],
        cache_max_bytes=int(float(wsi["cache_max_gb"]) * 1024**3),
    )
    dim = wsi["feature_dim"]
    if wsi["layout"] != "clam":
        return _trident_store(wsi, root, name, modalities, common, dim), None
    base = under(root, wsi["features_dir"])
    single = (
        BagStore(base, feature_dim=dim if not isinstance(dim, dict) else None, **common)
        if "wsi" in modalities
        else None
    )
    scales = None
    if "scales" in modalities:
        per = dim if isinstance(dim, dict) else {s: dim for s in wsi["scales"]}
        scales = {s: BagStore(base, feature_dim=per.get(s), scale=s, **common) for s in wsi["scales"]}
    return single, scales


def _trident_store(
    wsi: dict[str, Any], root: Path, name: str, modalities: set[str], common: dict[str, Any], dim: Any
) -> BagStore | None:
    """The BagStore of `wsi.layout: trident` (TRIDENT's features_<encoder>/ folder, resolved with checks)."""
    if wsi["layout"] != "trident":
        raise ValueError(f"data={name}: wsi.layout must be clam or trident, got {wsi['layout']!r}")
    if wsi["scales"] or "scales" in modalities:
        raise ValueError(f"data={name}: wsi.layout=trident reads one patching; unset data.wsi.scales")
    if "wsi" not in modalities:
        return None
    spec = option_dict(TridentOptions, wsi["trident"] or {}, "data.wsi.trident")
    folder, store_name = trident_folder(spec, root)
    fmt = "pt" if common["format"] == "pt" else "h5"
    return BagStore(
        folder, feature_dim=dim, folder=folder, **{**common, "encoder": store_name, "format": fmt}
    )


def packed_dir(wsi: dict[str, Any], root: Path, name: str, generated: bool, store: Any) -> Path:
    """Folder of a store's packed file: wsi.packed_dir/<encoder>/<scale | single> (never inside a user's data;
    a cohort survlab `generated` may default to `<root>-packed` beside it)."""
    base = wsi["packed_dir"]
    if base is None:
        if not generated:
            raise ValueError(
                f"data={name}: wsi.packed=true needs wsi.packed_dir (a folder survlab may write, outside "
                f"your data), e.g. data.wsi.packed_dir=/scratch/survlab/packed/{name}"
            )
        base = root.with_name(root.name + "-packed")  # beside, so the cohort folder stays as written
    # a single-scale store in its own subfolder: `<encoder>/` itself would contain the multi-scale stores
    # `<encoder>/<scale>/` of the same encoder (a rebuild of one would replace the other)
    return Path(os.path.expanduser(str(base))) / (store.encoder or "features") / (store.scale or "single")


@dataclass
class BagSizes:
    """Patches per slide: of the first store (`slide_patches`, length bucketing) and of every store
    (`store_patches`: "wsi" or the scale name -> slide -> N)."""

    slide_patches: dict[str, int]
    store_patches: dict[str, dict[str, int]]


def prepare_bags(
    stores: list[BagStore],
    patients: Sequence[Sequence[str]],
    wsi: dict[str, Any],
    root: Path,
    name: str,
    generated: bool,
) -> BagSizes:
    """Every slide file of every patient (all splits) before training: headers always (shape, dtype, one dim,
    coords, h5/pt twins agree), values (NaN/Inf) too when the bags fit the RAM cache, which is filled here;
    with `packed`, every store switched to its packed file (built once); with `cache: device`, a resident copy."""
    start = time.perf_counter()
    slides = [s for ss in patients for s in ss]
    headers: list[dict[str, Any]] = []
    if wsi["packed"]:
        sizes: list[dict[str, int]] = []
        for st in stores:
            folder = packed_dir(wsi, root, name, generated, st)
            if not st.reuse_packed(folder, slides, wsi["packed_dtype"]):
                st.check_headers(slides)
                st.use_packed(folder, slides, wsi["packed_dtype"], cohort=name)
            sizes.append({s: int(st.n_patches(s) or 0) for s in slides})  # packed: every slide has its count
        checked = f"{len(slides)} slide(s) x {len(stores)} store(s): packed store(s) ready"
    else:
        headers = [st.check_headers(slides) for st in stores]
        sizes = [{s: h.n_patches for s, h in hs.items()} for hs in headers]
        checked = f"{len(slides)} slide(s) x {len(stores)} store(s): headers"
    if wsi["cache"] == "device":
        _check_staging_memory(stores, sizes, wsi, name)
        for st, per_slide in zip(stores, sizes, strict=True):
            st.cache_enabled = False
            st.resident = ResidentBags.build(st, patients, per_slide)
        total = sum(st.resident.nbytes for st in stores if st.resident is not None)
        checked += " + values (device-resident store built)"
        log.info(
            "WSI bags resident: %.1f MB (%s), copied to the training device on first use",
            total / 1e6,
            wsi["cache_dtype"],
        )
    elif wsi["cache"] in (True, "true", "auto"):
        checked += _fill_cache(stores, patients, wsi, headers)
    log.info("checked %s in %.2fs", checked, time.perf_counter() - start)
    return BagSizes(sizes[0], {st.scale or "wsi": n for st, n in zip(stores, sizes, strict=True)})


def _fill_cache(
    stores: list[BagStore],
    patients: Sequence[Sequence[str]],
    wsi: dict[str, Any],
    headers: list[dict[str, Any]],
) -> str:
    """`cache: auto | true`: fill the host RAM cache when the files fit cache_max_gb and the memory left (auto),
    or always (true). Values are rounded to the cache dtype either way. -> what was checked."""
    total = (
        sum(st.packed.nbytes for st in stores if st.packed is not None)
        if wsi["packed"]
        else sum(h.path.stat().st_size for hs in headers for h in hs.values())
    )
    cap = stores[0].cache_max_bytes
    forced = wsi["cache"] is True or wsi["cache"] == "true"
    free = memory_left()
    fits = free is None or total <= CACHE_MEMORY_SHARE * free
    enable = forced or (total <= cap and fits)
    for st in stores:  # auto: the same (cache-dtype) values whether or not the cache could be filled
        st.round_values = True
    if not fits:
        (log.warning if forced else log.info)(
            "WSI cache %s: the feature files (%.1f GB) exceed %d%% of the memory this process may still "
            "use (%.1f GB: MemAvailable or the job's cgroup limit)%s",
            "on as configured (cache=true), may be killed for memory" if forced else "off",
            total / 1e9,
            round(100 * CACHE_MEMORY_SHARE),
            (free or 0) / 1e9,
            "" if forced else "; bags are read from disk each step (data.wsi.packed=true reads fastest)",
        )
    for st in stores:
        st.cache_enabled = enable
        st.fill_cache(patients)
    log.info(
        "WSI cache %s (%.1f MB of feature files, cap %.1f MB)",
        "on" if enable else "off",
        total / 1e6,
        cap / 1e6,
    )
    return " + values (RAM cache filled)" if enable else " (values on first read: cache off)"


def _check_staging_memory(
    stores: list[BagStore], sizes: list[dict[str, int]], wsi: dict[str, Any], name: str
) -> None:
    """cache=device reads every bag into host memory once before the copy to the device: refuse (one line)
    when that staging copy would not fit the memory this process may still use."""
    need = 0
    for st, per_slide in zip(stores, sizes, strict=True):
        dim = st.feature_dim or (st.packed.dim if st.packed is not None else 0)
        need += sum(per_slide.values()) * int(dim) * torch.empty((), dtype=st.cache_dtype).element_size()
    free = memory_left()
    if free is not None and need > DEVICE_STAGING_SHARE * free:
        raise ValueError(
            f"data={name}: data.wsi.cache=device stages the bags ({need / 1e9:.1f} GB, "
            f"{wsi['cache_dtype']}) in host memory before copying them to the device, but this process "
            f"may use {free / 1e9:.1f} GB; use data.wsi.cache=auto, or data.wsi.packed=true data.wsi.cache=false"
        )
