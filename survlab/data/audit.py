"""Read a whole cohort once and collect EVERY input problem instead of stopping at the first (`survlab check`).

The checks are the loaders' own (`Cohort.from_csv`, `read_expression`, `read_bag`, `match_groups`, the label, prompt,
split and imaging checks), run in collecting mode or one file / case at a time, so a problem reads as it would when
training. Each problem group is a `Finding` (file, check, one-line message with the fix, every case concerned);
`notes` are things training copes with (dropped with `allow_missing`, imputed cells, slides without coords).
Nothing is written anywhere and nothing is trained; feature files are read one at a time, each once.

Example:
    >>> dm = CohortDataModule(name="mine", root="/data/mine", wsi={"encoder": "uni"})  # doctest: +SKIP
    >>> result = audit_cohort(dm)                                                        # doctest: +SKIP
    >>> [f.check for f in result.findings], result.summary["patients"]                   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from survlab.data.cohort.checks import DataFileError, Finding
from survlab.data.cohort.clinical import _reject_decimal_commas
from survlab.data.cohort.counts import Counts, count_problems, missing_ids, target_columns, target_counts
from survlab.data.cohort.splits import draw_splits, part_sizes, small_split_warning
from survlab.data.cohort.table import Cohort, _first_ids
from survlab.data.cohort.targets import check_classes, label_key, label_problems
from survlab.data.modalities.genomics import (
    expression_scale_problem,
    match_groups,
    read_expression,
    read_signatures,
    signature_coverage,
)
from survlab.data.modalities.stores import build_stores
from survlab.data.modalities.text import prompts_for_classes, resolve_prompts_file
from survlab.data.modalities.wsi import _FIX, BagStore, _check_twin, read_bag, read_header
from survlab.data.options import under

if TYPE_CHECKING:
    from survlab.data.datamodule import CohortDataModule

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]  # (done, total, what) while reading files

# What a feature-file error is about, from the loaders' one-line messages (survlab.data.modalities.wsi): the group it joins.
_FILE_KINDS: tuple[tuple[str, str], ...] = (
    ("0-byte file", "empty (0-byte) feature files"),
    ("empty bag (0 patches)", "empty bags (0 patches)"),
    ("features must be 2-D", "features not 2-D [N, D]"),
    ("is not numeric", "non-numeric features"),
    ("!= configured feature_dim", "feature dim differs from wsi.feature_dim"),
    ("coords shape", "coords do not match the features"),
    ("NaN/Inf", "NaN/Inf features"),
    ("pickled Python object", "pickled objects instead of tensors"),
    ("corrupt or unreadable", "unreadable feature files"),
    ("'features'", "no features in the file"),
    ("expected a tensor", "no features in the file"),
    ("feature files (", "several feature files for one slide"),
    ("holds other features than", ".h5 and .pt of a slide differ"),
    ("mask shape", "masks not on the CT grid"),
    ("mask affine differs", "masks with another affine than their CT"),
    ("soft mask", "soft (non-binary) masks"),
    ("PNG (mode", "PNG slices not 8-bit"),
    ("slice number(s)", "missing or repeated slice numbers"),
    ("mask is empty", "empty masks"),
    ("slices of", "slices of different sizes"),
)


def file_problem_kind(message: str) -> str:
    """The group a loader's one-line feature / image file error belongs to ('NaN/Inf features', ...)."""
    return next((kind for key, kind in _FILE_KINDS if key in message), "unreadable files")


@dataclass
class AuditResult:
    """Every problem group (`findings`: training would stop on each), `notes` (handled, but worth knowing) and a
    `summary` (patients, slides, events, modalities, per-modality coverage)."""

    findings: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    info: list[str] = field(default_factory=list)  # what the config reads and leaves unread (not problems)

    @property
    def ok(self) -> bool:
        return not self.findings


def _error(exc: BaseException) -> str:
    """The one-line message of a loader's error (first line; a FileNotFoundError's text without quotes)."""
    text = str(exc.args[0]) if isinstance(exc, (KeyError, FileNotFoundError)) and exc.args else str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _group(file: str, check: str, problems: dict[str, str], what: str = "slide") -> Finding:
    """One finding for many files of one kind: `problems` maps slide / case -> its loader message."""
    ids = sorted(problems)
    return Finding(
        file,
        check,
        f"{file}: {check} for {len(ids)} {what}(s) ({_first_ids(ids)}); e.g. {problems[ids[0]]}",
        tuple(ids),
    )


