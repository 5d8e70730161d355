"""Peers' split files imported as survlab splits: MCAT / SurvPath and CLAM `splits_<k>.csv`.

Formats (one file per outer fold k, an unnamed index column, ragged columns padded with empty cells):
- `mcat` (MCAT, SurvPath, PORPOISE): columns `train`, `val` (sometimes `test`) of CASE ids. Without a `test` column
  their `val` is the held-out fold their results are reported on, so survlab maps val -> test and carves its inner
  validation from `train` with its own seeded rule (`val_fraction` per event stratum, `carve_validation`); with a
  `test` column the three parts are taken as they are.
- `clam` (CLAM create_splits_seq.py): columns `train`, `val`, `test` of SLIDE ids, mapped to patients through the
  cohort's slides (a slide id matches with or without its WSI extension); the parts are taken as they are.

Checks (one-line ValueError naming the file): every id exists in the cohort (missing ids listed with counts), no
patient in two parts (for CLAM: a patient whose slides fall into different parts leaks), every cohort patient
assigned. The result is written as a survlab split dir (`splits_<k>.csv` + meta.json) whose meta records the source
files' sha256 under `imported`, which also enters every fold hash (and so protocol.json).

CLI: `survlab import-splits --format mcat --dir <peer splits> --clinical clinical.csv --out <dir>`.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survlab.data.cohort.ids import _first_ids
from survlab.data.cohort.split_parts import carve_validation
from survlab.data.cohort.split_set import SplitSet, assignment_hash, case_set_hash, write_split_set
from survlab.data.modalities.wsi_files import slide_key
from survlab.utils.files import read_json

FORMATS = ("mcat", "clam")
SPLIT_FILE = re.compile(r"^splits_(\d+)\.csv$")
MAPPING = {
    "mcat": "train -> train, val -> test (MCAT/SurvPath report on val), inner val carved from train "
    "(val_fraction per event stratum, seeded); with a test column: train/val/test as given",
    "clam": "slide ids -> patients; train/val/test as given",
}


def peer_split_files(folder: str | Path) -> list[Path]:
    """`splits_0.csv .. splits_<k-1>.csv` of a peer's split folder (CLAM's *_bool / *_descriptor files ignored)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"split folder {folder} does not exist; set data.splits.import.dir")
    found = {int(m[1]): p for p in folder.iterdir() if (m := SPLIT_FILE.match(p.name))}
    if not found:
        raise FileNotFoundError(
            f"{folder} has no splits_<k>.csv files; set data.splits.import.dir to the folder"
        )
    gaps = [k for k in range(max(found) + 1) if k not in found]
    if gaps:
        raise ValueError(f"{folder}: splits_{gaps[0]}.csv missing (folds must be numbered 0..{max(found)})")
    return [found[k] for k in sorted(found)]


