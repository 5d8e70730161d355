"""WSI patch-feature bags (CLAM/TRIDENT layout) and per-patient bag stores.

Layout: `<features_dir>/<encoder>/{h5_files,pt_files}/<slide_id>.{h5,pt}`; multi-scale:
`<features_dir>/<encoder>/<scale>/{h5_files,pt_files}/...`. `.pt` files are loaded with `weights_only=True`
(nothing is unpickled); `.h5` files hold `features` [N, D] and optionally `coords` [N, 2].

A patient's slides are concatenated into ONE bag: features [N, D], slide_index [N] (which of its slides),
coords [N, 2] (or None), patch_index [N] (row in the concatenated bag).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from survlab.data.cohort import Cohort, _first_ids

log = logging.getLogger(__name__)

FORMAT_DIRS = {"h5": "h5_files", "pt": "pt_files"}
_FIX = "extract features with CLAM/TRIDENT or fix slide_id"


def read_bag(path: str | Path, feature_dim: int | None = None) -> tuple[Tensor, Tensor | None]:
    """Read one slide bag -> (features [N, D] float32, coords [N, 2] or None). Errors name the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature file not found: {path}; {_FIX}")
    coords = None
    try:
        if path.suffix == ".h5":
            import h5py

            with h5py.File(path, "r") as f:
                if "features" not in f:
                    raise ValueError(
                        f"{path}: no 'features' dataset (has {list(f.keys())}); re-extract features"
                    )
                feats = torch.from_numpy(np.asarray(f["features"][()]))
                if "coords" in f:
                    coords = torch.from_numpy(np.asarray(f["coords"][()]))
        else:
            obj = torch.load(path, weights_only=True, map_location="cpu")
            if isinstance(obj, dict):
                if "features" not in obj:
                    raise ValueError(
                        f"{path}: dict without 'features' key (has {list(obj)}); re-extract features"
                    )
                feats, coords = obj["features"], obj.get("coords")
            else:
                feats = obj
            if not isinstance(feats, Tensor):
                raise ValueError(
                    f"{path}: expected a tensor, got {type(feats).__name__}; re-extract features"
                )
    except (ValueError, FileNotFoundError):
        raise
    except Exception as err:  # noqa: BLE001 - corrupt / truncated / pickled-object files
        raise ValueError(
            f"{path}: corrupt or unreadable feature file ({type(err).__name__}: {str(err)[:120]}); "
            f"delete it and re-extract features with CLAM/TRIDENT"
        ) from err
    if feats.ndim == 3 and feats.shape[0] == 1:  # some extractors save [1, N, D]
        feats = feats[0]
    if feats.ndim != 2:
        raise ValueError(
            f"{path}: features must be 2-D [N, D], got shape {tuple(feats.shape)}; re-extract features"
        )
    if feats.shape[0] == 0:
        raise ValueError(
            f"{path}: empty bag (0 patches); re-extract features or remove the slide from the CSV"
        )
    if feature_dim is not None and feats.shape[1] != feature_dim:
        raise ValueError(
            f"{path}: feature dim {feats.shape[1]} != configured feature_dim {feature_dim}; set wsi.feature_dim "
            f"or use the matching encoder"
        )
    feats = feats.float()
    if not torch.isfinite(feats).all():
        n_bad = int((~torch.isfinite(feats)).any(dim=1).sum())
        raise ValueError(
            f"{path}: {n_bad} patch(es) with NaN/Inf features; re-extract features for this slide"
        )
    if coords is not None:
        coords = torch.as_tensor(coords)
        if coords.ndim != 2 or coords.shape[0] != feats.shape[0]:
            log.warning(
                "%s: coords shape %s does not match features; ignoring coords", path, tuple(coords.shape)
            )
            coords = None
    return feats, coords


@dataclass
class PatientBag:
    """All slides of one patient concatenated: features [N, D], slide_index [N], coords [N, 2] | None."""

    features: Tensor
    slide_index: Tensor
    coords: Tensor | None

    @property
    def nbytes(self) -> int:
        n = self.features.element_size() * self.features.nelement() + 8 * self.slide_index.nelement()
        return n + (self.coords.element_size() * self.coords.nelement() if self.coords is not None else 0)

    def take(self, index: Tensor | None = None) -> PatientBag:
        """fp32 bag of the rows `index` (all rows if None). Index BEFORE converting, so a training step copies
        only its `max_patches` rows of a cached fp16 bag, not the whole bag."""
        if index is None:
            return PatientBag(self.features.float(), self.slide_index, self.coords)
        coords = None if self.coords is None else self.coords[index]
        return PatientBag(self.features[index].float(), self.slide_index[index], coords)


@dataclass
class DropReport:
    """What was dropped while checking feature availability, and why."""

    dropped_slides: dict[str, str] = field(default_factory=dict)  # slide_id -> reason
    dropped_patients: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if not self.dropped_slides and not self.dropped_patients:
            return "no slides dropped"
        example = next(iter(self.dropped_slides.items()), ("-", "-"))
        return (
            f"dropped {len(self.dropped_slides)} slide(s) (e.g. {example[0]}: {example[1]}) and "
            f"{len(self.dropped_patients)} patient(s) left without slides ({_first_ids(self.dropped_patients)})"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "n_slides_dropped": len(self.dropped_slides),
            "n_patients_dropped": len(self.dropped_patients),
            "slides": dict(self.dropped_slides),
            "patients": list(self.dropped_patients),
        }


