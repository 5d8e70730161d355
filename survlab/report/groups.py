"""Test metrics per patient group: per site of site-preserved folds (`site_report`, metrics.json "sites") and per
modality-availability pattern (`availability_report`, metrics.json "availability"), both from ONE function,
`group_report`; and the sweep side: one row per job x group (`job_group_table`, sites.csv / availability.csv) and
the per-pattern fold summary of a sweep (`availability_summary`, summary.md "Metrics per availability pattern").

A group's record: {n, n_events (survival), <objective>/cindex (Harrell's C of the group's patients) |
<objective>/auroc (the objective's own AUROC), status}; a group with too few events / patients per class, or whose
metric is undefined (no comparable pair), gets None and a status saying why (its number would be noise, not a
measurement).

Availability patterns come from the data module (`datamodule.availability`: case_id -> "wsi+genomics" / "wsi" /
"genomics" / "none", over the modalities the data config provides; empty when every patient has them all).

Example:
    >>> availability_report(task.objectives, rows.objectives, datamodule)["wsi"]["os/cindex"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survlab.metrics.survival import harrell_cindex
from survlab.tasks.objective_survival import SurvivalObjective

__all__ = [
    "AVAILABILITY_PARTS",
    "MIN_SITE_EVENTS",
    "availability_card",
    "availability_markdown",
    "availability_report",
    "availability_sentence",
    "availability_summary",
    "group_report",
    "job_group_table",
    "site_report",
]

#: a group's test patients need at least this many events (survival) / patients of each of 2 classes
#: (classification) for its metric to be reported as a number; fewer is reported as such
MIN_SITE_EVENTS = 3
#: the split parts the protocol card counts availability patterns in (calibration only when the split has one)
AVAILABILITY_PARTS = ("train", "val", "test", "calibration")


def _subset(rows: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[keep] for k, v in rows.items()}


def group_report(
    objectives: Mapping[str, Any],
    rows: Mapping[str, dict[str, np.ndarray]],
    case_ids: Sequence[str] | np.ndarray,
    group_of: Mapping[str, str],
    min_events: int = MIN_SITE_EVENTS,
) -> dict[str, dict[str, Any]]:
    """Test metrics per group of patients -> {group: {n, n_events, <objective>/cindex | <objective>/auroc: float |
    None, status: "ok" | why not}} (module doc); {} when `group_of` is empty.

    `rows`: objective -> the pass's rows (`index` [n] = row of `case_ids`, risk / time / event [n] or probs [n, C] /
    label [n]); `case_ids` [N]: the scored cohort's table order; `group_of`: case_id -> group (a patient not in it is
    group "?"). Survival: Harrell's C of the group's patients, None below `min_events` events; classification: the
    objective's AUROC, None unless two classes have >= `min_events` patients each."""
    if not group_of:
        return {}
    ids = np.asarray(case_ids, dtype=object).astype(str)
    out: dict[str, dict[str, Any]] = {}
    for name, objective in objectives.items():
        part = rows.get(name, {})
        if not len(part.get("index", ())) or getattr(objective, "level", "patient") != "patient":
            continue
        groups = np.asarray([group_of.get(str(c), "?") for c in ids[part["index"].astype(int)]], dtype=object)
        for group in sorted(set(groups.tolist())):
            keep = groups == group
            rec = out.setdefault(group, {"n": int(keep.sum()), "status": "ok"})
            sub = _subset(part, keep)
            if isinstance(objective, SurvivalObjective) or "event" in sub and "risk" in sub:
                n_events = int(np.asarray(sub["event"], dtype=bool).sum())
                rec.setdefault("n_events", n_events)
                enough, why = n_events >= min_events, f"too few events ({n_events} < {min_events})"
                value = harrell_cindex(sub["risk"], sub["time"], sub["event"]) if enough else None
                if value is not None and not math.isfinite(
                    value
                ):  # e.g. every event at the group's last time
                    enough, why = (
                        False,
                        f"no comparable pair ({n_events} events, none before another patient's time)",
                    )
                rec[f"{name}/cindex"] = None if value is None or not math.isfinite(value) else float(value)
            elif "label" in sub and "probs" in sub:
                labels = np.asarray(sub["label"])
                counts = (
                    np.bincount(labels[labels >= 0].astype(int)) if (labels >= 0).any() else np.zeros(1, int)
                )
                present = np.sort(counts[counts > 0])
                enough = len(present) >= 2 and int(present[-2]) >= min_events
                why = f"too few patients per class ({present.tolist()}; needs 2 classes of >= {min_events})"
                auroc = objective.score(sub).get("auroc") if enough else None
                if enough and (auroc is None or not math.isfinite(auroc)):
                    enough, why = False, "AUROC undefined on these patients"
                rec[f"{name}/auroc"] = None if auroc is None or not math.isfinite(auroc) else float(auroc)
            else:
                continue
            if not enough:
                rec["status"] = why
    return out


