"""Predicted masks -> MM-DLS stacks: run a trained lung / lesion segmentor (model=mmdls_seg) over every CT volume of a
cohort and write a NEW cohort folder in the PNG stack layout that model=mmdls reads — the pipeline the reference
never connected.

    survlab cut run=<mmdls_seg run dir> out=<new folder> [cohort=<folder with volumes/>]
                                  [lesion_window=32] [min_lesion_voxels=1]

For each ``<cohort>/volumes/<case_id>/ct.nii.gz``: every axial slice is windowed like the segmentor's training data,
resized to its image size, segmented (the selected checkpoint of the run), the logits upsampled back to the CT grid
and thresholded at 0.5; the largest 3-D connected lesion component is kept (scipy.ndimage). The stacks are cut from
the CT with `survlab.data.modalities.imaging_volumes.cut_stacks` and written to ``<out>/images/<case_id>/{lesion,space}/slice_<k>.png``;
the predicted masks to ``<out>/masks/<case_id>/{lung_mask,lesion_mask}.nii.gz`` (on the CT's grid reoriented to
RAS, with that grid's affine, so they overlay the CT in any viewer whatever the CT's stored orientation); the cohort's tables (clinical.csv,
radiomics.csv, pet.csv) are copied. ``<out>/cut_report.json`` lists per case the predicted volumes, the Dice against
the cohort's own masks when it has them (a check of the segmentor, never used for training), and the cases whose
predicted lesion was empty (no stacks written: data.imaging.missing decides whether they are dropped), and under
``segmentor`` which run produced the masks: its directory, fold, checkpoint (+ sha256) and the split it trained on.

Leak-free per fold: a segmentor trained with ``data.outcome_splits`` (the default of ``synthetic_petct_seg``) on fold
k trains on the outcome cohort's fold-k training patients only, so cut one stack cohort per fold with that fold's
segmentor and train MM-DLS fold k on it:
``python -m survlab.run experiment=mmdls_synthetic data.synthetic=null data.root=<out k> fold=k``.
model=mmdls checks ``cut_report.json`` (survlab.data.modalities.imaging_volumes.check_stack_provenance): stacks from a segmentor of
another fold or split are refused, and the segmentor run is recorded in the run's protocol card.
The source cohort is only read; ``out`` must be a new or empty folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from survlab.data.modalities.imaging_volumes import (
    CUT_REPORT,
    cut_stacks,
    load_volume,
    read_volume,
    window_to_uint8,
)
from survlab.models.mmdls_seg import LungLesionSegmentor

TABLES = ("clinical.csv", "radiomics.csv", "pet.csv")


def load_segmentor(run_dir: Path) -> tuple[LungLesionSegmentor, dict[str, Any]]:
    """The selected checkpoint of an mmdls_seg run (weights_only) and the run's protocol.json (its resolved config
    under "config"). Refused for a segmentor trained on lung slices only (``data.slices=lung``): the cut segments
    whole volumes."""
    protocol_path = run_dir / "protocol.json"
    if not protocol_path.is_file():
        raise ValueError(
            f"run={run_dir}: no protocol.json; pass the directory of a finished model=mmdls_seg run"
        )
    protocol = json.loads(protocol_path.read_text())
    cfg = protocol["config"]
    if cfg["model"]["net"]["_target_"] != "survlab.models.mmdls_seg.LungLesionSegmentor":
        raise ValueError(
            f"run={run_dir} trained {cfg['model']['name']}, not the segmentor; pass a model=mmdls_seg run"
        )
    if cfg.get("data", {}).get("slices", "all") != "all":
        raise ValueError(
            f"run={run_dir} trained the segmentor on the slices holding lung only (data.slices="
            f"{cfg['data']['slices']}), but survlab cut segments every axial slice of each volume, and on slices "
            f"it never saw it paints lung and lesion (the largest lesion component is then often a false one); "
            f"retrain it with data.slices=all (the default of synthetic_petct_seg)"
        )
    net_cfg = {k: v for k, v in cfg["model"]["net"].items() if k not in ("_target_", "pretrained")}
    net = LungLesionSegmentor(None, **net_cfg)
    state = torch.load(protocol["selected_checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")})
    return net.eval(), protocol


def segment_volume(
    net: LungLesionSegmentor, ct_u8: np.ndarray, image_size: int, batch: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Windowed CT uint8 [X, Y, Z] -> predicted (lung, lesion) bool masks [X, Y, Z] on the CT grid."""
    from monai.transforms import Resize

    slices = np.moveaxis(ct_u8, -1, 0).astype(np.float32)  # [Z, X, Y]
    small = np.asarray(Resize((image_size, image_size), mode="area")(slices), dtype=np.float32) / 255.0
    probs = {"lung": [], "lesion": []}
    with torch.no_grad():
        for i in range(0, len(small), batch):
            out = net(torch.from_numpy(small[i : i + batch])[:, None])
            for s in probs:
                up = torch.nn.functional.interpolate(
                    out[s].float(), size=ct_u8.shape[:2], mode="bilinear", align_corners=False
                )
                probs[s].append(torch.sigmoid(up[:, 0]).numpy())
    lung, lesion = (np.moveaxis(np.concatenate(probs[s]), 0, -1) > 0.5 for s in ("lung", "lesion"))
    return lung, largest_component(lesion)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a bool mask (empty stays empty)."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    denom = a.sum() + b.sum()
    return float(2 * (a & b).sum() / denom) if denom else float("nan")


