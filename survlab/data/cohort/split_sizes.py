"""Whether a fold's parts are large enough for what a run does with them: (patients, events) per part
(`part_sizes`), their one-line description, and the warning when the validation part is too small to pick a
checkpoint on or the test part has too few events for a log-rank test (`small_split_warning`).

    >>> describe_sizes({"train": (20, 12), "val": (4, 2), "test": (6, 1)})
    'train 20 patients / 12 events, val 4 / 2, test 6 / 1'
"""

from __future__ import annotations

from collections.abc import Sequence

#: Smallest inner-validation part to pick a checkpoint on (selection=best_val): with fewer than 20 patients or 10
#: events a C-index / loss on it moves by ~0.1 from one patient, so the "best" epoch is noise (a 5-fold split of 30
#: patients validates on ~4). A test part needs 2 events for a log-rank test / hazard ratio that says anything.
MIN_VAL_PATIENTS, MIN_VAL_EVENTS, MIN_TEST_EVENTS = 20, 10, 2


def part_sizes(
    parts: dict[str, Sequence[str]], event_of: dict[str, bool] | None
) -> dict[str, tuple[int, int]]:
    """Part name -> (patients, events) for `parts` (e.g. train / val / test ids); events 0 without `event_of`."""
    return {p: (len(ids), sum(bool(event_of[c]) for c in ids) if event_of else 0) for p, ids in parts.items()}


def describe_sizes(sizes: dict[str, tuple[int, int]], survival: bool = True) -> str:
    """'train 20 patients / 12 events, val 4 / 2, test 6 / 1' (without events for a cohort without survival)."""
    out = []
    for i, (part, (n, e)) in enumerate(sizes.items()):
        unit = (" patients" + (" / " if survival else "")) if i == 0 else (" / " if survival else "")
        out.append(f"{part} {n}{unit}{e if survival else ''}{' events' if survival and i == 0 else ''}")
    return ", ".join(out)


def small_split_warning(
    sizes: dict[str, tuple[int, int]], folds: int, selection: str = "best_val", survival: bool = True
) -> str | None:
    """One line when a fold's parts are too small for what the run does with them (MIN_VAL_PATIENTS /
    MIN_VAL_EVENTS for selection=best_val, MIN_TEST_EVENTS for the test log-rank), else None; names the counts and
    the fixes (fewer folds, a larger val_fraction, selection=last)."""
    why, fixes = [], [f"fewer folds (data.splits.folds, now {folds})"]
    n_val, e_val = sizes.get("val", (0, 0))
    if selection == "best_val" and (n_val < MIN_VAL_PATIENTS or (survival and e_val < MIN_VAL_EVENTS)):
        why.append(
            f"the checkpoint is picked on {n_val} validation patients"
            + (f" with {e_val} events" if survival else "")
            + f" (selection=best_val needs >= {MIN_VAL_PATIENTS} patients"
            + (f" and >= {MIN_VAL_EVENTS} events" if survival else "")
            + ")"
        )
        fixes += ["a larger data.splits.val_fraction", "selection=last"]
    if survival and sizes.get("test", (0, MIN_TEST_EVENTS))[1] < MIN_TEST_EVENTS:
        why.append(
            f"the test part has {sizes['test'][1]} event(s), too few for a log-rank test or hazard ratio "
            f"(>= {MIN_TEST_EVENTS})"
        )
    if not why:
        return None
    fix = fixes[0] if len(fixes) == 1 else f"{', '.join(fixes[:-1])} or {fixes[-1]}"
    return f"{describe_sizes(sizes, survival)}: {'; '.join(why)}; use {fix}"
