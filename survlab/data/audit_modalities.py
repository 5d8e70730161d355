"""`survlab check`, genomics and CT / PET: the expression table (signatures, scale vs log1p, patients without a row,
empty cells) and the imaging tables and stacks (patients without imaging, each case's stack built in memory). The
slides' feature files: survlab.data.audit_wsi.
"""

from __future__ import annotations

import os
from pathlib import Path

from survlab.data.audit_findings import AuditBase, _error, _group, file_problem_kind, missing_fix
from survlab.data.cohort.checks import DataFileError, Finding
from survlab.data.cohort.ids import _first_ids
from survlab.data.cohort.table import Cohort
from survlab.data.modalities.genomics import (
    expression_scale_problem,
    match_groups,
    read_expression,
    read_signatures,
    signature_coverage,
)


class ModalityChecks(AuditBase):
    """The genomics and CT / PET checks of an audit."""

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
            fix = missing_fix(
                dm.missing,
                "add their profiles, or set data.missing=drop (leave them out) or keep (test them without genomics)",
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