def _cohort_case_ids(datamodule: Any) -> np.ndarray:
    return datamodule.full_cohort.table["case_id"].astype(str).to_numpy()


def site_report(
    objectives: Mapping[str, Any],
    rows: Mapping[str, dict[str, np.ndarray]],
    datamodule: Any,
    min_events: int = MIN_SITE_EVENTS,
) -> dict[str, dict[str, Any]]:
    """Per-site test metrics of site-preserved folds (`datamodule.split_groups`: case_id -> site): `group_report`
    by site; {} for random folds."""
    group_of = getattr(datamodule, "split_groups", None) or {}
    if not group_of:
        return {}
    return group_report(objectives, rows, _cohort_case_ids(datamodule), group_of, min_events)


def availability_report(
    objectives: Mapping[str, Any],
    rows: Mapping[str, dict[str, np.ndarray]],
    datamodule: Any,
    min_events: int = MIN_SITE_EVENTS,
) -> dict[str, dict[str, Any]]:
    """Test metrics per availability pattern (`datamodule.availability`: case_id -> pattern): `group_report` by
    pattern; {} when every patient has every modality the data config provides."""
    group_of = getattr(datamodule, "availability", None) or {}
    if not group_of:
        return {}
    return group_report(objectives, rows, _cohort_case_ids(datamodule), group_of, min_events)


def availability_card(datamodule: Any) -> dict[str, Any] | None:
    """The protocol card's `availability`: {missing: the data.missing mode, patterns: [...], counts: {part: {pattern:
    n patients}}} per part of the fold's split (train / val / test [/ calibration], parts with patients; an
    external cohort: test; a data module without a split: "all"); None when `datamodule.availability` is empty."""
    availability: Mapping[str, str] = getattr(datamodule, "availability", None) or {}
    if not availability:
        return None
    split = getattr(datamodule, "split", None)
    parts: dict[str, list[str]] = {}
    if split is not None:
        for p in AVAILABILITY_PARTS:
            ids = list(split.part(p))
            if ids or p == "test":  # an external cohort's split: every patient in test
                parts[p] = ids
    else:
        parts["all"] = list(availability)
    patterns = sorted(set(availability.values()), key=lambda p: (-p.count("+"), p))
    counts = {}
    for p, ids in parts.items():
        seen = pd.Series([availability.get(str(c), "?") for c in ids], dtype=object).value_counts()
        counts[p] = {k: int(seen[k]) for k in [*patterns, "?"] if k in seen}
    return {"missing": str(getattr(datamodule, "missing", "error")), "patterns": patterns, "counts": counts}


def availability_sentence(card: Mapping[str, Any]) -> str:
    """protocol.md's one sentence on the availability patterns (`availability_card`)."""
    parts = "; ".join(
        f"{p}: " + ", ".join(f"{n} {k}" for k, n in c.items()) for p, c in card["counts"].items()
    )
    what = {
        "keep": "patients missing a modality are kept, the absent modality marked for the network",
        "drop": "patients missing a modality are left out",
    }.get(str(card["missing"]), "a patient missing a modality is an error")
    return (
        f"Modality availability (data.missing={card['missing']}: {what}); patients per pattern — {parts}. "
        f"Test metrics per pattern: metrics.json `availability`."
    )


# --------------------------------------------------------------------------------------------- sweep side
def _read_json(path: Path) -> dict[str, Any]:
    try:
        out = json.loads(path.read_text())
        return out if isinstance(out, dict) else {}
    except (OSError, ValueError):
        return {}


