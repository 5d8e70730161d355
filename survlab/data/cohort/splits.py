"""Patient-level outer k-fold + inner validation splits, written ONCE to disk and reused by every model.

`<split_dir>/splits_<k>.csv` has columns case_id, split (train | val | test), rows sorted by case_id;
`<split_dir>/meta.json` records the settings, the cohort's case-set hash, the sha256 of every split file and of the
assignment itself (`assignments`: per file, `assignment_sha256`: all folds), which every reuse checks. The
assignment depends only on the content (case ids, outcomes, settings), never on the row order of the cohort table.
Outer folds are stratified by
event x time-quantile (optionally x site); the inner validation part (val_fraction of the training part of a fold)
is stratified by event. Slides are never split: rows are patients.

Site-preserved folds (`splits.group`, e.g. the tissue-source site): every group's patients land in ONE fold's test
part (survlab.data.cohort.split_groups).

A split set is written as one: its files and meta.json go into a temporary dir beside the split dir
(`.<name>.<pid>.tmp`), renamed to it when complete, and removed when a write fails (a full disk): a failed write
leaves nothing, and the retry writes the set. Split files without meta.json that are byte for byte the ones survlab
writes for this cohort and settings (a partial set left by an older survlab) are recognised and completed; any other
split files without meta.json are never overwritten.

This module decides whether to draw or reuse (`ensure_splits`, `draw_splits`); the draw itself is in split_draw
(split_parts: the inner val / calibration parts, split_groups: site-preserved folds), the split dir's files are read,
checked and written in split_set, and split_sizes judges whether a fold's parts are large enough.

Example:
    >>> split = ensure_splits(cohort_frame, "splits/os", folds=5, seed=0).fold(0)   # doctest: +SKIP
    >>> split.train, split.val, split.test, split.hash                              # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from survlab.data.cohort.ids import _first_ids
from survlab.data.cohort.split_draw import make_splits
from survlab.data.cohort.split_groups import group_column
from survlab.data.cohort.split_parts import CALIBRATION_DRAW, repeat_seed
from survlab.data.cohort.split_set import (
    SplitSet,
    _read_split,
    _sha256,
    assignment_hash,
    case_set_hash,
    write_split_set,
)
from survlab.utils.files import read_json

log = logging.getLogger(__name__)


def draw_splits(
    cohort: pd.DataFrame,
    folds: int = 5,
    val_fraction: float = 0.15,
    seed: int = 0,
    stratify_site: str | None = None,
    stratify_label: str | None = None,
    calibration_fraction: float = 0.0,
    survival: bool = True,
    repeat: int = 0,
    group: str | None = None,
) -> list[pd.DataFrame]:
    """The folds (one DataFrame case_id, split per fold) `ensure_splits` writes for `cohort` (columns case_id, time,
    event and the stratification / group columns), drawn in memory: nothing is read or written (`survlab check`
    counts the parts training will use with it)."""
    if stratify_site and stratify_site not in cohort.columns:
        raise ValueError(f"splits.stratify_site={stratify_site!r} is not a column of the cohort table")
    if stratify_label and stratify_label not in cohort.columns:
        raise ValueError(f"splits.stratify_label={stratify_label!r} is not a column of the cohort table")
    return make_splits(
        cohort["case_id"].astype(str).tolist(),
        cohort["time"].to_numpy(),
        cohort["event"].to_numpy(),
        folds,
        val_fraction,
        seed,
        cohort[stratify_site].astype(str).to_numpy() if stratify_site else None,
        label=cohort[stratify_label].to_numpy(object) if stratify_label else None,
        calibration_fraction=float(calibration_fraction),
        survival=survival,
        repeat=int(repeat),
        group=group_column(cohort, str(group))[0] if group else None,
        group_name=str(group),
    )


def ensure_splits(
    cohort: pd.DataFrame,
    split_dir: str | Path,
    folds: int = 5,
    val_fraction: float = 0.15,
    seed: int = 0,
    stratify_site: str | None = None,
    stratify_label: str | None = None,
    calibration_fraction: float = 0.0,
    survival: bool = True,
    repeat: int = 0,
    group: str | None = None,
) -> SplitSet:
    """Write the split files once (from `cohort` with columns case_id, time, event[, site]) or reuse them.

    Reuse requires the same case set and settings; otherwise the error tells the user to delete the dir or
    choose another. Split files without survlab's meta.json (e.g. CLAM's) are never overwritten: that is an error,
    unless they are survlab's own partial set (module doc). The set is written atomically (`write_split_set`) and
    deterministically, so concurrent jobs writing the same dir agree.
    `repeat` > 0 (repeated k-fold) is recorded in meta.json and the fold hash; repeat 0 writes what it always did.
    `group` (a column, e.g. site): site-preserved folds (`make_splits`); for `site` without such a column the
    tissue-source site of TCGA barcodes (`tcga_sites`). Recorded (`group`, `group_source`) only when used.
    """
    split_dir = Path(split_dir)
    case_ids = cohort["case_id"].astype(str).tolist()
    settings = {
        "folds": int(folds),
        "val_fraction": float(val_fraction),
        "seed": int(seed),
        "stratify": (
            ["event", "time_quantile"]
            if stratify_label is None
            else [f"label:{stratify_label}"] + (["event"] if survival else [])
        )
        + ([stratify_site] if stratify_site else []),
        "n_patients": len(case_ids),
        "case_set_sha256": case_set_hash(case_ids),
    }
    if not 0.0 <= float(calibration_fraction) < 1.0:
        raise ValueError(f"splits.calibration_fraction must be in [0, 1), got {calibration_fraction}")
    if calibration_fraction:  # recorded (and hashed) only when used: split dirs without it are unchanged
        settings["calibration_fraction"] = float(calibration_fraction)
        settings["calibration_draw"] = CALIBRATION_DRAW
    repeat_seed(seed, repeat)  # validates
    if repeat:  # likewise: repeat 0 keeps today's meta.json and hashes
        settings["repeat"] = int(repeat)
    if group:  # likewise: only when used
        settings["group_source"] = group_column(cohort, str(group))[1]
        settings["group"] = str(group)
    meta_path = split_dir / "meta.json"
    if meta_path.is_file():
        meta = read_json(meta_path)
        if meta.get("case_set_sha256") != settings["case_set_sha256"]:
            raise ValueError(
                f"{split_dir} holds splits for a different set of patients ({meta.get('n_patients')} vs "
                f"{len(case_ids)} in this cohort); delete {split_dir} or choose another splits.dir"
            )
        changed = {k: (meta.get(k), v) for k, v in settings.items() if meta.get(k) != v}
        if int(meta.get("repeat", 0)) != int(repeat):  # absent = repeat 0
            changed["repeat"] = (meta.get("repeat", 0), int(repeat))
        if meta.get("group") != settings.get("group"):  # absent = no groups
            changed["group"] = (meta.get("group"), settings.get("group"))
        if set(changed) == {"calibration_draw"}:
            raise ValueError(
                f"{split_dir} holds calibration splits of an older survlab (calibration_draw "
                f"{meta.get('calibration_draw', 1)}, now {CALIBRATION_DRAW}: its calibration draw also changed the val "
                f"parts of folds 1..{int(meta['folds']) - 1}); delete {split_dir} to regenerate the splits or choose "
                f"another splits.dir"
            )
        if changed:
            raise ValueError(
                f"{split_dir} was written with other settings {changed} (stored, requested); delete it or choose "
                f"another splits.dir"
            )
        if "assignment_sha256" not in meta:  # written before survlab recorded the assignment: hash the files
            files = {k: split_dir / f"splits_{k}.csv" for k in range(int(meta["folds"]))}
            meta = {
                **meta,
                "assignment_sha256": assignment_hash(
                    {k: _read_split(p) for k, p in files.items() if p.is_file()}
                ),
            }
            log.warning("%s has no assignment_sha256 (older survlab); using the hash of its files", meta_path)
        log.info("reusing splits in %s (%d folds)", split_dir, meta["folds"])
        return SplitSet(split_dir, meta)
    frames = draw_splits(
        cohort,
        folds,
        val_fraction,
        seed,
        stratify_site,
        stratify_label,
        calibration_fraction,
        survival,
        repeat,
        group,
    )
    contents = {f"splits_{k}.csv": df.to_csv(index=False).encode() for k, df in enumerate(frames)}
    foreign = sorted(p.name for p in split_dir.glob("splits_*.csv")) if split_dir.is_dir() else []
    if foreign and all(contents.get(name) == (split_dir / name).read_bytes() for name in foreign):
        log.info("completing the partial split set survlab left in %s (%s)", split_dir, ", ".join(foreign))
    elif foreign:  # e.g. a CLAM split folder given as splits.dir: never overwrite files survlab did not write
        raise ValueError(
            f"{split_dir} holds split files survlab did not write ({_first_ids(foreign, 3)}, no meta.json); survlab "
            f"never overwrites them: choose another splits.dir (survlab writes its own split files there)"
        )
    meta = {
        **settings,
        "files": {name: _sha256(data) for name, data in contents.items()},
        "assignments": {f"splits_{k}.csv": assignment_hash({k: df}) for k, df in enumerate(frames)},
        "assignment_sha256": assignment_hash(dict(enumerate(frames))),
    }
    write_split_set(split_dir, {**contents, "meta.json": json.dumps(meta, indent=2, sort_keys=True).encode()})
    log.info("wrote %d split files to %s", folds, split_dir)
    return SplitSet(split_dir, meta)
