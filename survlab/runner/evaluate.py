"""Apply a trained run's selected model to a cohort: its own test fold again, or every patient of another cohort
(external validation), or — for a cohort without outcomes — predictions only. Nothing is fitted, selected or tuned
on the scored patients: the preprocessing is the run's `preprocessing.json` (fitted on its training patients).

    survlab eval run=<run dir>                                   # the run's own test fold, again
    survlab eval run=<run dir> data=<cohort> [out=<dir>]         # external validation
    survlab eval run=<run dir> data=<cohort> data.root=/data/x outcomes=false missing_genes=mean
    survlab eval run=<sweep dir or its <model>/<cohort> dir> data=<cohort>   # every fold + their ensemble

(`survlab eval ...` is the same command.) A training run's `external_data=<cohort>` is a call of the same path
(`run_external` -> `score_external`), written to `<run dir>/external/`: the same files and protocol card.

Outputs go to `out` (default `<run dir>/eval/<cohort>/`, never into the cohort's folder): predictions.csv, and with
outcomes metrics.json, km.png, protocol.json / protocol.md naming both the training and the scored cohort.

Patients of the scored cohort lacking a modality follow ITS `data.missing` (survlab.data.external_absence): keep
scores them all, marked absent as in training, with metrics per availability pattern, when the model can take the
absence (else a one-line error before any prediction); drop scores the complete patients only, counted in the card.

With a sweep dir (`run=` holds the finished fold jobs of one model × cohort, found as the sweep summary finds them),
every fold is scored as `run=<fold dir>` would be (its own preprocessing; `<fold dir>/eval/<cohort>/`), then their
ensemble (mean risk / mean class probabilities; survlab.report.ensemble) into `out` (default
`<run>/external/<cohort>/ensemble/`): metrics.json with each fold's metrics, their mean ± sd and the ensemble's.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from survlab.runner.conformal import parse_cli, run_conformal
from survlab.runner.eval_ensemble import evaluate_ensemble, fold_runs
from survlab.runner.eval_external import evaluate_external
from survlab.runner.eval_run import (
    _check_out,
    _eval_cfg,
    _load_weights,
    _task,
    _trainer,
    _with_overrides,
    load_run,
)

OPTIONS = ("run", "data", "out", "outcomes", "missing_genes")
USAGE = (
    "usage: survlab eval run=<run dir | sweep dir> [data=<cohort>] [out=<dir>] [outcomes=auto|true|false] "
    "[missing_genes=error|mean] [conformal.alphas=[0.1,0.2] conformal.mondrian=true] [data.<key>=<value> ...]"
)


# ---------------------------------------------------------------------------------------------------- arguments
def parse_args(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """`key=value` arguments -> ({option: value}, [data.* overrides]); one-line ValueError for anything else."""
    options: dict[str, str] = {"outcomes": "auto", "missing_genes": "error"}
    overrides: list[str] = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ValueError(f"argument {arg!r} is not key=value; {USAGE}")
        if key.startswith("data."):
            overrides.append(f"{key[len('data.') :]}={value}")
        elif key in OPTIONS or key.startswith("conformal."):  # conformal.*: survlab.runner.conformal
            options[key] = value
        else:
            raise ValueError(f"unknown argument {key!r}; {USAGE}")
    if "run" not in options:
        raise ValueError(f"run=<run dir> is required; {USAGE}")
    if options["outcomes"] not in ("auto", "true", "false"):
        raise ValueError(f"outcomes={options['outcomes']}: use auto, true or false")
    if options["missing_genes"] not in ("error", "mean"):
        raise ValueError(f"missing_genes={options['missing_genes']}: use error (default) or mean")
    return options, overrides


# ---------------------------------------------------------------------------------------------------- own test fold
def _compare_state(state: dict[str, Any], now: Any, where: str) -> None:
    """The preprocessing `now` (a FoldPreprocessing) refitted on the run's training patients must equal the saved
    `state`: the cohort files or split changed since training otherwise (one-line ValueError naming what differs)."""
    keys = now.changed_keys(state)
    if keys:
        raise ValueError(
            f"{where}: the cohort's files or split changed since the run ({', '.join(keys)} differ from "
            f"preprocessing.json); restore them, or score the new files as another cohort (data.name=<new name>)"
        )


def evaluate_own_fold(
    cfg: DictConfig, ckpt: str, fitted: Any, out: Path, run_dir: Path, overrides: list[str]
) -> dict[str, Any]:
    """The run's own test fold, preprocessed exactly as in the run: reproduces its test metrics and predictions."""
    import lightning as L

    from survlab.report.outputs import write_run_outputs
    from survlab.runner.build import build_datamodule
    from survlab.runner.predict import attention_spec, run_test_pass

    started = time.time()
    cfg.data = _with_overrides(cfg.data, overrides)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    dm = build_datamodule(cfg)  # table networks read what the cohort has, as in the run
    dm.prepare_data()
    dm.setup("test")
    _check_out(out, dm.root)
    _compare_state(fitted.to_json(), dm.fitted, f"run={run_dir} data={dm.name} fold {dm.fold}")
    task = _task(cfg, dm.dims, dm.fitted)
    _load_weights(task, ckpt)
    out.mkdir(parents=True, exist_ok=True)
    trainer = _trainer(cfg, out)
    eval_cfg = _eval_cfg(cfg)
    # the one prediction pass: the test rows, and the training patients' rows (Cox baseline, KM cutoffs)
    predictions = run_test_pass(task, trainer, datamodule=dm, attention=attention_spec(eval_cfg, dm))
    metrics = write_run_outputs(
        eval_cfg, out, task, dm, trainer, ckpt, wall_s=time.time() - started, predictions=predictions
    )
    metrics.update(run_conformal(cfg, task, dm, out, trainer))  # cfg.conformal: set by evaluate() from argv
    metrics.update(evaluation="internal test fold (re-scored)", run_dir=str(run_dir))
    return metrics


