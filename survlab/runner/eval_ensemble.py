"""Fold ensembles (`survlab eval run=<sweep dir or its <model>/<cohort> dir> data=<cohort>`): the finished fold jobs
of one model x cohort (`fold_runs`, found as the sweep summary finds them), each scored on the cohort as
`run=<fold dir>` would be, then their ensemble (mean risk / mean class probabilities; survlab.report.ensemble) scored
by the folds' own objectives, with its protocol card (`evaluate_ensemble`).

    folds = fold_runs(Path("logs/multiruns/<sweep>/abmil/tcga_luad"))
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from survlab.runner.eval_external import evaluate_external
from survlab.runner.eval_run import load_run

log = logging.getLogger("survlab.runner.evaluate")  # one log channel for everything `survlab eval` does


def fold_runs(run_dir: Path) -> list[Path] | None:
    """The finished fold jobs of ONE model × cohort under `run_dir` (a sweep dir or its `<model>/<cohort>` dir), found
    by the sweep summary's job discovery (survlab.report.sweep_jobs.collect_jobs); None when `run_dir` holds no job
    dir.
    A job without DONE or without preprocessing.json is skipped with a warning naming it; one-line ValueError for
    fold jobs of several model × cohort groups, of several configurations (a swept result-changing key, e.g.
    model.task.lr, with several values; seeds and repeats of repeated k-fold are one configuration) or fewer than
    two usable folds."""
    from survlab.data.fitted_plan import FILENAME
    from survlab.report.sweep_jobs import collect_jobs

    jobs = collect_jobs(run_dir)
    if jobs.empty:
        return None
    usable: list[tuple[str, str, Path]] = []
    swept = [k for k in jobs.attrs.get("swept", []) if k in jobs.columns]
    config: dict[Path, tuple[str, ...]] = {}  # a job's values of the swept result-changing keys
    for i, (model, cohort, status, d) in enumerate(
        zip(jobs["model"], jobs["cohort"], jobs["status"], jobs["dir"], strict=True)
    ):
        if status != "done":
            log.warning("run=%s: fold job %s skipped: %s (no DONE marker)", run_dir, d, status)
        elif not (Path(d) / FILENAME).is_file():
            log.warning("run=%s: fold job %s skipped: no %s (retrain it to score it)", run_dir, d, FILENAME)
        else:
            usable.append((str(model), str(cohort), Path(d)))
            config[Path(d)] = tuple(str(jobs[k].iloc[i]) for k in swept)
    groups = sorted({(m, c) for m, c, _ in usable})
    if len(groups) > 1:
        m, c = groups[0]
        where = os.path.commonpath([str(d) for mm, cc, d in usable if (mm, cc) == (m, c)])
        raise ValueError(
            f"run={run_dir} holds fold jobs of {len(groups)} model x cohort groups "
            f"({', '.join(f'{mm}/{cc}' for mm, cc in groups)}); a fold ensemble is one model x cohort: narrow run= "
            f"to one group's dir, e.g. run={where}"
        )
    configs = sorted(set(config.values()))
    if len(configs) > 1:  # e.g. -m model.task.lr=1e-3,1e-4: the folds of two models, not one model's folds
        varying = {
            k: sorted({c[j] or "default" for c in configs})
            for j, k in enumerate(swept)
            if len({c[j] for c in configs}) > 1
        }
        raise ValueError(
            f"run={run_dir} holds the fold jobs of {len(configs)} configurations ("
            + "; ".join(f"{k}={', '.join(v)}" for k, v in varying.items())
            + "); a fold ensemble averages the folds of ONE configuration: copy the chosen configuration's fold "
            "dirs into a dir of their own and pass that as run="
        )
    if len(usable) < 2:
        raise ValueError(
            f"run={run_dir}: {len(usable)} finished fold job(s) with {FILENAME} (see the warnings); a fold ensemble "
            f"needs two or more" + (f": pass run={usable[0][2]} to score that one alone" if usable else "")
        )
    return [d for _, _, d in usable]


def evaluate_ensemble(
    run_dir: Path, folds: list[Path], options: dict[str, str], overrides: list[str], conformal: Any
) -> dict[str, Any]:
    """`survlab eval run=<sweep dir> data=<cohort>`: every fold run of `folds` scored on the cohort exactly as
    `survlab eval run=<fold dir> data=<cohort>` (its own preprocessing.json; outputs in `<fold dir>/eval/<cohort>/`),
    then their ensemble (survlab.report.ensemble: mean risk / mean class probabilities per patient), scored by the
    folds' own objectives (`Objective.score`, as every run's test metrics) -> `out` (default
    `<run_dir>/external/<cohort>/ensemble/`): metrics.json (the ensemble's `test/<metric>`, each fold's metrics,
    their mean and sd over the folds), predictions.csv (a fold's columns, averaged), protocol.json / .md."""
    from survlab.report.ensemble import RISK_AVERAGING, average_predictions, average_rows, fold_summary
    from survlab.report.groups import group_report
    from survlab.report.predictions import write_predictions
    from survlab.utils.outputs import write_json

    name = options.get("data")
    if not name:
        raise ValueError(
            f"run={run_dir} is a sweep: a fold ensemble scores another cohort; add data=<cohort>"
        )
    scored = next((o.split("=", 1)[1] for o in reversed(overrides) if o.startswith("name=")), name)
    out = Path(os.path.expanduser(options.get("out") or run_dir / "external" / scored / "ensemble")).resolve()
    per_fold: dict[str, dict[str, float]] = {}
    kept: list[dict[str, Any]] = []
    tables: list[pd.DataFrame] = []
    used: list[dict[str, Any]] = []
    for d in folds:
        cfg, ckpt, fitted, run_metrics = load_run(d)
        cfg.conformal = conformal
        keep: dict[str, Any] = {}
        fold_out = d / "eval" / scored
        log.info("fold ensemble: scoring %s on %s", d, scored)
        metrics = evaluate_external(
            cfg,
            ckpt,
            fitted,
            fold_out,
            d,
            name,
            overrides,
            options["outcomes"],
            options["missing_genes"],
            run_metrics,
            conformal=conformal,
            keep=keep,
        )
        label = str(d.relative_to(run_dir))
        per_fold[label] = {
            k: float(v)
            for k, v in metrics.items()
            if k.startswith("test/") and isinstance(v, int | float) and not isinstance(v, bool)
        }
        kept.append(keep)
        tables.append(pd.read_csv(fold_out / "predictions.csv", dtype={"case_id": str}))
        used.append(
            {
                "run_dir": str(d),
                "model": str(cfg.model.name),
                "cohort": fitted.cohort,
                "fold": fitted.fold,
                "seed": int(cfg.seed),
                "split_hash": fitted.split_hash,
                "checkpoint": ckpt,
                "outputs": str(fold_out),
            }
        )
    where = f"run={run_dir} data={scored} (fold ensemble)"
    card: dict[str, Any] = {
        "evaluation": "fold ensemble, external validation"
        if kept[0]["rows"] is not None
        else "fold ensemble, predictions only (the cohort has no outcomes)",
        "model": used[0]["model"],
        "trained_on": used[0]["cohort"],
        "evaluated_on": scored,
        "n_folds": len(folds),
        "averaging": RISK_AVERAGING,
        "preprocessing": "each fold's own preprocessing.json (fitted on its training patients), as its single-fold "
        "evaluation",
        "fold_runs": used,
    }
    if kept[0].get("availability_card"):  # the scored cohort lacks a modality for some patients
        card["availability"] = kept[0]["availability_card"]
    if kept[0].get("dropped"):  # data.missing=drop: the complete patients only (the same for every fold)
        card["dropped"] = kept[0]["dropped"]
    out.mkdir(parents=True, exist_ok=True)
    preds = average_predictions(tables, where)
    write_predictions(preds, out)
    write_json(out / "protocol.json", card)
    result: dict[str, Any] = {"evaluation": card["evaluation"], "model": card["model"], "cohort": scored}
    if kept[0]["rows"] is not None:
        task = kept[0]["task"]
        rows = {
            obj: average_rows(
                [k["rows"][obj] for k in kept], [k["case_ids"] for k in kept], f"{where}, objective {obj}"
            )
            if len(kept[0]["rows"][obj].get("index", ()))
            else {}
            for obj in task.objectives
        }
        for objective in task.objectives.values():  # fold 0's Cox baseline does not belong to the mean risk
            if hasattr(objective, "train_risk"):
                objective.train_risk = None
        ensemble = task.score_rows(rows)  # the folds' own metric code (Objective.score), on the averaged rows
        notes = task.metric_notes(rows, ensemble)
        fold_mean, fold_sd = fold_summary(per_fold)
        # per availability pattern (the cohort lacks a modality for some patients): the same group metric as a run's
        availability = group_report(
            task.objectives, rows, kept[0]["case_ids"], kept[0].get("availability") or {}
        )
        result.update(
            {
                "trained_on": card["trained_on"],
                "n_folds": len(folds),
                **{f"test/{k}": float(v) for k, v in ensemble.items()},
                **{f"test/{k}_note": v for k, v in notes.items()},
                "n_test": int(len(preds)),
                "folds": per_fold,
                "folds_mean": fold_mean,
                "folds_sd": fold_sd,
                "fold_runs": [u["run_dir"] for u in used],
                **({"availability": availability} if availability else {}),
            }
        )
        write_json(out / "metrics.json", result)
    else:
        result["n_predicted"] = int(len(preds))
    _ensemble_md(out / "protocol.md", card, result)
    print(f"survlab: FOLD ENSEMBLE of {len(folds)} {card['model']} models on {scored}: {out}\n")
    return result


def _ensemble_md(path: Path, card: dict[str, Any], metrics: dict[str, Any]) -> None:
    """The fold ensemble's protocol card: the fold runs used, how they are averaged, per-fold and ensemble metrics."""
    from survlab.data.external_absence import dropped_sentence
    from survlab.report.groups import availability_sentence

    lines = [
        f"# {card['evaluation']}",
        "",
        f"- model **{card['model']}** trained on **{card['trained_on']}**, {card['n_folds']} fold runs, evaluated "
        f"on **{card['evaluated_on']}**",
        *[
            f"  - fold {u['fold']} (split {str(u['split_hash'])[:12]}): `{u['run_dir']}`"
            for u in card["fold_runs"]
        ],
        f"- preprocessing: {card['preprocessing']}",
        f"- ensemble: {card['averaging']}",
        *([f"- {availability_sentence(card['availability'])}"] if card.get("availability") else []),
        *([f"- {dropped_sentence(card['dropped'])}"] if card.get("dropped") else []),
        "",
    ]
    folds = metrics.get("folds")
    if folds:
        keys = [
            k
            for k in metrics
            if k.startswith("test/") and k.count("/") == 1 and isinstance(metrics[k], float)
        ]
        lines += [
            "| metric | ensemble | folds mean ± sd |",
            "|---|---|---|",
            *[
                f"| {k} | {metrics[k]:.4f} | {metrics['folds_mean'].get(k, float('nan')):.4f} ± "
                f"{metrics['folds_sd'].get(k, float('nan')):.4f} |"
                for k in keys
            ],
        ]
    else:
        lines += ["No outcomes: predictions only (predictions.csv), no metrics."]
    path.write_text("\n".join(lines) + "\n")
