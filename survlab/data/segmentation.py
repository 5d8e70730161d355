"""CT slices with lung and lesion masks for the MM-DLS segmentor: read, split by patient, batch.

Sources (`source`):
- ``nifti``: the axial slices of ``<root>/<volumes_dir>/<case_id>/{ct,lung_mask,lesion_mask}.nii.gz`` (the layout of
  survlab.data.modalities.imaging), CT windowed to [0, 1] and quantised like a PNG export;
- ``png``: ``<root>/<slices_dir>/<case_id>/{image,lung,lesion}/<name>.png`` with the same file names in the three
  folders (masks: any non-zero pixel is foreground).

Slices are resized to ``image_size`` (MONAI Resize: area for the image, nearest for masks); ``slices: lung`` keeps
the slices holding lung (``all``: every slice; what a segmentor for survlab cut needs, since the cut segments
whole volumes: survlab.runner.imaging_cut refuses one trained with ``lung``). All slices of a patient stay in one part. Two ways to split patients:

- ``outcome_splits`` (the cohort's outcome data config, e.g. ``data=synthetic_petct`` under ``data.outcome_splits``):
  fold k's train / val / test patients are EXACTLY those of the outcome cohort's persisted split files (the files
  model=mmdls uses, written there if absent), so a segmentor of fold k never sees MM-DLS's fold-k test patients and
  its masks for them are out-of-sample (the leak-free segmentor -> imaging_cut -> MM-DLS pipeline). Split patients
  without a volume are left out (counted in ``describe()``); a volume without a row in the split is an error.
- otherwise ``splits``: ``splits.folds`` folds by case_id (sorted, then a seeded permutation: the assignment depends
  on the set of patients, not on listing order), an inner validation part (``val_fraction``) from the training part.
  Such a segmentor's folds are NOT an outcome model's folds: do not cut stacks for an outcome model with it.
The prepared slices of a cohort are held in RAM (uint8).

A batch is a dict: image float [B, 1, H, W] in [0, 1], lung / lesion float [B, 1, H, W] in {0, 1}, case [B] (long,
position of the patient in `case_ids`), slice [B] (long, axial index / file position).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from survlab.data.cohort.checks import DataFileError
from survlab.data.dims import ModalityDims
from survlab.data.modalities.imaging_slices import check_slice_numbers, list_slices, read_png_stack
from survlab.data.modalities.imaging_volumes import read_masked_volume, window_to_uint8

log = logging.getLogger(__name__)

SPLIT_DEFAULTS = {"folds": 5, "val_fraction": 0.15, "seed": 0}


def resize_slices(
    image: np.ndarray, lung: np.ndarray, lesion: np.ndarray, size: int
) -> tuple[np.ndarray, ...]:
    """uint8 image [N, H, W] and bool masks [N, H, W] -> the same at [N, size, size] (area / nearest)."""
    if image.shape[-2:] == (size, size):
        return image, lung, lesion
    from monai.transforms import Resize

    img = np.asarray(Resize((size, size), mode="area")(image.astype(np.float32)))
    masks = [
        np.asarray(Resize((size, size), mode="nearest")(m.astype(np.float32))) > 0.5 for m in (lung, lesion)
    ]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), masks[0], masks[1]


def patient_split(
    case_ids: Sequence[str], folds: int, fold: int, val_fraction: float, seed: int
) -> dict[str, list[str]]:
    """{train, val, test} case ids: fold `fold` of a seeded k-fold over the sorted ids, val carved from the rest."""
    ids = sorted(set(case_ids))
    if not 0 <= fold < folds or len(ids) < folds:
        raise ValueError(
            f"fold={fold} with {folds} folds over {len(ids)} patients: need 0 <= fold < folds <= patients"
        )
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    test = sorted(order[fold::folds])
    rest = [c for c in order if c not in set(test)]
    n_val = max(1, int(round(val_fraction * len(rest))))
    return {"train": sorted(rest[n_val:]), "val": sorted(rest[:n_val]), "test": test}


def _plain(node: Any) -> Any:
    """A Hydra DictConfig (resolved) or None / dict -> plain dict (or None)."""
    if node is None:
        return None
    from omegaconf import DictConfig, OmegaConf

    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)


def outcome_fold_split(
    outcome: dict[str, Any], fold: int, case_ids: Sequence[str]
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Fold `fold` of the outcome cohort's persisted split (`outcome`: its CohortDataModule arguments, `_target_`
    optional) restricted to `case_ids` (the patients with volumes) -> ({train, val, test}, where it came from)."""
    from survlab.data.datamodule import CohortDataModule

    kwargs = {k: v for k, v in outcome.items() if not str(k).startswith("_")}
    kwargs.update(fold=fold, synthetic=None)  # the segmentation module generates a synthetic cohort itself
    split = CohortDataModule(**kwargs).fold_split()
    listed = set(split.train) | set(split.val) | set(split.test) | set(split.calibration)
    unknown = [c for c in case_ids if c not in listed]
    if unknown:
        raise DataFileError(
            f"case {unknown[0]} has a CT volume but no row in the outcome cohort's split {split.path} "
            f"({len(unknown)} such case(s)); segment the outcome cohort's patients only, or fix its clinical CSV"
        )
    have = set(case_ids)
    parts = {
        "train": [c for c in split.train if c in have],
        "val": [c for c in split.val if c in have],
        "test": [c for c in split.test if c in have],
    }
    source = {
        "kind": "outcome_cohort",
        "cohort": str(kwargs.get("name")),
        "split_file": str(split.path),
        "split_hash": split.hash,
        "fold": fold,
        "without_volume": sorted(listed - have),
        "calibration_not_used": len(split.calibration),
    }
    return parts, source