class _Audit:
    """Runs every check of one data module's cohort; see `audit_cohort`."""

    def __init__(self, dm: CohortDataModule, progress: Progress | None, selection: str = "best_val") -> None:
        self.dm, self.progress, self.selection = dm, progress, selection
        self.split_cfg: dict[str, Any] = dict(dm.split_cfg or {})
        self.result = AuditResult()
        self.coverage: dict[str, str] = {}
        self.have: dict[str, set[str]] = {}  # modality (wsi, genomics, pet) -> patients that have it

    def add(self, finding: Finding, note: bool = False) -> None:
        (self.result.notes if note else self.result.findings).append(finding)

    def fail(self, file: str | Path, check: str, exc: BaseException) -> None:
        self.add(Finding(str(file), check, _error(exc)))

    # ------------------------------------------------------------------ cohort table
    def cohort(self) -> Cohort | None:
        dm = self.dm
        found: list[Finding] = []
        try:
            cohort = dm.read_cohort_table(findings=found)
        except (ValueError, FileNotFoundError, OSError) as exc:
            covariates = dm.covariates_csv
            if covariates is not None and str(covariates) in str(exc):
                self.fail(covariates, "covariate table (clinical.table)", exc)
            else:
                self.fail(dm.clinical_csv, "cohort table", exc)
            return None
        finally:
            self.result.findings.extend(found)
        self._case_spellings(cohort)
        return cohort

    def _case_spellings(self, cohort: Cohort) -> None:
        """Case ids that differ only in letter case ('tcga-01' and 'TCGA-01') are two patients to survlab."""
        by_lower: dict[str, list[str]] = {}
        for c in cohort.case_ids:
            by_lower.setdefault(c.lower(), []).append(c)
        twins = {k: v for k, v in by_lower.items() if len(v) > 1}
        if twins:
            first = next(iter(twins.values()))
            cases = tuple(c for v in twins.values() for c in v)
            self.add(
                Finding(
                    str(cohort.path),
                    "case ids differing only in letter case",
                    (
                        f"{cohort.path}: {len(twins)} case id(s) occur in several letter cases (e.g. "
                        f"{', '.join(map(repr, first))}), which survlab reads as different patients; spell each case id one "
                        f"way"
                    ),
                    cases,
                )
            )

    def outcomes(self, cohort: Cohort) -> None:
        """Events for the k folds: the split succeeds and every fold's train / val / test part has an event."""
        dm, cfg = self.dm, self.split_cfg
        if not dm.has_survival:
            return
        t = cohort.table
        t = t[(t["time"] > 0) & np.isfinite(t["time"])]  # patients with a bad time are a finding already
        try:
            frames = self._draw_folds(t)  # the folds training draws, with every split setting
        except ValueError as exc:
            self.fail(dm.clinical_csv, "too few patients for the folds", exc)
            return
        event = dict(zip(t["case_id"], t["event"], strict=True))
        small = {
            k: line
            for k, f in enumerate(frames)
            if (
                line := small_split_warning(
                    part_sizes(
                        {p: f.loc[f["split"] == p, "case_id"].tolist() for p in ("train", "val", "test")},
                        event,
                    ),
                    cfg["folds"],
                    self.selection,
                )
            )
        }
        if small:
            first = next(iter(small))
            self.add(
                Finding(
                    str(dm.clinical_csv),
                    "folds too small to select on",
                    f"{dm.clinical_csv}: {len(small)} of {cfg['folds']} fold(s) are small (fold {first}: {small[first]})",
                    tuple(f"fold {k}" for k in small),
                ),
                note=True,
            )
        empty = [
            f"fold {k} {part}"
            for k, f in enumerate(frames)
            for part in ("train", "val", "test")
            if not any(event[c] for c in f.loc[f["split"] == part, "case_id"])
        ]
        if empty:
            self.add(
                Finding(
                    str(dm.clinical_csv),
                    "too few events for the folds",
                    (
                        f"{dm.clinical_csv}: {int(t['event'].sum())} event(s) among {len(t)} patients leave "
                        f"{_first_ids(empty)} without an event (no C-index / time bins there); use fewer folds "
                        f"(data.splits.folds, now {cfg['folds']}) or a larger val_fraction"
                    ),
                    tuple(empty),
                )
            )

    # ------------------------------------------------------------------ missing label / endpoint cells per part
    def fold_parts(self, cohort: Cohort) -> list[dict[str, list[str]]] | None:
        """Every fold's parts (part -> case ids) as training will use them, without writing anything: the persisted
        split when its dir exists, else the split `ensure_splits` would write, drawn in memory; None for a
        `splits.import` not yet written (its parts are counted when training) or a split that cannot be drawn
        (reported by the folds check)."""
        dm, cfg = self.dm, self.split_cfg
        parts = ("train", "val", "test") + (("calibration",) if cfg["calibration_fraction"] else ())
        t = cohort.table
        if (dm.split_dir / "meta.json").is_file():
            split_set = dm._split_set(cohort)
            folds = [split_set.fold(k, cohort.case_ids, dm.events_of(cohort)) for k in range(split_set.folds)]
            return [{p: f.part(p) for p in parts} for f in folds]
        if cfg["import"]:
            return None
        try:
            frames = self._draw_folds(t)
        except ValueError:  # too few patients / events for the folds: the folds check names it
            return None
        return [{p: f.loc[f["split"] == p, "case_id"].tolist() for p in parts} for f in frames]

    def _draw_folds(self, t: pd.DataFrame) -> list[pd.DataFrame]:
        """The folds `ensure_splits` would write for the cohort table `t`, drawn in memory (the same `draw_splits`)."""
        return draw_splits(t, *self.dm.split_args())

    def targets(self, cohort: Cohort) -> None:
        """Missing label / slide label / endpoint cells, counted per fold and part as training counts them
        (survlab.data.cohort.counts): a note per target with missing cells (masked out of losses and metrics), a
        finding per part left with no value (training refuses it), all folds at once."""
        dm = self.dm
        folds = self.fold_parts(cohort)
        if folds is None:
            return
        counts = {
            k: target_counts(cohort, parts, dm.label_specs, dm.slide_label_specs)
            for k, parts in enumerate(folds)
        }
        self.result.summary["target_counts"] = {f"fold {k}": c for k, c in counts.items()}
        columns = target_columns(dm.label_specs, dm.slide_label_specs, cohort.endpoints)
        empty: dict[tuple[str, str, str, str], list[int]] = {}
        first: dict[tuple[str, str, str, str], str] = {}
        for k, c in counts.items():
            for check, message, kind, name, part in count_problems(c, cohort.path, f"fold {k}", columns):
                key = (check, kind, name, part)
                empty.setdefault(key, []).append(k)
                first.setdefault(key, message)
        for key, ks in empty.items():
            also = f" (the same in fold(s) {', '.join(map(str, ks[1:]))})" if len(ks) > 1 else ""
            self.add(Finding(str(cohort.path), key[0], first[key] + also, tuple(f"fold {k}" for k in ks)))
        self._missing_notes(cohort, counts, columns, {(kind, name) for _, kind, name, _ in empty})

    def _missing_notes(
        self,
        cohort: Cohort,
        counts: dict[int, Counts],
        columns: dict[tuple[str, str], str],
        refused: set[tuple[str, str]],
    ) -> None:
        """One note per target with missing cells (not already a finding): how many, which, and per fold and part."""
        if not counts:
            return
        for kind, targets in counts[0].items():
            for name in targets:
                if (kind, name) in refused:
                    continue
                column = columns.get((kind, name), name)
                ids = missing_ids(cohort, kind, name if kind == "endpoints" else column)
                if not ids:
                    continue
                unit = "slide" if kind == "slide_labels" else "patient"
                total = (
                    len(cohort.slides)
                    if kind == "slide_labels" and cohort.slides is not None
                    else len(cohort)
                )
                per_fold = "; ".join(
                    f"fold {k}: "
                    + ", ".join(f"{p} {n['n_missing']}/{n['n']}" for p, n in c[kind][name].items())
                    for k, c in counts.items()
                )
                word = {"labels": "label", "slide_labels": "slide label", "endpoints": "endpoint"}[kind]
                self.add(
                    Finding(
                        str(cohort.path),
                        f"{word} '{name}' missing cells",
                        (
                            f"{cohort.path}: {word} '{name}' (column '{column}') is empty for {len(ids)} of {total} "
                            f"{unit}(s) ({_first_ids(ids)}); masked out of losses and metrics (missing/total {per_fold})"
                        ),
                        tuple(ids),
                    ),
                    note=True,
                )

    # ------------------------------------------------------------------ labels, clinical, prompts
    def labels(self, cohort: Cohort) -> dict[str, tuple[str, ...]]:
        """Every label has >= 2 classes and only configured values, one spelling per class, every configured class
        among the patients, slide labels agreeing with their patient label; -> name -> classes (over all patients)."""
        out: dict[str, tuple[str, ...]] = {}
        # a label without any value is the targets check's finding ('... without any value'), not also a class one
        blank = {n for n, sp in self.dm.label_specs.items() if cohort.table[sp.column].isna().all()}
        if cohort.slides is not None:
            blank |= {
                n for n, sp in self.dm.slide_label_specs.items() if cohort.slides[sp.column].isna().all()
            }
        for check, message, cases in label_problems(
            self.dm.label_specs,
            self.dm.slide_label_specs,
            cohort.table,
            cohort.slides,
            cohort.case_ids,
            cohort.path,
            "the cohort's patients",
        ):
            if not any(check.startswith(f"label '{n}'") for n in blank):
                self.add(Finding(str(cohort.path), check, message, cases))
        tables = [(self.dm.label_specs, cohort.table, "case_id", "case")]
        if cohort.slides is not None:
            tables.append((self.dm.slide_label_specs, cohort.slides, "slide_id", "slide"))
        for specs, table, id_col, what in tables:
            for name, spec in specs.items():
                values = table[spec.column]
                classes = tuple(spec.fit(values))
                out[name] = classes
                try:
                    if name not in blank:
                        check_classes(spec, classes, cohort.path)
                except ValueError as exc:
                    self.fail(cohort.path, f"label '{name}' has < 2 classes", exc)
                known = set(classes)
                bad = {
                    str(i): label_key(v)
                    for i, v in zip(table[id_col], values, strict=True)
                    if not pd.isna(v) and label_key(v) not in known
                }
                if bad:
                    ids = sorted(bad)
                    self.add(
                        Finding(
                            str(cohort.path),
                            f"label '{name}': values not in its classes",
                            (
                                f"{cohort.path}: {len(ids)} {what}(s) have {spec.column} values outside {list(classes)} "
                                f"({', '.join(f'{i}: {bad[i]!r}' for i in ids[:5])}{' ...' if len(ids) > 5 else ''}); fix "
                                f"the values, or list them in labels.{name}.classes"
                            ),
                            tuple(ids),
                        )
                    )
        return out

    def clinical(self, cohort: Cohort) -> None:
        """Numeric clinical columns hold numbers (decimal commas, stray text); empty cells are a note (imputed)."""
        dm, t = self.dm, cohort.table
        for col in dm.clin_cols:
            missing = t.loc[t[col].isna(), "case_id"].tolist()
            if missing:
                self.add(
                    Finding(
                        str(cohort.path),
                        f"clinical '{col}' empty",
                        (
                            f"{cohort.path}: clinical column '{col}' is empty for {len(missing)} of {len(t)} patient(s) "
                            f"({_first_ids(missing)}); imputed from the training patients"
                        ),
                        tuple(missing),
                    ),
                    note=True,
                )
            if col in dm.clin_categorical or pd.api.types.is_numeric_dtype(t[col]):
                continue
            try:
                _reject_decimal_commas(t, col)
            except ValueError as exc:
                self.add(
                    Finding(str(cohort.path), f"clinical '{col}' decimal commas", f"{cohort.path}: {exc}")
                )
                continue
            values = t[col].dropna()
            as_number = pd.to_numeric(values.astype(str).str.strip(), errors="coerce")
            if as_number.notna().mean() >= 0.5:  # a numeric column with a few text cells, not a category
                bad = t.loc[as_number.index[as_number.isna()]]
                shown = ", ".join(
                    f"{c}: {v!r}" for c, v in zip(bad["case_id"][:5], bad[col][:5], strict=True)
                )
                self.add(
                    Finding(
                        str(cohort.path),
                        f"clinical '{col}' not numeric",
                        (
                            f"{cohort.path}: clinical column '{col}' is numeric but {len(bad)} patient(s) hold text ({shown}"
                            f"{' ...' if len(bad) > 5 else ''}); it would be one-hot encoded as categories: fix the values "
                            f"(leave unknowns empty) or list '{col}' under clinical.categorical"
                        ),
                        tuple(bad["case_id"]),
                    )
                )

    def prompts(self, classes: dict[str, tuple[str, ...]]) -> None:
        for name, raw in self.dm.raw_prompts.items():
            source = resolve_prompts_file(self.dm.prompt_files[name])
            if name not in classes:
                self.add(
                    Finding(
                        str(source),
                        "prompts for an unknown label",
                        (
                            f"data={self.dm.name}: prompts for {name!r}, which is neither a label nor a slide label "
                            f"{list(classes)}; key data.prompts by one of them"
                        ),
                    )
                )
                continue
            try:
                prompts_for_classes(raw, classes[name], name, source)
            except DataFileError as exc:
                self.fail(source, f"prompts do not match label '{name}'", exc)

    # ------------------------------------------------------------------ genomics
    def genomics(self, cohort: Cohort | None) -> None:
        dm = self.dm
        if dm.gen_cfg is None:
            return
        path = Path(os.path.expanduser(str(dm.gen_cfg["expression"])))
        path = path if path.is_absolute() else dm.root / path
        found: list[Finding] = []
        try:
            expr = read_expression(path, dm.case_col, findings=found)
        except (ValueError, FileNotFoundError, OSError) as exc:
            self.fail(path, "expression table", exc)
            return
        finally:
            self.result.findings.extend(found)
        sig = dm.gen_cfg["signatures"]
        sig_path = None
        if sig:
            sig_path = Path(os.path.expanduser(str(sig)))
            sig_path = sig_path if sig_path.is_absolute() else dm.root / sig_path
        try:
            groups = match_groups(
                expr.columns, read_signatures(sig_path) if sig_path else None, str(sig_path)
            )
            self.result.info.append(signature_coverage(groups, sig_path, path))
        except (ValueError, FileNotFoundError, OSError) as exc:
            self.fail(sig_path or path, "gene signatures", exc)
        scale = expression_scale_problem(expr, bool(dm.gen_cfg["log1p"]), path)
        if scale:
            self.add(Finding(str(path), "expression scale vs log1p", scale), note=True)
        if cohort is None:
            return
        have = set(expr.index)
        missing = [c for c in cohort.case_ids if c not in have]
        lower = {c.lower(): c for c in expr.index}
        hint = next(
            (f" (e.g. {c!r} is spelled {lower[c.lower()]!r} there)" for c in missing if c.lower() in lower),
            "",
        )
        self.have["genomics"] = {c for c in cohort.case_ids if c in have}
        if missing:
            fix = (
                "kept, marked absent (data.missing=keep)"
                if dm.missing == "keep"
                else "dropped (data.missing=drop)"
                if dm.missing == "drop"
                else "add their profiles, or set data.missing=drop (leave them out) or keep (test them without genomics)"
            )
            self.add(
                Finding(
                    str(path),
                    "patients without an expression row",
                    (
                        f"{path}: expression table lacks {len(missing)} cohort patient(s) ({_first_ids(missing)}){hint}; "
                        f"{fix}"
                    ),
                    tuple(missing),
                ),
                note=dm.missing != "error",
            )
        kept = expr.loc[[c for c in cohort.case_ids if c in have]]
        holes = kept.isna()
        some = holes.any(axis=1) & ~holes.all(axis=1)
        if some.any():
            self.add(
                Finding(
                    str(path),
                    "empty expression cells",
                    f"{path}: {int(holes[some].to_numpy().sum())} empty cell(s) in {int(some.sum())} patient(s) "
                    f"({_first_ids(list(kept.index[some]))}); imputed from the training patients",
                    tuple(kept.index[some]),
                ),
                note=True,
            )
        empty = [c for c in cohort.case_ids if c in have and expr.loc[c].isna().all()]
        if empty:
            self.add(
                Finding(
                    str(path),
                    "patients with every gene empty",
                    (
                        f"{path}: {len(empty)} patient(s) have no expression value at all ({_first_ids(empty)}); their "
                        f"profile would be imputed entirely: add the values or remove the rows"
                    ),
                    tuple(empty),
                )
            )
        self.coverage["genomics"] = f"{len(cohort) - len(missing)}/{len(cohort)} patients"

    # ------------------------------------------------------------------ WSI
    def stores(self) -> list[BagStore]:
        """The stores training reads, from the same builder (survlab.data.modalities.stores.build_stores; CLAM or
        TRIDENT layout): every scale, and the single-scale store unless a multi-scale cohort has no such folder."""
        w, dm = self.dm.wsi_cfg, self.dm
        if w is None:
            return []
        modalities = {"wsi"}
        if w["scales"]:
            base = under(dm.root, w["features_dir"]) / (w["encoder"] or "")
            single = (base / "h5_files").is_dir() or (base / "pt_files").is_dir()
            modalities = {"scales", "wsi"} if single else {"scales"}
        wsi, scales = build_stores(w, dm.root, dm.name, modalities)
        return [s for s in [wsi, *(scales or {}).values()] if s is not None]

    def wsi(self, cohort: Cohort) -> None:
        dm = self.dm
        try:
            stores = self.stores()
        except (FileNotFoundError, DataFileError, ValueError) as exc:  # e.g. no such TRIDENT patching
            trident = (dm.wsi_cfg or {}).get("trident") or {}
            self.fail(trident.get("job_dir") or dm.root, "feature folder", exc)
            return
        if not stores:
            return
        no_slides = [c for c, ss in zip(cohort.case_ids, cohort.table["slide_ids"], strict=True) if not ss]
        if dm.slide_col is None or len(no_slides) == len(cohort):
            self.add(
                Finding(
                    str(dm.clinical_csv),
                    "no slides listed",
                    (
                        f"data={dm.name}: the config reads WSI features but {dm.clinical_csv} lists no {dm.slide_col or 'slide_id'}"
                        f" (table-only cohort); set data.wsi=null or add a slide_id column"
                    ),
                )
            )
            return
        if no_slides:
            fix = (
                "kept, marked absent (data.missing=keep)"
                if dm.missing == "keep"
                else "dropped (data.missing=drop)"
                if dm.missing == "drop"
                else "add their slides or set allow_missing=true"
            )
            self.add(
                Finding(
                    str(dm.clinical_csv),
                    "patients without slides",
                    (
                        f"{dm.clinical_csv}: {len(no_slides)} patient(s) list no {dm.slide_col} ({_first_ids(no_slides)}); "
                        f"{fix}"
                    ),
                    tuple(no_slides),
                ),
                note=dm.missing != "error",
            )
        slides = [
            (c, s) for c, ss in zip(cohort.case_ids, cohort.table["slide_ids"], strict=True) for s in ss
        ]
        readable = {s for _, s in slides}  # slides whose file is fine in EVERY store (scale)
        absent: set[str] = set()  # slides without a file in some store
        for store in stores:
            try:
                store.check_layout()
            except FileNotFoundError as exc:
                self.fail(store.base, "feature folder", exc)
                readable = set()
                continue
            ok, missing = self._store(store, slides, cohort)
            readable &= ok
            absent |= missing
        lacking = {c for c, s in slides} - {c for c, s in slides if s in readable}
        self.have["wsi"] = {c for c, _ in slides} - lacking
        left = sorted({c for c, s in slides} - {c for c, s in slides if s not in absent})
        # multi-scale: a slide missing a scale is dropped, so a patient may lose all of them
        if len(stores) > 1 and left:
            fix = "dropped (allow_missing=true)" if dm.allow_missing else f"{_FIX}, or set allow_missing=true"
            self.add(
                Finding(
                    str(dm.clinical_csv),
                    "patients without a slide at every scale",
                    f"{dm.clinical_csv}: {len(left)} patient(s) have no slide with features at all scales "
                    f"({_first_ids(left)}); {fix}",
                    tuple(left),
                ),
                note=dm.allow_missing,
            )
        self.coverage["wsi"] = (
            f"{len(cohort) - len(lacking) - len(no_slides)}/{len(cohort)} patients with readable features"
        )
        self.result.summary["slides"] = len(slides)

    def _store(
        self, store: BagStore, slides: Sequence[tuple[str, str]], cohort: Cohort
    ) -> tuple[set[str], set[str]]:
        """Read every slide's file of one store once -> (the slides whose file is fine, the slides without a file)."""
        where = str(store.base)
        missing: dict[str, str] = {}
        bad: dict[str, dict[str, str]] = {}
        owner: dict[Path, tuple[str, str]] = {}
        shared: dict[str, str] = {}
        dims: dict[str, int] = {}
        no_coords: list[str] = []
        total = len(slides)
        for i, (case, s) in enumerate(slides):
            if self.progress is not None:
                self.progress(i, total, where)
            try:
                paths = store.paths_of(s)
            except DataFileError as exc:
                bad.setdefault(file_problem_kind(str(exc)), {})[s] = _error(exc)
                continue
            if not paths:
                missing[s] = case
                continue
            first = owner.setdefault(paths[0], (s, case))
            if first[0] == s and first[1] != case:  # one slide id under two patients: a cohort-table finding
                continue
            if first != (s, case):
                shared[s] = (
                    f"slide_id {s} of case {case} and {first[0]} of case {first[1]} both resolve to "
                    f"{paths[0]}"
                )
                continue
            try:
                feats, coords = read_bag(paths[0], store.feature_dim)
                if len(paths) > 1:  # format=auto with an .h5 and a .pt: they must hold one bag
                    _check_twin(
                        read_header(paths[0], store.feature_dim, edges=True),
                        read_header(paths[1], store.feature_dim, edges=True),
                    )
            except (DataFileError, FileNotFoundError, OSError) as exc:
                bad.setdefault(file_problem_kind(str(exc)), {})[s] = _error(exc)
                continue
            dims[s] = int(feats.shape[1])
            if coords is None:
                no_coords.append(s)
        if self.progress is not None:
            self.progress(total, total, where)
        if missing:
            cases = sorted(set(missing.values()))
            dirs = ", ".join(str(d) for d in store.search_dirs)
            drop = self.dm.allow_missing or (store.scale is not None)
            fix = (
                "dropped (allow_missing=true)"
                if self.dm.allow_missing
                else "these slides are dropped (a slide needs a bag at every scale)"
                if drop
                else f"{_FIX}, or set allow_missing=true to drop them"
            )
            self.add(
                Finding(
                    where,
                    "feature files missing",
                    (
                        f"{where}: no feature file for {len(missing)} slide(s) of {len(cases)} patient(s) "
                        f"({_first_ids(sorted(missing))}; searched {dirs}); {fix}"
                    ),
                    tuple(sorted(missing)),
                ),
                note=drop,
            )
        if shared:
            self.add(_group(str(cohort.path), "slide ids resolving to one file", shared))
        for kind, problems in bad.items():
            self.add(_group(where, kind, problems))
        if len(set(dims.values())) > 1:
            common = Counter(dims.values()).most_common(1)[0][0]
            odd = sorted(s for s, d in dims.items() if d != common)
            self.add(
                Finding(
                    where,
                    "feature dims differ across slides",
                    (
                        f"{where}: {len(odd)} slide(s) have feature dim(s) {sorted(set(dims[s] for s in odd))} but "
                        f"{sum(d == common for d in dims.values())} have {common} ({_first_ids(odd)}); re-extract all slides "
                        f"with one encoder, or set wsi.feature_dim"
                    ),
                    tuple(odd),
                )
            )
        if no_coords:
            self.add(
                Finding(
                    where,
                    "slides without coords",
                    (
                        f"{where}: {len(no_coords)} slide file(s) hold no coords ({_first_ids(sorted(no_coords))}); training "
                        f"works, attention heatmaps need them: extract with CLAM/TRIDENT (.h5 with 'coords')"
                    ),
                    tuple(no_coords),
                ),
                note=True,
            )
        usual = Counter(dims.values()).most_common(1)[0][0] if dims else None
        return {s for s, d in dims.items() if d == usual}, set(missing)

    # ------------------------------------------------------------------ CT / PET
    def imaging(self, cohort: Cohort) -> None:
        dm = self.dm
        if dm.imaging_cfg is None:
            return
        from survlab.data.modalities.imaging import ImagingStore

        try:
            store = ImagingStore(dm.root, {**dm.imaging_cfg}, dm.case_col)
        except (ValueError, FileNotFoundError, OSError) as exc:
            self.fail(dm.root, "imaging tables", exc)
            return
        missing = store.missing(cohort.case_ids)
        if "pet" in store.tables:
            self.have["pet"] = {c for c in cohort.case_ids if c in store.tables["pet"].index}
        if missing:
            drop = dm.imaging_cfg["missing"] != "error"
            first = next(iter(sorted(missing)))
            fix = (
                "dropped (imaging.missing=drop)" if drop else "add the files or set data.imaging.missing=drop"
            )
            self.add(
                Finding(
                    str(dm.root),
                    "patients without imaging",
                    (
                        f"data={dm.name}: {len(missing)} patient(s) lack imaging data ({_first_ids(sorted(missing))}; e.g. "
                        f"{first} lacks {missing[first]}); {fix}"
                    ),
                    tuple(sorted(missing)),
                ),
                note=drop,
            )
        bad: dict[str, dict[str, str]] = {}
        todo = [c for c in cohort.case_ids if store.sources(c)]
        for i, case in enumerate(todo):
            if self.progress is not None:
                self.progress(i, len(todo), "CT stacks")
            try:
                store.build(case)  # decode + cut in memory; the stack cache is not touched
            except (DataFileError, ValueError, OSError) as exc:
                bad.setdefault(file_problem_kind(str(exc)), {})[case] = _error(exc)
        for kind, problems in bad.items():
            self.add(_group(str(dm.root), kind, problems, what="case"))
        self.coverage["ct"] = f"{len(todo) - sum(map(len, bad.values()))}/{len(cohort)} patients"

    # ------------------------------------------------------------------ all
    def _guard(self, name: str, check: Callable[..., Any], *args: Any) -> Any:
        """Run one check; an error it did not foresee becomes a finding naming the check (the others still run)."""
        try:
            return check(*args)
        except Exception as exc:  # noqa: BLE001 - reported as a problem group, never a traceback
            where = self.dm.clinical_csv if name != "genomics" else self.dm.root
            self.add(
                Finding(
                    str(where), f"{name} check could not run", f"{name}: {type(exc).__name__}: {_error(exc)}"
                )
            )
            return None

    def run(self) -> AuditResult:
        dm = self.dm
        cohort = self.cohort()
        if cohort is not None and (unused := dm.unused_columns_line()):
            self.result.info.append(unused)
        classes: dict[str, tuple[str, ...]] = {}
        if cohort is not None:
            self._guard("folds", self.outcomes, cohort)
            self._guard("targets", self.targets, cohort)
            classes = self._guard("labels", self.labels, cohort) or {}
            self._guard("clinical", self.clinical, cohort)
            self._guard("prompts", self.prompts, classes)
        self._guard("genomics", self.genomics, cohort)
        if cohort is not None:
            self._guard("wsi", self.wsi, cohort)
            self._guard("imaging", self.imaging, cohort)
            self._summary(cohort, classes)
        self.result.summary.setdefault("modalities", sorted(dm.provides))
        return self.result

    def _summary(self, cohort: Cohort, classes: dict[str, tuple[str, ...]]) -> None:
        t, dm = cohort.table, self.dm
        s = self.result.summary
        s["patients"] = len(t)
        s.setdefault("slides", int(t["slide_ids"].map(len).sum()))
        if dm.has_survival:
            s["events"] = int(t["event"].sum())
        if dm.clin_cols:
            full = int(t[dm.clin_cols].notna().all(axis=1).sum())
            self.coverage["clinical"] = f"{full}/{len(t)} patients with every column filled"
        s["labels"] = {n: list(c) for n, c in classes.items()}
        s["modalities"] = sorted(dm.provides)
        s["coverage"] = dict(self.coverage)
        self._availability(cohort)

    def _availability(self, cohort: Cohort) -> None:
        """Patients per availability pattern (wsi+genomics, wsi, ...; survlab.data.datamodule.availability_pattern)
        over the modalities the config provides, when some patient lacks one: summary["availability"] + one line."""
        from survlab.data.datamodule import PRESENCE, availability_pattern

        have = {m: self.have[m] for m in PRESENCE if m in self.have}
        if all(c in h for h in have.values() for c in cohort.case_ids):
            return
        counts = Counter(availability_pattern({m: c in h for m, h in have.items()}) for c in cohort.case_ids)
        self.result.summary["availability"] = dict(sorted(counts.items()))
        what = {"keep": "kept, marked absent", "drop": "those lacking a modality the model reads are dropped"}
        self.result.info.append(
            f"availability over {'+'.join(have)} ({len(cohort)} patients; data.missing={self.dm.missing}: "
            f"{what.get(self.dm.missing, 'an error if the model reads what they lack')}): "
            + ", ".join(f"{p} {n}" for p, n in counts.most_common())
        )


def audit_cohort(
    dm: CohortDataModule, progress: Progress | None = None, selection: str = "best_val"
) -> AuditResult:
    """Check everything `dm` (a CohortDataModule, not set up) would read: the cohort table (outcomes, patient fields,
    case ids), folds, labels, clinical columns, prompts, the expression table and signatures, every slide's feature
    file(s) (read once each), CT / PET data. -> AuditResult; never raises for bad input, writes nothing.
    `progress(done, total, what)` is called while files are read; `selection` (the run's checkpoint rule) decides
    whether a small validation part is worth a note."""
    return _Audit(dm, progress, selection).run()
