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

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from survlab.data.audit_findings import AuditResult, Progress, _error
from survlab.data.audit_labels import LabelChecks
from survlab.data.audit_modalities import ModalityChecks
from survlab.data.audit_table import TableChecks
from survlab.data.audit_wsi import WsiChecks
from survlab.data.cohort.checks import Finding
from survlab.data.cohort.table import Cohort

if TYPE_CHECKING:
    from survlab.data.datamodule import CohortDataModule


class _Audit(TableChecks, LabelChecks, ModalityChecks, WsiChecks):
    """Runs every check of one data module's cohort; see `audit_cohort`."""

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
