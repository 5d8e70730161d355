"""The README's headline results table, regenerated from the studies in `experiments/`.

    python scripts/results_table.py                 # rewrite the <!-- results:start --> ... <!-- results:end --> block
    python scripts/results_table.py --check         # exit 1 when README.md is out of date with experiments/
    python scripts/results_table.py --print         # print the block only

Per study `experiments/<study>/`: every sweep `summary.csv` under it (written by `survlab.cli.summarize` / a sweep: one row
per model × cohort, mean ± sample std over folds, pooled C-index, oracle / Bayes reference); a study without one is
tabulated from its jobs' `metrics.json` (one per completed fold; variant = the folder above `fold<k>`), mean ± sample
std over folds. The headline metric is the first of `survlab.report.sweep_table.PREFERRED_METRICS` the study reports (test
C-index for survival, balanced accuracy for labels). Studies with neither (speed, generation) are named below the
table with a pointer to their README. Rows are sorted by study, cohort, then mean (best first), then name: the table
depends only on the files' content, never on listing order.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from survlab.report.sweep_table import PREFERRED_METRICS

START, END = "<!-- results:start -->", "<!-- results:end -->"

__all__ = ["END", "START", "collect", "render", "replace_block", "main"]


def _headline(columns: list[str] | pd.Index, suffix: str = "") -> str | None:
    """The first preferred metric present as `<metric><suffix>` (e.g. test/cindex_mean)."""
    return next((m for m in PREFERRED_METRICS if f"{m}{suffix}" in columns), None)


def _from_summary(study: str, path: Path) -> list[dict]:
    """Rows of one sweep summary.csv."""
    table = pd.read_csv(path)
    metric = _headline(list(table.columns), "_mean")
    if metric is None or table.empty:
        return []
    rows = []
    for r in table.to_dict("records"):
        ref = (
            r.get("oracle_cindex_mean") if metric.startswith("test/cindex") else r.get("bayes_accuracy_mean")
        )
        rows.append(
            {
                "study": study,
                "variant": str(r.get("variant") or r["model"]),
                "cohort": str(r["cohort"]),
                "metric": metric,
                "mean": float(r[f"{metric}_mean"]),
                "std": float(r[f"{metric}_std"]),
                "folds": int(r.get(f"{metric}_n", r["n_folds"])),
                "failed": int(r.get("n_failed", 0) or 0),
                "pooled_cindex": float(r.get("pooled_cindex", math.nan)),
                "reference": float(ref) if ref is not None else math.nan,
            }
        )
    return rows


def _from_jobs(study: str, files: list[Path]) -> list[dict]:
    """Rows aggregated over per-fold job metrics.json files (status ok only)."""
    jobs = []
    for f in files:
        m = json.loads(f.read_text())
        if m.get("status", "ok") != "ok":
            continue
        parent = f.parent.parent
        variant = parent.parent.name if parent.name == str(m.get("cohort")) else parent.name
        jobs.append({"variant": variant, **m})
    frame = pd.DataFrame(jobs)
    metric = _headline(list(frame.columns)) if not frame.empty else None
    if metric is None:
        return []
    rows = []
    for (variant, cohort), g in frame.groupby(["variant", "cohort"], sort=True):
        values = g[metric].astype(float).dropna().to_numpy()
        ref_key = "oracle_cindex" if metric.startswith("test/cindex") else "bayes_accuracy"
        ref = g[ref_key].astype(float).mean() if ref_key in g else math.nan
        rows.append(
            {
                "study": study,
                "variant": str(variant),
                "cohort": str(cohort),
                "metric": metric,
                "mean": float(values.mean()) if len(values) else math.nan,
                "std": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
                "folds": len(values),
                "failed": 0,
                "pooled_cindex": math.nan,
                "reference": float(ref),
            }
        )
    return rows


def collect(experiments: Path) -> tuple[pd.DataFrame, list[str]]:
    """(one row per study × variant × cohort, names of studies with nothing to tabulate)."""
    rows: list[dict] = []
    untabulated = []
    for study_dir in sorted(p for p in Path(experiments).iterdir() if p.is_dir()):
        study = study_dir.name
        summaries = sorted(study_dir.rglob("summary.csv"))
        # a study with several sweeps names each by its folder (e.g. gse7390/sweep, gse7390/tabular_sweep)
        found = [
            r
            for s in summaries
            for r in _from_summary(
                study if len(summaries) == 1 else s.parent.relative_to(study_dir.parent).as_posix(), s
            )
        ]
        if not found:
            found = _from_jobs(study, sorted(study_dir.rglob("fold*/metrics.json")))
        if found:
            rows += found
        else:
            untabulated.append(study)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["_key"] = -frame["mean"].fillna(-np.inf)
        frame = frame.sort_values(["study", "cohort", "_key", "variant"], kind="mergesort").drop(
            columns="_key"
        )
    return frame.reset_index(drop=True), untabulated


def _f(x: float) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.3f}"


def render(frame: pd.DataFrame, untabulated: list[str]) -> str:
    """The Markdown block (without the markers)."""
    lines = [
        "Regenerated by `python scripts/results_table.py` from `experiments/` (do not edit by hand). Test metrics "
        "on the outer folds: mean ± sample std over folds; pooled = Harrell C of the out-of-fold predictions "
        "over the pairs within a fold; reference = oracle C-index (synthetic truth) or Bayes accuracy.",
        "",
        "| study | model | cohort | metric | test (mean ± std) | folds | pooled C-index | reference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in frame.to_dict("records"):
        folds = f"{r['folds']}" + (f" ({r['failed']} failed)" if r["failed"] else "")
        metric = r["metric"].removeprefix("test/")
        lines.append(
            f"| {r['study']} | `{r['variant']}` | {r['cohort']} | {metric} | {_f(r['mean'])} ± {_f(r['std'])} | "
            f"{folds} | {_f(r['pooled_cindex'])} | {_f(r['reference'])} |"
        )
    if untabulated:
        lines += [
            "",
            "Not tabulated (no sweep summary or per-fold metrics; see each README): "
            + ", ".join(f"`experiments/{s}/`" for s in untabulated)
            + ".",
        ]
    return "\n".join(lines)


def replace_block(text: str, block: str, where: str = "README.md") -> str:
    """`text` with the part between the START and END markers replaced by `block`."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(
            f"{where}: needs exactly one '{START}' line followed by one '{END}' line; add them where "
            "the results table should go"
        )
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python scripts/results_table.py", description=__doc__.splitlines()[0])
    p.add_argument("--experiments", default="experiments", help="the studies folder (default: experiments)")
    p.add_argument(
        "--readme", default="README.md", help="the file holding the marked block (default: README.md)"
    )
    p.add_argument("--check", action="store_true", help="exit 1 if the block is out of date; write nothing")
    p.add_argument("--print", dest="show", action="store_true", help="print the block; write nothing")
    a = p.parse_args(argv)
    experiments, readme = Path(a.experiments), Path(a.readme)
    try:
        if not experiments.is_dir():
            raise ValueError(f"{experiments}: no such folder; pass --experiments <folder of studies>")
        block = render(*collect(experiments))
        if a.show:
            print(block)
            return 0
        if not readme.is_file():
            raise ValueError(f"{readme}: no such file; pass --readme <file with the results markers>")
        text = readme.read_text()
        new = replace_block(text, block, str(readme))
    except ValueError as e:
        print(f"survlab: error: {e}", file=sys.stderr)
        return 2
    if a.check:
        if new != text:
            print(
                f"{readme}: results table out of date; run python scripts/results_table.py", file=sys.stderr
            )
            return 1
        print(f"{readme}: results table up to date")
        return 0
    if new != text:
        readme.write_text(new)
    print(f"{readme}: results table {'rewritten' if new != text else 'already up to date'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