def cut_cohort(
    run_dir: Path, out: Path, cohort: Path | None = None, lesion_window: int = 32, min_lesion_voxels: int = 1
) -> dict[str, Any]:
    """Segment every volume of `cohort` with the run's segmentor and write the stack cohort to `out` -> report."""
    import nibabel as nib
    from PIL import Image

    net, protocol = load_segmentor(run_dir)
    data = protocol["config"]["data"]
    cohort = Path(cohort or data["root"])
    volumes = cohort / data.get("volumes_dir", "volumes")
    if not volumes.is_dir():
        raise ValueError(
            f"cohort={cohort}: no {volumes.name}/ folder with <case_id>/{data.get('ct_file', 'ct.nii.gz')}"
        )
    if out.exists() and any(out.iterdir()):
        raise ValueError(
            f"out={out} is not empty; survlab writes the stack cohort into a new or empty folder only"
        )
    out.mkdir(parents=True, exist_ok=True)
    ckpt = Path(protocol["selected_checkpoint"])
    segmentor = {
        "run": str(run_dir.resolve()),
        "fold": int(protocol["fold"]),
        "checkpoint": str(ckpt),
        "checkpoint_sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest(),
        "split_source": (protocol.get("cohort") or {}).get("split_source"),
        "test_patients": (protocol.get("cohort") or {}).get("split", {}).get("test", []),
    }
    report: dict[str, Any] = {
        "run": str(run_dir),
        "cohort": str(cohort),
        "segmentor": segmentor,
        "cases": {},
        "empty_lesion": [],
    }
    for case_dir in sorted(p for p in volumes.iterdir() if p.is_dir()):
        case = case_dir.name
        ct_path = case_dir / data.get("ct_file", "ct.nii.gz")
        if not ct_path.is_file():
            continue
        ct, ras_affine = load_volume(ct_path)  # reoriented to RAS: the masks below are on this grid
        ct_u8 = window_to_uint8(ct, data.get("window", (-1000, 400)))
        lung, lesion = segment_volume(net, ct_u8, int(data["image_size"]))
        entry: dict[str, Any] = {"lung_voxels": int(lung.sum()), "lesion_voxels": int(lesion.sum())}
        for name, pred in (("lung", lung), ("lesion", lesion)):
            ref = case_dir / data.get(f"{name}_file", f"{name}_mask.nii.gz")
            if ref.is_file():
                entry[f"dice_{name}_vs_cohort_mask"] = _dice(pred, read_volume(ref) > 0)
        report["cases"][case] = entry
        mask_dir = out / "masks" / case
        mask_dir.mkdir(parents=True)
        for name, pred in (
            ("lung_mask", lung),
            ("lesion_mask", lesion),
        ):  # with the RAS grid's affine, not the file's
            nib.save(nib.Nifti1Image(pred.astype(np.uint8), ras_affine), str(mask_dir / f"{name}.nii.gz"))
        if lesion.sum() < min_lesion_voxels or not lung.any():
            report["empty_lesion"].append(case)
            continue
        for kind, stack in cut_stacks(ct_u8, lung, lesion, lesion_window, case).items():
            kind_dir = out / "images" / case / kind
            kind_dir.mkdir(parents=True)
            for k, sl in enumerate(stack):
                Image.fromarray(sl, mode="L").save(kind_dir / f"slice_{k}.png")
    for table in TABLES:
        if (cohort / table).is_file():
            shutil.copy2(cohort / table, out / table)
    dice = [
        c["dice_lesion_vs_cohort_mask"] for c in report["cases"].values() if "dice_lesion_vs_cohort_mask" in c
    ]
    report["mean_dice_lesion_vs_cohort_mask"] = float(np.nanmean(dice)) if dice else None
    (out / CUT_REPORT).write_text(json.dumps(report, indent=1) + "\n")
    return report