class SliceDataset(Dataset):
    """One item per slice: {image [1, H, W] float, lung / lesion [1, H, W] float, case, slice}."""

    def __init__(self, slices: list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]) -> None:
        self.slices = slices

    def __len__(self) -> int:
        return len(self.slices)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        case, z, img, lung, lesion = self.slices[i]
        return {
            "image": torch.from_numpy(img.astype(np.float32) / 255.0)[None],
            "lung": torch.from_numpy(lung.astype(np.float32))[None],
            "lesion": torch.from_numpy(lesion.astype(np.float32))[None],
            "case": torch.tensor(case),
            "slice": torch.tensor(z),
        }


class SegmentationDataModule(L.LightningDataModule):
    """Slices + lung / lesion masks of one cohort, one patient-level fold (see module docstring)."""

    # the data-module interface of data.missing (CohortDataModule): every patient has every slice it is given
    missing: str = "error"

    @property
    def availability(self) -> dict[str, str]:
        """Always empty: no patient lacks a modality here (CohortDataModule.availability)."""
        return {}

    def __init__(
        self,
        name: str = "synthetic_petct_seg",
        root: str = "data/synthetic/petct",
        source: str = "nifti",
        volumes_dir: str = "volumes",
        slices_dir: str = "slices",
        ct_file: str = "ct.nii.gz",
        lung_file: str = "lung_mask.nii.gz",
        lesion_file: str = "lesion_mask.nii.gz",
        window: Sequence[float] = (-1000.0, 400.0),
        image_size: int = 64,
        slices: str = "lung",
        splits: dict[str, Any] | None = None,
        fold: int = 0,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int = 0,
        synthetic: dict[str, Any] | None = None,
        modalities: Sequence[str] | None = None,
        outcome_splits: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if source not in ("nifti", "png"):
            raise ValueError(f"segmentation data source={source!r}; allowed: ['nifti', 'png']")
        if slices not in ("lung", "all"):
            raise ValueError(f"segmentation data slices={slices!r}; allowed: ['lung', 'all']")
        wrong = [m for m in (modalities or ()) if m != "ct_seg"]
        if wrong:
            raise ValueError(
                f"model needs {'+'.join(wrong)} but data={name} provides ct_seg (CT slices + lung / lesion "
                f"masks) only; use model=mmdls_seg, or a PET/CT cohort such as data=synthetic_petct"
            )
        self.name, self.root, self.source = name, Path(os.path.expanduser(str(root))), source
        self.volumes_dir, self.slices_dir = volumes_dir, slices_dir
        self.files = {"ct": ct_file, "lung": lung_file, "lesion": lesion_file}
        self.window, self.image_size, self.slice_rule = [float(w) for w in window], int(image_size), slices
        unknown = sorted(set(splits or {}) - set(SPLIT_DEFAULTS))
        if unknown:
            raise ValueError(
                f"unknown segmentation splits option(s) {unknown}; allowed: {sorted(SPLIT_DEFAULTS)}"
            )
        self.split_cfg = {**SPLIT_DEFAULTS, **(splits or {})}
        self.fold, self.seed = int(fold), int(seed)
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size or batch_size)
        self.num_workers, self.pin_memory = int(num_workers), bool(pin_memory)
        self.synthetic = dict(synthetic) if synthetic is not None else None
        self.outcome_splits = _plain(outcome_splits)
        if self.outcome_splits is not None and splits:
            raise ValueError(
                f"data={name}: both splits and outcome_splits are set; outcome_splits takes the outcome cohort's "
                f"folds (set their number under outcome_splits.splits), so set splits=null, or outcome_splits=null "
                f"for the segmentation data's own split"
            )
        self._ready = False

    # ------------------------------------------------------------------ files
    def prepare_data(self) -> None:
        if self.synthetic is not None:
            from survlab.data.sources.synthetic_petct import PetCtSpec, generate_petct_cohort

            spec = {k: v for k, v in self.synthetic.items() if k != "kind"}
            generate_petct_cohort(self.root, PetCtSpec(**spec))
        base = self.root / (self.volumes_dir if self.source == "nifti" else self.slices_dir)
        if not base.is_dir():
            raise FileNotFoundError(
                f"data={self.name}: no {self.source} segmentation data at {base}; expected "
                f"<case_id>/ folders (see README 'PET/CT cohorts')"
            )

    def case_ids(self) -> list[str]:
        base = self.root / (self.volumes_dir if self.source == "nifti" else self.slices_dir)
        return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))

    def read_case(self, case: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """-> (image uint8 [N, H, W], lung bool, lesion bool, slice index [N]) at the native size."""
        if self.source == "nifti":
            base = self.root / self.volumes_dir / case
            paths = {k: base / f for k, f in self.files.items()}
            missing = [str(p) for p in paths.values() if not p.is_file()]
            if missing:
                raise DataFileError(
                    f"case {case}: missing {missing[0]}; every case needs the CT and both masks"
                )
            # masks checked against the CT: shape, affine (after reorientation to RAS), binary values
            ct, (lung, lesion) = read_masked_volume(paths["ct"], [paths["lung"], paths["lesion"]])
            move = lambda v: np.moveaxis(v, -1, 0)  # noqa: E731 - [X, Y, Z] -> [Z, X, Y]
            image, lung, lesion = move(window_to_uint8(ct, self.window)), move(lung > 0), move(lesion > 0)
            index = np.arange(image.shape[0])
        else:
            base = self.root / self.slices_dir / case
            names = [p.name for p in list_slices(base / "image")]
            for kind in ("lung", "lesion"):
                have = {p.name for p in list_slices(base / kind)}
                if set(names) != have:
                    odd = sorted(set(names) ^ have)[0] if set(names) ^ have else "?"
                    raise DataFileError(
                        f"{base / kind}: slice {odd} has no partner in image/ and {kind}/; give every "
                        f"slice an image and both masks with the same file name"
                    )
            if not names:
                raise DataFileError(f"{base / 'image'}: no PNG slices; add them or remove the case folder")
            check_slice_numbers([base / "image" / n for n in names], base / "image")
            image = read_png_stack([base / "image" / n for n in names])
            lung, lesion = (read_png_stack([base / k / n for n in names]) > 0 for k in ("lung", "lesion"))
            index = np.arange(len(names))
        keep = lung.any(axis=(1, 2)) if self.slice_rule == "lung" else np.ones(len(image), dtype=bool)
        return image[keep], lung[keep], lesion[keep], index[keep]

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        self.prepare_data()
        self.all_case_ids = self.case_ids()
        self.split, self.split_source = self.split_patients()
        self.case_index = {case: i for i, case in enumerate(self.all_case_ids)}
        self.datasets: dict[str, SliceDataset] = {}
        for part, ids in self.split.items():
            items = []
            for case in ids:
                image, lung, lesion, index = self.read_case(case)
                image, lung, lesion = resize_slices(image, lung, lesion, self.image_size)
                items += [
                    (self.case_index[case], int(z), image[j], lung[j], lesion[j]) for j, z in enumerate(index)
                ]
            self.datasets[part] = SliceDataset(items)
        self.dims = ModalityDims(imaging={"image_size": self.image_size})
        self._ready = True
        log.info(
            "segmentation data %s fold %d: slices %s",
            self.name,
            self.fold,
            {p: len(d) for p, d in self.datasets.items()},
        )

    def split_patients(self) -> tuple[dict[str, list[str]], dict[str, Any]]:
        """This fold's {train, val, test} case ids (patients with volumes / slices) and where the split came from
        (the outcome cohort's split file and hash, or this module's own seeded split)."""
        case_ids = self.case_ids()
        if self.outcome_splits is not None:
            return outcome_fold_split(self.outcome_splits, self.fold, case_ids)
        c = self.split_cfg
        split = patient_split(case_ids, int(c["folds"]), self.fold, float(c["val_fraction"]), int(c["seed"]))
        return split, {"kind": "segmentation", **c}

    def describe(self) -> dict[str, Any]:
        return {
            "cohort": self.name,
            "root": str(self.root),
            "source": self.source,
            "image_size": self.image_size,
            "slices": self.slice_rule,
            "fold": self.fold,
            "folds": self.split_cfg["folds"],
            "n_patients": {p: len(ids) for p, ids in self.split.items()},
            "n_slices": {p: len(d) for p, d in self.datasets.items()},
            "split_source": self.split_source,
            "split": self.split,
        }

    def _loader(self, part: str, train: bool) -> DataLoader:
        return DataLoader(
            self.datasets[part],
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            drop_last=False,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)


__all__ = ["SegmentationDataModule", "SliceDataset", "outcome_fold_split", "patient_split", "resize_slices"]