def job_group_table(jobs: pd.DataFrame, key: str, column: str) -> pd.DataFrame:
    """One row per completed job (`collect_jobs`) x group of its metrics.json `key` ("sites", "availability"):
    cohort, model, variant, repeat, fold, seed, `column` (the group), n, n_events, status and the group's metrics
    (None = not measurable, see status). Empty when no job has the key."""
    rows = []
    if jobs.empty:
        return pd.DataFrame()
    for r in jobs[jobs["status"] == "done"].to_dict("records"):
        groups = _read_json(Path(r["dir"]) / "metrics.json").get(key) or {}
        for group, rec in sorted(groups.items()) if isinstance(groups, dict) else []:
            base = {k: r.get(k) for k in ("cohort", "model", "variant", "repeat", "fold", "seed")}
            rows.append({**base, column: str(group), **rec})
    return pd.DataFrame(rows)


def _value_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.endswith(("/cindex", "/auroc"))]


def availability_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per cohort x model (variant) x pattern of `job_group_table(jobs, "availability", "pattern")`: n_folds, the
    patients of the pattern over those folds (`n`, summed) and events (`n_events`), and per metric column the fold
    mean / sample sd (ddof=1) over the folds where it is a number (`<metric>_mean`, `<metric>_std`, `<metric>_n`)."""
    if rows.empty:
        return pd.DataFrame()
    values = _value_columns(rows)
    out = []
    for (cohort, variant, pattern), g in rows.groupby(["cohort", "variant", "pattern"], sort=True):
        rec: dict[str, Any] = {
            "cohort": cohort,
            "model": g["model"].iloc[0],
            "variant": variant,
            "pattern": pattern,
            "n_folds": int(len(g)),
            "n": int(pd.to_numeric(g["n"], errors="coerce").fillna(0).sum()),
        }
        if "n_events" in g:
            ev = pd.to_numeric(g["n_events"], errors="coerce")
            rec["n_events"] = int(ev.sum()) if ev.notna().any() else math.nan
        for c in values:
            v = pd.to_numeric(g[c], errors="coerce").dropna().to_numpy(dtype=float)
            rec[f"{c}_mean"] = float(v.mean()) if len(v) else math.nan
            rec[f"{c}_std"] = float(v.std(ddof=1)) if len(v) >= 2 else math.nan
            rec[f"{c}_n"] = int(len(v))
        out.append(rec)
    frame = pd.DataFrame(out)
    order = {p: (-str(p).count("+"), str(p)) for p in frame["pattern"]}
    return frame.sort_values(
        ["cohort", "pattern", "variant"], key=lambda s: s.map(order) if s.name == "pattern" else s
    ).reset_index(drop=True)


def availability_markdown(summary: pd.DataFrame) -> list[str]:
    """summary.md's "Metrics per availability pattern" section of `availability_summary` ([] when empty): per cohort
    x pattern x model the fold mean ± sd of each C-index / AUROC, the folds it is a number in, and n."""
    if summary.empty:
        return []
    metrics = [c[: -len("_mean")] for c in summary.columns if c.endswith(("/cindex_mean", "/auroc_mean"))]

    def cell(r: dict[str, Any], m: str) -> str:
        mean, sd, n = r[f"{m}_mean"], r[f"{m}_std"], r[f"{m}_n"]
        if not np.isfinite(mean):
            return "–"
        return f"{mean:.3f} ± {sd:.3f} ({int(n)})" if np.isfinite(sd) else f"{mean:.3f} ({int(n)})"

    lines = [
        "## Metrics per availability pattern",
        "",
        "Test patients grouped by the modalities they have (`datamodule.availability`, over the modalities the data "
        "config provides, so every model of a cohort is read on the same patterns). Fold mean ± sample sd (folds "
        "where the metric is a number, i.e. enough events / patients per class); n: the pattern's test patients "
        "over the folds. All rows per fold: availability.csv.",
        "",
        "| cohort | pattern | model | folds | n | events | " + " | ".join(metrics) + " |",
        "|" + "---|" * (6 + len(metrics)),
    ]
    for r in summary.to_dict("records"):
        ev = r.get("n_events")
        ev_txt = "–" if ev is None or (isinstance(ev, float) and math.isnan(ev)) else str(int(ev))
        lines.append(
            f"| {r['cohort']} | {r['pattern']} | `{r['variant']}` | {r['n_folds']} | {r['n']} | {ev_txt} | "
            + " | ".join(cell(r, m) for m in metrics)
            + " |"
        )
    lines.append("")
    return lines
