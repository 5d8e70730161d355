"""What `survlab check` (survlab.data.audit) reports and how its checks record it: `AuditResult` (findings, notes,
summary, info), the group a loader's file error belongs to (`file_problem_kind`), the one-line message of a loader's
error, one finding for many files of one kind, and `AuditBase`, the state every check adds its findings to.

    file_problem_kind("x.h5: NaN/Inf in features")   # -> 'NaN/Inf features'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from survlab.data.cohort.checks import Finding
from survlab.data.cohort.ids import _first_ids

if TYPE_CHECKING:
    from survlab.data.datamodule import CohortDataModule

Progress = Callable[[int, int, str], None]  # (done, total, what) while reading files

# What a feature-file error is about, from the loaders' one-line messages (survlab.data.modalities.wsi*): the group it joins.
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


def missing_fix(missing: str, otherwise: str) -> str:
    """What `data.missing` (keep / drop) does with patients lacking a modality, else `otherwise` (the fix to name)."""
    return (
        "kept, marked absent (data.missing=keep)"
        if missing == "keep"
        else "dropped (data.missing=drop)"
        if missing == "drop"
        else otherwise
    )


class AuditBase:
    """One audit's state (the data module, progress callback, split settings, the result the checks add to, the
    per-modality coverage and who has each modality); the checks of survlab.data.audit_* are its subclasses."""

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