# ---------------------------------------------------------------------------------------------------- entry
def evaluate(argv: list[str]) -> dict[str, Any]:
    """Parse `argv`, score, write outputs; -> the metrics (or the predictions-only summary)."""
    from survlab.utils.malloc import reuse_from_env
    from survlab.utils.outputs import write_json

    reuse_from_env()  # as survlab.run: reuse freed batch buffers (SURVLAB_MALLOC_REUSE=0: off)
    options, overrides = parse_args(argv)
    run_dir = Path(os.path.expanduser(options["run"])).resolve()
    if run_dir.is_dir() and not (run_dir / "protocol.json").is_file():  # a sweep dir: the fold ensemble
        folds = fold_runs(run_dir)
        if folds is not None:
            conformal = parse_cli([f"{k}={v}" for k, v in options.items() if k.startswith("conformal.")])
            return evaluate_ensemble(run_dir, folds, options, overrides, conformal)
    cfg, ckpt, fitted, run_metrics = load_run(run_dir)
    cfg.conformal = parse_cli([f"{k}={v}" for k, v in options.items() if k.startswith("conformal.")])
    name = options.get("data") or str(cfg.data.name)
    own = name == str(cfg.data.name) and not any(o.startswith("name=") for o in overrides)
    if own and options["outcomes"] == "false":
        raise ValueError("outcomes=false applies to another cohort; the run's own test fold has outcomes")
    scored = next((o.split("=", 1)[1] for o in reversed(overrides) if o.startswith("name=")), name)
    out = Path(os.path.expanduser(options.get("out") or run_dir / "eval" / scored)).resolve()
    if not own:  # writes its own metrics.json
        return evaluate_external(
            cfg,
            ckpt,
            fitted,
            out,
            run_dir,
            name,
            overrides,
            options["outcomes"],
            options["missing_genes"],
            run_metrics,
            conformal=cfg.conformal,
        )
    metrics = evaluate_own_fold(cfg, ckpt, fitted, out, run_dir, overrides)
    # facts of the model (its selection), not of this evaluation's trainer
    metrics.update({k: run_metrics[k] for k in ("val/best", "epochs_trained") if k in run_metrics})
    write_json(out / "metrics.json", metrics)
    return metrics
