"""Input checks shared by the data readers: the error type for a bad input file, what is wrong with a cell that
should hold a number, and the delimiter mistake behind "missing columns" in a CSV.

Every message is ONE line naming the file, the case / column and the fix (survlab prints it on the console).

Example:
    >>> describe_number("12,5")
    "'12,5' (decimal comma: write 12.5)"
    >>> describe_number("")
    'empty'
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_DELIMITERS: dict[str, str] = {";": "semicolon", "\t": "tab", "|": "pipe"}


class DataFileError(ValueError):
    """A bad input file; the one-line message names the file and the fix.

    A DataLoader worker that raises it is re-raised by torch in the main process as
    ``DataFileError("Caught DataFileError in DataLoader worker process N.\\nOriginal Traceback ...\\n...: <message>")``.
    The constructor then puts the original one-line message FIRST (it also stays the last line), so the console
    shows the file at once instead of "Caught ... in DataLoader worker process N".
    """

    def __init__(self, message: str = "") -> None:
        if message.startswith("Caught ") and "\nOriginal Traceback" in message:
            last = message.rstrip().rsplit("\n", 1)[-1]
            for prefix in (
                f"{type(self).__module__}.{type(self).__qualname__}: ",
                f"{type(self).__name__}: ",
            ):
                last = last.removeprefix(prefix)
            message = f"{last}\n{message}"
        super().__init__(message)


@dataclass(frozen=True)
class Finding:
    """One problem group of an input file (what `survlab check` lists): the file, the check that failed, the one-line
    message (names the file, the first cases and the fix) and every case / slide concerned (`cases`, for counts)."""

    file: str
    check: str
    message: str
    cases: tuple[str, ...] = ()


def report(findings: list[Finding] | None, finding: Finding) -> None:
    """A check's verdict: raise its message as a ValueError (a loader stops at the first problem) or, when a list is
    given (`survlab.data.audit`), append it and let the caller go on with the next check."""
    if findings is None:
        raise ValueError(finding.message)
    findings.append(finding)


def describe_number(value: object) -> str:
    """What a cell that should hold a positive number holds instead: 'empty', "'12,5' (decimal comma: write 12.5)",
    "'abc' (text)", '0 (zero)', '-3.0 (negative)', 'inf (not finite)'; '' when it is a positive finite number."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "empty"
    text = f"{value:g}" if isinstance(value, float) else str(value).strip()
    if not text or text.lower() in ("nan", "na", "n/a", "null", "none"):
        return "empty" if not text else f"{text!r} (missing)"
    try:
        x = float(text)
    except ValueError:
        if re.fullmatch(r"[+-]?\d{1,3},\d{3}", text):
            return (
                f"{text!r} (comma: write {text.replace(',', '')} if it separates thousands, "
                f"{text.replace(',', '.')} if it is a decimal comma)"
            )
        if re.fullmatch(r"[+-]?\d*,\d+", text):
            return f"{text!r} (decimal comma: write {text.replace(',', '.')})"
        return f"{text!r} (text, not a number)"
    if not math.isfinite(x):
        return f"{text} (not finite)"
    if x == 0:
        return f"{text} (zero)"
    if x < 0:
        return f"{text} (negative)"
    return ""


def delimiter_problem(path: str | Path, header: Sequence[str]) -> str:
    """'' or a one-line diagnosis when a CSV header read with ',' is really ';' / tab / '|'-separated (it is then
    ONE cell holding several names), e.g. "x.csv: the file is semicolon-separated (header 'case_id;slide_id'), ...".
    """
    if len(header) != 1:
        return ""
    for sep, name in _DELIMITERS.items():
        if len([p for p in str(header[0]).split(sep) if p.strip()]) > 1:
            shown = ",".join(str(h) for h in header)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            return (
                f"{path}: the file is {name}-separated (header {shown!r}), survlab reads comma-separated CSV; save "
                f"it with ',' as the separator and '.' as the decimal point (e.g. pandas to_csv, or Excel's "
                f"'CSV UTF-8 (Comma delimited)')"
            )
    return ""


def parse_problem(path: str | Path, err: Exception) -> str:
    """One-line message for a CSV that pandas could not parse: the delimiter diagnosis when that is the cause
    (a ';'-separated file with decimal commas has rows of several ','-fields), else the parser's reason."""
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeError, csv.Error):
        header = []
    detail = " ".join(str(err).split())[:120]
    return (
        delimiter_problem(path, header)
        or f"{path}: cannot parse as CSV ({detail}); fix or regenerate the file"
    )
