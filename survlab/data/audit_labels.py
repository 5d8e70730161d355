"""`survlab check`, labels, clinical columns and prompts: classes of every label (configured values, one spelling,
slide labels agreeing with their patient), numeric clinical columns holding numbers, prompts matching their label.
"""

from __future__ import annotations

import pandas as pd

from survlab.data.audit_findings import AuditBase
from survlab.data.cohort.checks import DataFileError, Finding
from survlab.data.cohort.clinical import _reject_decimal_commas
from survlab.data.cohort.ids import _first_ids
from survlab.data.cohort.table import Cohort
from survlab.data.cohort.targets import check_classes, label_key, label_problems
from survlab.data.modalities.text import prompts_for_classes, resolve_prompts_file


class LabelChecks(AuditBase):
    """The label, clinical and prompt checks of an audit."""

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