def read_peer_split(path: Path, fmt: str) -> dict[str, list[str]]:
    """One peer split file -> part (train / val / test) -> ids (empty padding cells dropped, whitespace stripped)."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    need = ("train", "val", "test") if fmt == "clam" else ("train", "val")
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path}: no column(s) {missing} (has {list(df.columns)}); a {fmt} split file has columns "
            f"{', '.join(need)}{' [, test]' if fmt == 'mcat' else ''}: check data.splits.import.format"
        )
    parts = [c for c in ("train", "val", "test") if c in df.columns]
    return {c: [v.strip() for v in df[c] if v.strip()] for c in parts}


def _to_patients(
    path: Path, fmt: str, parts: dict[str, list[str]], table: pd.DataFrame
) -> dict[str, list[str]]:
    """Ids of each part -> case ids; errors on unknown ids, leaks (a patient in two parts) and unassigned patients."""
    if fmt == "clam":
        owner = {
            slide_key(str(s)): c
            for c, ss in zip(table["case_id"], table["slide_ids"], strict=True)
            for s in ss
        }
        lookup, what = (lambda i: owner.get(slide_key(i))), "slide"
    else:
        known = set(table["case_id"])
        lookup, what = (lambda i: i if i in known else None), "case"
    unknown = {p: [i for i in ids if lookup(i) is None] for p, ids in parts.items()}
    n_unknown = sum(map(len, unknown.values()))
    if n_unknown:
        per = ", ".join(f"{p}: {len(v)}" for p, v in unknown.items() if v)
        ids = [i for v in unknown.values() for i in v]
        raise ValueError(
            f"{path}: {n_unknown} {what} id(s) not in the cohort ({per}): {_first_ids(ids)}; the split file belongs to "
            f"another cohort or the ids differ (check data.splits.import.format and the clinical CSV)"
        )
    case_of = {i: str(lookup(i)) for ids in parts.values() for i in ids}
    where: dict[str, set[str]] = {}
    for p, ids in parts.items():
        for i in ids:
            where.setdefault(case_of[i], set()).add(p)
    leaks = sorted(c for c, ps in where.items() if len(ps) > 1)
    how = (
        "their slides fall into different parts (a leak)" if fmt == "clam" else "listed in two parts (a leak)"
    )
    if leaks:
        first = leaks[0]
        raise ValueError(
            f"{path}: {len(leaks)} patient(s) in more than one part ({_first_ids(leaks)}; e.g. {first} in "
            f"{sorted(where[first])}): {how}; a patient must be in exactly one part"
        )
    unassigned = sorted(set(table["case_id"]) - set(where))
    if unassigned:
        raise ValueError(
            f"{path}: {len(unassigned)} cohort patient(s) in no part ({_first_ids(unassigned)}); remove them from "
            f"the clinical CSV or use a split file that covers the cohort"
        )
    return {p: sorted({case_of[i] for i in ids}) for p, ids in parts.items()}


def import_fold(
    path: Path, fmt: str, table: pd.DataFrame, k: int, val_fraction: float, seed: int, survival: bool = True
) -> pd.DataFrame:
    """One peer split file -> survlab split frame (case_id, split), rows sorted by case_id."""
    if fmt not in FORMATS:
        raise ValueError(f"data.splits.import.format must be one of {FORMATS}, got {fmt!r}")
    parts = _to_patients(path, fmt, read_peer_split(path, fmt), table)
    has_test = bool(parts.get("test"))
    if fmt == "clam" and not has_test:
        raise ValueError(f"{path}: the test column is empty; survlab never reports on the validation part")
    case_ids = np.array(sorted(table["case_id"].astype(str)), dtype=object)
    part_of = {c: p for p, ids in parts.items() for c in ids}
    if not has_test:  # MCAT / SurvPath: their val is the held-out fold
        part_of = {c: "test" if p == "val" else p for c, p in part_of.items()}
    split = np.array([part_of[c] for c in case_ids], dtype=object)
    if not has_test:
        event_of = dict(zip(table["case_id"].astype(str), table["event"].astype(bool), strict=True))
        inner = np.array([event_of[c] if survival else False for c in case_ids], dtype=object)
        rng = np.random.default_rng([int(seed), k])
        carve_validation(split, np.flatnonzero(split == "train"), inner, (False, True), val_fraction, rng)
    return pd.DataFrame({"case_id": case_ids, "split": split})


def import_splits(
    table: pd.DataFrame,
    fmt: str,
    folder: str | Path,
    out_root: str | Path,
    val_fraction: float = 0.15,
    seed: int = 0,
    survival: bool = True,
) -> SplitSet:
    """Import every `splits_<k>.csv` of `folder` for the cohort `table` (case_id, slide_ids, event) into a survlab
    split dir `<out_root>/imported-<fmt>_<hash>` (reused when present; the peer's folder is only read)."""
    files = peer_split_files(folder)
    sources = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    case_ids = table["case_id"].astype(str).tolist()
    imported = {
        "format": fmt,
        "dir": str(Path(folder).resolve()),
        "files": sources,
        "mapping": MAPPING.get(fmt, ""),
    }
    settings = {
        "folds": len(files),
        "val_fraction": float(val_fraction),
        "seed": int(seed),
        "stratify": [f"imported:{fmt}"],
        "n_patients": len(case_ids),
        "case_set_sha256": case_set_hash(case_ids),
        "imported": imported,
    }
    tag = hashlib.sha256(
        json.dumps({**settings, "imported": {**imported, "dir": None}}, sort_keys=True).encode()
    ).hexdigest()[:12]
    out = Path(out_root) / f"imported-{fmt}_{tag}"
    meta_path = out / "meta.json"
    if meta_path.is_file():
        return SplitSet(out, read_json(meta_path))
    frames = {k: import_fold(p, fmt, table, k, val_fraction, seed, survival) for k, p in enumerate(files)}
    contents = {f"splits_{k}.csv": df.to_csv(index=False).encode() for k, df in frames.items()}
    meta = {
        **settings,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()},
        "assignments": {f"splits_{k}.csv": assignment_hash({k: df}) for k, df in frames.items()},
        "assignment_sha256": assignment_hash(frames),
    }
    # one set: a failed write (full disk) leaves nothing, and the next run writes it again
    write_split_set(out, {**contents, "meta.json": json.dumps(meta, indent=2, sort_keys=True).encode()})
    return SplitSet(out, meta)


def from_config(
    spec: dict[str, Any],
    table: pd.DataFrame,
    out_root: Path,
    root: Path,
    val_fraction: float,
    seed: int,
    survival: bool,
) -> SplitSet:
    """`data.splits.import: {format, dir}` (dir relative to the cohort root, or absolute) -> the imported SplitSet."""
    unknown = set(spec) - {"format", "dir"}
    if unknown:
        raise ValueError(
            f"unknown data.splits.import option(s) {sorted(unknown)}; allowed: ['dir', 'format']"
        )
    if spec.get("format") not in FORMATS or not spec.get("dir"):
        raise ValueError(f"data.splits.import needs format (one of {', '.join(FORMATS)}) and dir, got {spec}")
    folder = Path(str(spec["dir"])).expanduser()
    folder = folder if folder.is_absolute() else root / folder
    return import_splits(table, str(spec["format"]), folder, out_root, val_fraction, seed, survival)
