"""Gene-expression groups: expression table + signatures table -> per-patient list of per-group vectors.

Expression: `<root>/expression.csv`, first column case_id, one column per gene symbol. Signatures: one column per
group (cells = gene symbols, shorter columns padded with empty cells). Matching is by EXACT symbol; rows are joined
by case_id, never by position. The scaler is fitted on the fold's TRAINING patients only and stored as plain arrays.

Example:
    >>> expr = read_expression("expression.csv")                           # doctest: +SKIP
    >>> groups = match_groups(expr.columns, read_signatures("signatures_mcat6.csv"))  # doctest: +SKIP
    >>> scaler = GeneScaler("standard").fit(expr.loc[train_ids].to_numpy())  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survlab.data.cohort.checks import Finding, delimiter_problem, describe_number, parse_problem, report
from survlab.data.cohort.ids import _first_ids, _header, _reject_repeated, _spellings
from survlab.utils.files import read_json

log = logging.getLogger(__name__)


def read_expression_ids(path: str | Path, case_col: str = "case_id") -> set[str]:
    """The case ids (stripped) of a table's id column, without reading its values (the expression table, or the PET
    table, when only who has a row matters: data availability). No such column is a one-line ValueError."""
    try:
        ids = pd.read_csv(path, usecols=[case_col], dtype={case_col: str})[case_col]
    except ValueError as err:
        raise ValueError(f"{path}: no '{case_col}' column ({err}); add it") from None
    return {c.strip() for c in ids.dropna().astype(str) if c.strip()}


def read_expression(
    path: str | Path, case_col: str = "case_id", findings: list[Finding] | None = None
) -> pd.DataFrame:
    """-> DataFrame indexed by case_id (str, stripped), float32 columns = gene symbols (stripped).

    Rejects empty case ids, a case given twice (also as whitespace variants, e.g. 'T1' and 'T1 ') and a gene
    column given twice, each with a one-line error naming the file and the offender. `findings`: collect every
    such problem there instead (and go on: empty ids dropped, first row of a case kept, bad cells as NaN); a
    file that cannot be read as a table still raises.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"expression table not found: {path}; expected a CSV with first column case_id and one column per gene "
            f"(see README 'Real data layout')"
        )
    try:
        df = pd.read_csv(path, dtype={case_col: str})
    except Exception as err:  # noqa: BLE001 - empty, binary, wrong encoding: re-raised with the file name
        raise ValueError(parse_problem(path, err)) from err
    if case_col not in df.columns:
        raise ValueError(
            delimiter_problem(path, _header(path))
            or f"{path}: no '{case_col}' column (first columns: {list(df.columns[:5])}); add it"
        )
    if findings is None:
        _reject_repeated(_header(path), path, "gene column", "keep one column per gene symbol")
    else:
        try:
            _reject_repeated(_header(path), path, "gene column", "keep one column per gene symbol")
        except ValueError as err:
            findings.append(Finding(str(path), "gene column repeated", str(err)))
    raw_ids = df[case_col]
    if raw_ids.isna().any():
        lines = (np.flatnonzero(raw_ids.isna().to_numpy()) + 2).tolist()
        report(
            findings,
            Finding(
                str(path),
                f"empty {case_col}",
                (f"{path}: empty {case_col} at CSV line(s) {_first_ids(lines)}; fill in the case ids"),
                tuple(f"line {r}" for r in lines),
            ),
        )
        df, raw_ids = df[raw_ids.notna()], raw_ids[raw_ids.notna()]
    ids = raw_ids.astype(str).str.strip()
    dup = ids[ids.duplicated(keep=False)]
    if len(dup):
        report(
            findings,
            Finding(
                str(path),
                "duplicate case rows",
                (
                    f"{path}: duplicate case row(s) {_first_ids(dup.unique())}{_spellings(raw_ids, ids, dup.iloc[0])}; "
                    f"keep one expression profile per patient"
                ),
                tuple(dup.unique()),
            ),
        )
        df, ids = df[~ids.duplicated().to_numpy()], ids[~ids.duplicated()]
    df = df.set_index(pd.Index(ids, name=case_col)).drop(columns=[case_col])
    df.columns = [str(c).strip() for c in df.columns]
    non_numeric = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if non_numeric:
        col = df[non_numeric[0]]
        case = pd.to_numeric(col, errors="coerce").isna() & col.notna()
        case = str(case.idxmax()) if case.any() else str(df.index[0])
        report(
            findings,
            Finding(
                str(path),
                "gene columns not numeric",
                (
                    f"{path}: gene column(s) {_first_ids(non_numeric)} are not numeric (case {case}: "
                    f"{describe_number(col.loc[case]) or repr(col.loc[case])}); fix the values or drop the column(s)"
                ),
                tuple(non_numeric),
            ),
        )
        df = df.apply(pd.to_numeric, errors="coerce")
    with np.errstate(over="ignore"):
        values = df.to_numpy(np.float32)
    infinite = np.isinf(values)  # inf in the file, or beyond float32
    if infinite.any():
        r, c = np.argwhere(infinite)[0]
        report(
            findings,
            Finding(
                str(path),
                "non-finite expression values",
                (
                    f"{path}: non-finite expression value(s) (case {df.index[r]}, gene {df.columns[c]}: "
                    f"{df.iloc[r, c]:g}; {int(infinite.sum())} in all); fix them or leave the cells empty (missing values "
                    f"are imputed)"
                ),
                tuple(dict.fromkeys(str(df.index[i]) for i in np.argwhere(infinite)[:, 0])),
            ),
        )
        values[infinite] = np.nan
    return pd.DataFrame(values, index=df.index, columns=df.columns)


