"""Helpers of the one-line input errors every table reader raises: the first ids of a list (`_first_ids`: 'A, B, C
(+4 more)'), the raw spellings of a case id, a CSV's header, and the check that a header names no column twice.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd


def _first_ids(ids: Sequence[Any], k: int = 5) -> str:
    """'a, b, c (+n more)' for error messages."""
    ids = [str(i) for i in ids]
    more = f" (+{len(ids) - k} more)" if len(ids) > k else ""
    return ", ".join(ids[:k]) + more


def _spellings(raw: pd.Series, stripped: pd.Series, case_id: str) -> str:
    """ " (spelled 'T1', 'T1 ')" when `case_id` occurs in several raw spellings (whitespace variants), else ""."""
    spelled = sorted(set(raw[stripped == case_id].astype(str)))
    return f" (spelled {', '.join(repr(x) for x in spelled)})" if len(spelled) > 1 else ""


def _header(path: Path) -> list[str]:
    """The raw column names of a CSV (pandas renames a repeated name 'G' to 'G.1', so read them ourselves)."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        return next(csv.reader(f), [])


def _reject_repeated(
    names: Sequence[str], path: Path, what: str, fix: str, only: Sequence[str] | None = None
) -> None:
    """ValueError naming the `what` (column, gene group) that occurs twice in `names` after stripping
    (restricted to the names in `only` when given)."""
    counts = Counter(str(n).strip() for n in names)
    repeated = [n for n, k in counts.items() if k > 1 and n and (only is None or n in only)]
    if repeated:
        raise ValueError(
            f"{path}: {what}(s) {_first_ids(repeated)} appear more than once in the header; {fix}"
        )