class BagStore:
    """Resolve + read slide bags of one encoder (and optionally one scale), with an optional in-RAM patient cache.

    format: "h5" | "pt" | "auto" (prefer h5 when both exist). feature_dim: required D, or None = infer from the first
    bag and enforce it across slides. cache: keep patient bags in RAM (as `cache_dtype`) up to `cache_max_bytes`.
    With DataLoader workers each worker process holds its own cache.
    """

    def __init__(
        self,
        features_dir: str | Path,
        encoder: str | None = None,
        format: str = "auto",
        feature_dim: int | None = None,
        scale: str | None = None,
        cache: bool = False,
        cache_max_bytes: int = 2 * 1024**3,
        cache_dtype: str = "float16",
    ) -> None:
        if format not in ("h5", "pt", "auto"):
            raise ValueError(f"wsi.format must be h5, pt or auto, got {format!r}")
        self.base = Path(features_dir) / (encoder or "") / (scale or "")
        self.format, self.feature_dim, self.scale = format, feature_dim, scale
        self.cache_enabled, self.cache_max_bytes = cache, int(cache_max_bytes)
        self.cache_dtype = getattr(torch, cache_dtype)
        self._cache: OrderedDict[tuple[str, ...], PatientBag] = OrderedDict()
        self._cache_bytes = 0

    @property
    def search_dirs(self) -> list[Path]:
        fmts = ["h5", "pt"] if self.format == "auto" else [self.format]
        return [self.base / FORMAT_DIRS[f] for f in fmts]

    def path_of(self, slide_id: str) -> Path | None:
        """The bag file of `slide_id` or None if absent."""
        for d in self.search_dirs:
            p = d / f"{slide_id}.{'h5' if d.name == 'h5_files' else 'pt'}"
            if p.is_file():
                return p
        return None

    def missing_message(self, slide_id: str) -> str:
        dirs = ", ".join(str(d) for d in self.search_dirs)
        return f"no feature file for slide {slide_id} (searched {dirs}); {_FIX}"

    def read_slide(self, slide_id: str) -> tuple[Tensor, Tensor | None]:
        path = self.path_of(slide_id)
        if path is None:
            raise FileNotFoundError(self.missing_message(slide_id))
        feats, coords = read_bag(path, self.feature_dim)
        if self.feature_dim is None:
            self.feature_dim = int(feats.shape[1])
        return feats, coords

    def load_patient(self, slide_ids: Sequence[str]) -> PatientBag:
        """Concatenate a patient's slides -> PatientBag (fp32 out; cached copy in `cache_dtype`)."""
        return self.load_raw(slide_ids).take()

    def load_raw(self, slide_ids: Sequence[str]) -> PatientBag:
        """Like `load_patient`, but features stay in the cache dtype when caching is on (call `.take(index)`)."""
        key = tuple(slide_ids)
        if key in self._cache:
            return self._cache[key]
        if not slide_ids:
            raise ValueError("patient has no slides; cannot build a WSI bag")
        feats, coords, sidx = [], [], []
        for i, s in enumerate(slide_ids):
            f, c = self.read_slide(s)
            feats.append(f)
            coords.append(c)
            sidx.append(torch.full((f.shape[0],), i, dtype=torch.long))
        bag = PatientBag(
            torch.cat(feats),
            torch.cat(sidx),
            torch.cat([c.float() for c in coords]) if all(c is not None for c in coords) else None,
        )
        if (
            self.cache_enabled
        ):  # round on every read so epoch 1 (file) and later epochs (cache) see equal values
            cached = PatientBag(bag.features.to(self.cache_dtype), bag.slide_index, bag.coords)
            if self._cache_bytes + cached.nbytes <= self.cache_max_bytes:
                self._cache[key] = cached
                self._cache_bytes += cached.nbytes
            bag = cached
        return bag


def check_availability(
    cohort: Cohort, stores: Sequence[BagStore], allow_missing: bool = False, partial_ok: bool = False
) -> tuple[Cohort, DropReport]:
    """Keep only slides with a file in EVERY store; return the filtered cohort + report.

    A slide missing in all stores is an error (naming the slide and dirs) unless allow_missing or `partial_ok`
    (multi-scale: slides missing some scale are always dropped with a report). Patients left with no slide are
    dropped only if allow_missing, else error.
    """
    report = DropReport()
    kept: dict[str, list[str]] = {}
    for case, slides in zip(cohort.table["case_id"], cohort.table["slide_ids"], strict=False):
        kept[case] = []
        for s in slides:
            absent = [st for st in stores if st.path_of(s) is None]
            if not absent:
                kept[case].append(s)
                continue
            if not (allow_missing or partial_ok):
                raise FileNotFoundError(f"{cohort.path}: case {case}: " + absent[0].missing_message(s))
            names = [st.scale or "features" for st in absent]
            report.dropped_slides[s] = f"missing {', '.join(names)}"
    empty = [c for c, ss in kept.items() if not ss]
    if empty:
        if not allow_missing:
            first = empty[0]
            raise ValueError(
                f"{cohort.path}: {len(empty)} patient(s) have no slide with features at all scales "
                f"({_first_ids(empty)}; e.g. {first}: slides {cohort.rows([first])['slide_ids'].iloc[0]}); "
                f"{_FIX}, or set allow_missing=true to drop them"
            )
        report.dropped_patients = empty
    if report.dropped_slides or report.dropped_patients:
        log.warning("WSI availability: %s", report.summary())
    return cohort.with_slides(kept).drop(report.dropped_patients), report