def read_signatures(path: str | Path) -> dict[str, list[str]]:
    """-> {group name: [gene symbols]} in the file's column order (names stripped, empty cells dropped).

    A group named twice is an error (pandas would rename the second copy to '<name>.1')."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"signatures table not found: {path}; expected one column per gene group (e.g. signatures_mcat6.csv)"
        )
    problem = delimiter_problem(path, _header(path))
    if problem:
        raise ValueError(problem)
    _reject_repeated(_header(path), path, "gene group", "merge or rename the repeated group columns")
    df = pd.read_csv(path, dtype=str)
    return {str(g).strip(): [s.strip() for s in df[g].dropna() if s.strip()] for g in df.columns}


@dataclass(frozen=True)
class GeneGroups:
    """Matched groups: names, genes (exactly matched symbols) and per-group (kept, total)."""

    names: tuple[str, ...]
    genes: tuple[tuple[str, ...], ...]
    totals: tuple[int, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(g) for g in self.genes)

    def report(self) -> dict[str, dict[str, int]]:
        return {
            n: {"kept": len(g), "total": t}
            for n, g, t in zip(self.names, self.genes, self.totals, strict=False)
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: {"names", "genes" (per group, in order), "totals"}."""
        return {
            "names": list(self.names),
            "genes": [list(g) for g in self.genes],
            "totals": list(self.totals),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeneGroups:
        return cls(tuple(d["names"]), tuple(tuple(g) for g in d["genes"]), tuple(int(t) for t in d["totals"]))


#: An expression table whose largest value exceeds this looks unlogged (raw counts / TPM / FPKM): log2(TPM + 1) of
#: any human gene stays below ~20, z-scores and log-ratios below ~10, so > 100 means a linear scale.
UNLOGGED_MAX = 100.0


def signature_coverage(groups: GeneGroups, signatures: str | Path | None, expression: str | Path) -> str:
    """One line naming the signatures file read and how many of its genes the expression table has, per group:
    'signatures .../signatures_mcat6.csv: 6 group(s), 312/340 genes found in .../expression.csv (tumor_suppression
    80/84, ...)'; without a signatures file: 'no signatures file: one group of all N genes of <expression>'."""
    if signatures is None:
        return f"no signatures file (data.genomics.signatures=null): one group of all {sum(groups.sizes)} genes of {expression}"
    rows = list(zip(groups.names, groups.sizes, groups.totals, strict=True))
    if len(rows) > 8:  # many groups (pathways): the 5 least covered
        rows = sorted(rows, key=lambda r: (r[1] / max(r[2], 1), r[0]))[:5]
    per = ", ".join(f"{n} {k}/{t}" for n, k, t in rows)
    return (
        f"signatures {signatures}: {len(groups.names)} group(s), {sum(groups.sizes)}/{sum(groups.totals)} genes found "
        f"in {expression} ({'least covered: ' if len(groups.names) > 8 else ''}{per})"
    )


def expression_scale_problem(expr: pd.DataFrame, log1p: bool, path: str | Path) -> str | None:
    """One line when the expression values do not fit `log1p` (data.genomics.log1p): a largest value above
    UNLOGGED_MAX with log1p false (raw counts / TPM scaled linearly: a few genes dominate), or negative values with
    log1p true (an already logged / z-scored table: log1p clips them to 0); else None."""
    values = expr.to_numpy(dtype=float, na_value=np.nan)
    finite = values[np.isfinite(values)]
    if not finite.size:
        return None
    top, low = float(finite.max()), float(finite.min())
    if not log1p and top > UNLOGGED_MAX:
        return (
            f"{path}: values up to {top:.4g} (median {float(np.median(finite)):.3g}) look unlogged (raw counts / TPM) "
            f"but data.genomics.log1p is false; set data.genomics.log1p=true, or log-transform the table"
        )
    if log1p and low < 0:
        n_neg = int((finite < 0).sum())
        return (
            f"{path}: {n_neg} negative value(s) (min {low:.4g}) look already logged / z-scored, but "
            f"data.genomics.log1p is true and would clip them to 0; set data.genomics.log1p=false"
        )
    return None


def match_groups(
    columns: Sequence[str], signatures: dict[str, list[str]] | None, source: str = "signatures"
) -> GeneGroups:
    """Exact-symbol match of every group against the expression columns; logs kept/total per group.

    Without signatures, one group 'all' of every column. A group with zero matches -> ValueError naming it.
    """
    cols = list(columns)
    if not signatures:
        groups = GeneGroups(("all",), (tuple(cols),), (len(cols),))
        log.info("genomics: one group 'all' with %d genes", len(cols))
        return groups
    available = set(cols)
    names, genes, totals = [], [], []
    for name, symbols in signatures.items():
        uniq = list(dict.fromkeys(symbols))
        kept = tuple(s for s in uniq if s in available)
        if not kept:
            raise ValueError(
                f"{source}: gene group '{name}' has no gene in the expression table (e.g. {_first_ids(uniq, 4)}); "
                f"check the gene symbols (exact match, no prefixes) or remove the group"
            )
        names.append(name)
        genes.append(kept)
        totals.append(len(uniq))
    groups = GeneGroups(tuple(names), tuple(genes), tuple(totals))
    if len(names) <= 10:
        for n, g, t in zip(names, genes, totals, strict=False):
            log.info("genomics group %s: kept %d/%d genes", n, len(g), t)
    else:
        kept, tot = sum(groups.sizes), sum(totals)
        log.info(
            "genomics: %d groups, kept %d/%d genes (min group %d)", len(names), kept, tot, min(groups.sizes)
        )
    return groups


class GeneScaler:
    """Per-gene scaling fitted on training patients only.

    method: "standard" (z-score; optional log1p first) or "minmax" (to [-1, 1] per gene, as GGMF's reference).
    Parameters are numpy arrays (`shift`, `scale`): x' = (f(x) - shift) / scale. Missing values (NaN) become 0
    after scaling (the training mean for `standard`). Saved as .npz or .json — never pickle.
    """

    def __init__(self, method: str = "standard", log1p: bool = False) -> None:
        if method not in ("standard", "minmax", "none"):
            raise ValueError(f"genomics.scaling must be standard, minmax or none, got {method!r}")
        self.method, self.log1p = method, log1p
        self.shift: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def _pre(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return np.log1p(np.clip(x, 0, None)) if self.log1p else x

    def fit(self, x: np.ndarray) -> GeneScaler:
        """x [N_train, G] -> self."""
        x = self._pre(x)
        if self.method == "standard":
            shift, scale = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
        elif self.method == "minmax":
            lo, hi = np.nanmin(x, axis=0), np.nanmax(x, axis=0)
            shift, scale = (hi + lo) / 2, (hi - lo) / 2
        else:
            shift, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
        shift = np.nan_to_num(shift)
        scale = np.where(np.isfinite(scale) & (scale > 1e-12), scale, 1.0)
        self.shift, self.scale = shift.astype(np.float64), scale.astype(np.float64)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """x [N, G] -> float32 [N, G]."""
        if self.shift is None:
            raise RuntimeError("GeneScaler.transform called before fit")
        return np.nan_to_num((self._pre(x) - self.shift) / self.scale).astype(np.float32)

    def inverse_transform(self, x: np.ndarray) -> np.ndarray:
        """Scaled values [N, G] -> expression units [N, G] (float64): the inverse of `transform` (expm1 after
        log1p)."""
        if self.shift is None:
            raise RuntimeError("GeneScaler.inverse_transform called before fit")
        raw = np.asarray(x, dtype=np.float64) * self.scale + self.shift
        return np.expm1(raw) if self.log1p else raw

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "log1p": self.log1p,
            "shift": self.shift.tolist(),
            "scale": self.scale.tolist(),
        }  # type: ignore[union-attr]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeneScaler:
        s = cls(d["method"], bool(d["log1p"]))
        s.shift, s.scale = np.asarray(d["shift"], float), np.asarray(d["scale"], float)
        return s

    def save(self, path: str | Path) -> None:
        path = Path(path)
        if path.suffix == ".npz":
            np.savez(path, shift=self.shift, scale=self.scale, method=self.method, log1p=self.log1p)
        else:
            path.write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> GeneScaler:
        path = Path(path)
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                d = {
                    "method": str(z["method"]),
                    "log1p": bool(z["log1p"]),
                    "shift": z["shift"],
                    "scale": z["scale"],
                }
            return cls.from_dict(d)
        return cls.from_dict(read_json(path))


def check_coverage(
    expr: pd.DataFrame,
    case_ids: Sequence[str],
    path: str | Path,
    allow_missing: bool = False,
    keep: bool = False,
) -> list[str]:
    """Return cohort case_ids absent from the expression table (error unless allow_missing or `keep`:
    data.missing=keep keeps them, marked absent)."""
    missing = [c for c in case_ids if c not in expr.index]
    if missing and not (allow_missing or keep):
        raise ValueError(
            f"{path}: expression table lacks {len(missing)} cohort patient(s) ({_first_ids(missing)}); add their "
            f"profiles, or set data.missing=drop to drop them or data.missing=keep to keep them"
        )
    if missing and keep:
        log.warning(
            "genomics: keeping %d patient(s) without expression (data.missing=keep; marked absent): %s",
            len(missing),
            _first_ids(missing),
        )
    elif missing:
        log.warning(
            "genomics: dropping %d patient(s) without expression: %s", len(missing), _first_ids(missing)
        )
    return missing


def _group_genes(groups: GeneGroups) -> list[str]:
    """The union of the groups' genes, in first-listed order."""
    return list(dict.fromkeys(g for grp in groups.genes for g in grp))


def _lookup(expr: pd.DataFrame, case_ids: Sequence[str], genes: Sequence[str]) -> np.ndarray:
    """Expression values [len(case_ids), len(genes)], row r = case_ids[r]; fails loudly unless exactly one row per
    patient comes back (a duplicated index would otherwise shift every later patient's profile)."""
    values = expr.loc[list(case_ids), list(genes)]
    if len(values) != len(case_ids) or list(values.index) != list(case_ids):
        extra = [c for c, k in Counter(values.index).items() if k > 1]
        raise ValueError(
            f"expression lookup returned {len(values)} rows for {len(case_ids)} patients (case(s) with several "
            f"rows: {_first_ids(extra)}); the expression table must hold one row per case_id"
        )
    return values.to_numpy()


def genomic_tensors(
    expr: pd.DataFrame,
    groups: GeneGroups,
    scaler: GeneScaler,
    case_ids: Sequence[str],
    absent: Sequence[str] = (),
) -> dict[str, list[np.ndarray]]:
    """Scale the union of group genes and cut per group -> {case_id: [g_i float32 arrays]} (joined by case_id).
    `absent` (data.missing=keep: patients without a profile) get zeros of every group's size, the placeholder."""
    genes = _group_genes(groups)
    pos = {g: i for i, g in enumerate(genes)}
    skip = set(absent)
    present = [c for c in case_ids if c not in skip]
    values = scaler.transform(_lookup(expr, present, genes))
    cut = [np.array([pos[g] for g in grp]) for grp in groups.genes]
    out = {c: [values[r, idx] for idx in cut] for r, c in enumerate(present)}
    dtype = values.dtype
    for c in case_ids:
        if c in skip:
            out[c] = [np.zeros(len(idx), dtype=dtype) for idx in cut]
    return out


def fit_genomics(
    expr: pd.DataFrame, groups: GeneGroups, train_ids: Sequence[str], method: str, log1p: bool
) -> GeneScaler:
    """Fit the scaler on the union of group genes of TRAINING patients only."""
    return GeneScaler(method, log1p).fit(_lookup(expr, train_ids, _group_genes(groups)))


def substitute_expression(
    groups: GeneGroups, path: str | Path, case_ids: Sequence[str], case_col: str = "case_id"
) -> pd.DataFrame:
    """The expression table at `path` (e.g. PathGen's synthetic expression.csv) in place of the real one, read and
    checked like a real one: it must hold every patient of `case_ids` and every gene of the matched `groups`."""
    other = read_expression(path, case_col)
    missing = [c for c in case_ids if c not in other.index]
    if missing:
        raise ValueError(
            f"{path}: genomics.values_from lacks {len(missing)} cohort patient(s) ({_first_ids(missing)}); "
            f"regenerate it for every patient of the fold"
        )
    genes = _group_genes(groups)
    absent = [g for g in genes if g not in other.columns]
    if absent:
        raise ValueError(
            f"{path}: genomics.values_from lacks {len(absent)} gene(s) of the matched groups "
            f"({_first_ids(absent)}); it must have every gene the real table contributes to the groups"
        )
    return other.loc[list(case_ids), genes]
