"""Post-hoc split-conformal sets of a run (`conformal.alphas=[0.1,0.2]`, `conformal.mondrian=true`): the runner's side.

    survlab train model=abmil data=synthetic_classification data.splits.calibration_fraction=0.2 conformal.alphas=[0.1,0.2]
    survlab eval run=<run dir> data=<other cohort> conformal.alphas=[0.1,0.2]

`check_conformal` (before training: a calibration part and an objective that gets sets), `calibration_rows` (the
inference pass over the calibration part; per-patient rows as `OutcomeTask` collects them in its test step),
`run_conformal` (after the test: calibrate on the calibration rows, sets for the test rows, written by
survlab.report.conformal) and `external_conformal` (`survlab eval` on another cohort: calibrated on the run's OWN
calibration part, the internal one, sets for every patient of the external cohort).

Objectives that get sets: patient-level classification objectives, and survival objectives with discrete-time hazards
(`loss: nll`: sets of time bins, censoring rule of survlab.metrics.conformal.known_bin). Cox / horizon / slide-level
objectives get none (named in the log).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from survlab.report.conformal import ConformalTarget, write_conformal

log = logging.getLogger(__name__)


def conformal_options(node: Any) -> tuple[list[float], bool]:
    """(alphas, mondrian) of a `conformal` config node (conf/config.yaml holds the defaults; None = off)."""
    if node is None:
        return [], False
    return [float(a) for a in node.get("alphas") or []], bool(node.get("mondrian"))


def default_conformal() -> DictConfig:
    """The `conformal` node of conf/config.yaml (its defaults: off)."""
    from survlab.config.search_path import PACKAGE_CONF_DIR

    node = OmegaConf.load(Path(PACKAGE_CONF_DIR) / "config.yaml").conformal
    assert isinstance(node, DictConfig)
    return node


def conformal_targets(task: Any, fitted: Any) -> tuple[list[ConformalTarget], list[str]]:
    """-> (the task's objectives that get sets, one line per objective that gets none and why)."""
    from survlab.tasks.objective_classification import ClassificationObjective
    from survlab.tasks.objective_survival import SurvivalObjective

    targets: list[ConformalTarget] = []
    skipped: list[str] = []
    for name, o in getattr(task, "objectives", {}).items():
        if isinstance(o, ClassificationObjective) and o.level == "patient":
            targets.append(ConformalTarget(name, "class", tuple(fitted.classes[str(o.label)])))
        elif isinstance(o, SurvivalObjective) and o.kind == "nll" and o.bin_edges is not None:
            k = len(o.bin_edges) - 1
            targets.append(
                ConformalTarget(
                    name, "survival_bin", tuple(f"bin{i}" for i in range(k)), np.asarray(o.bin_edges)
                )
            )
        else:
            skipped.append(
                f"{name} ({type(o).__name__}{'' if not hasattr(o, 'kind') else ', ' + str(o.kind)})"
            )
    return targets, skipped


def check_conformal(cfg: DictConfig, task: Any, datamodule: Any) -> None:
    """Before training: with `conformal.alphas` set, the fold needs a calibration part and the task an objective
    that gets sets (one-line ValueError naming the key and the fix)."""
    alphas, _ = conformal_options(cfg.get("conformal"))
    if not alphas:
        return
    if "calibration" not in datamodule.datasets:
        raise ValueError(
            f"conformal.alphas={alphas} needs a calibration part: set data.splits.calibration_fraction > 0 "
            f"(e.g. 0.2) or conformal.alphas=[]"
        )
    targets, skipped = conformal_targets(task, datamodule.fitted)
    if not targets:
        raise ValueError(
            f"conformal.alphas={alphas}: no objective of model={cfg.model.get('name')} gets conformal sets "
            f"({', '.join(skipped)}); sets need a patient-level classification objective or a discrete-time "
            f"(loss: nll) survival objective"
        )


def calibration_rows(task: Any, loader: Any, trainer: Any = None) -> dict[str, dict[str, np.ndarray]]:
    """The calibration part's rows: objective -> the arrays `Objective.collect` gives (index, probs, label / risk,
    hazard_logits, time, event), each patient once, sorted by index; from the one prediction pass
    (survlab.runner.predict), in the trainer's test precision."""
    from survlab.runner.predict import predict

    return predict(task, [loader], trainer=trainer).objectives


def _groups(datamodule: Any) -> Any:
    """The `data.subgroups` columns of the cohort table, indexed by row (= Batch.index)."""
    columns = list(getattr(datamodule, "subgroups", None) or [])
    table = datamodule.full_cohort.table
    return table[columns].astype(object).where(table[columns].notna(), "missing") if columns else None


def run_conformal(
    cfg: DictConfig, task: Any, datamodule: Any, out_dir: Path, trainer: Any = None
) -> dict[str, float]:
    """After `trainer.test`: calibrate on the fold's calibration part, sets for its test patients → `out_dir/conformal/`;
    returns `test/conformal/...` metrics ({} when conformal.alphas is empty)."""
    alphas, mondrian = conformal_options(cfg.get("conformal"))
    if not alphas:
        return {}
    targets, skipped = conformal_targets(task, datamodule.fitted)
    if skipped:
        log.info("conformal: no sets for %s", ", ".join(skipped))
    cal = calibration_rows(task, datamodule.calibration_dataloader(), trainer)
    metrics = write_conformal(
        out_dir,
        targets,
        cal,
        task.test_rows,
        datamodule.full_cohort.case_ids,
        alphas,
        mondrian,
        groups=_groups(datamodule),
        description={
            "calibration": f"calibration part of {datamodule.name} fold {datamodule.fold} (internal)",
            "scored": f"test part of {datamodule.name} fold {datamodule.fold}",
        },
    )
    log.info(
        "conformal sets (alphas %s%s): %s", alphas, ", Mondrian" if mondrian else "", out_dir / "conformal"
    )
    return {f"test/{k}": v for k, v in metrics.items()}


def external_conformal(
    cfg: DictConfig,
    node: Any,
    task: Any,
    ext: Any,
    out: Path,
    run_dir: Path,
    internal: Any = None,
    trainer: Any = None,
) -> dict[str, float]:
    """`survlab eval run=<run dir> data=<cohort> conformal.alphas=[...]` (after the test on `ext`): calibrated on the
    run's own calibration part (`internal`: its set-up data module, else rebuilt from the run's config and checked
    against its preprocessing.json), sets for the scored patients of `ext` → `out/conformal/`."""
    alphas, mondrian = conformal_options(node)
    if not alphas:
        return {}
    if internal is None:
        from survlab.runner.build import build_datamodule

        internal = build_datamodule(cfg)
        internal.prepare_data()
        internal.setup("fit")
        differ = internal.fitted.changed_keys(task_fitted_state(run_dir))
        if differ:
            raise ValueError(
                f"conformal: run={run_dir}: the training cohort's files or split changed since the run "
                f"({', '.join(differ)} differ from preprocessing.json); its calibration part cannot be rebuilt"
            )
    if "calibration" not in internal.datasets:
        raise ValueError(
            f"conformal.alphas={alphas}: run={run_dir} has no calibration part (it was trained without "
            f"data.splits.calibration_fraction); train it with data.splits.calibration_fraction=0.2"
        )
    targets, _ = conformal_targets(task, internal.fitted)
    cal = calibration_rows(task, internal.calibration_dataloader(), trainer)
    metrics = write_conformal(
        out,
        targets,
        cal,
        task.test_rows,
        ext.full_cohort.case_ids,
        alphas,
        mondrian,
        groups=_groups(ext),
        calibration_case_ids=internal.full_cohort.case_ids,
        description={
            "calibration": f"calibration part of {internal.name} fold {internal.fold} (internal, run {run_dir})",
            "scored": f"every scored patient of {ext.name} (external)",
        },
    )
    return {f"test/{k}": v for k, v in metrics.items()}


def task_fitted_state(run_dir: Path) -> dict[str, Any]:
    """The run's saved FoldPreprocessing (preprocessing.json) as JSON."""
    from survlab.data.fitted import read_preprocessing
    from survlab.data.fitted_plan import FILENAME

    state: dict[str, Any] = read_preprocessing(run_dir / FILENAME).to_json()
    return state


def parse_cli(items: Sequence[str]) -> DictConfig:
    """`conformal.<key>=<value>` command-line items of `survlab eval` over the defaults of conf/config.yaml (an
    evaluation computes sets only when its own command line asks for them)."""
    defaults = default_conformal()
    merged = OmegaConf.merge(defaults, OmegaConf.from_dotlist([i[len("conformal.") :] for i in items]))
    unknown = sorted(set(merged) - set(defaults))
    if unknown:
        raise ValueError(f"conformal.{unknown[0]}: unknown option; allowed: {', '.join(sorted(defaults))}")
    assert isinstance(merged, DictConfig)
    return merged


__all__ = [
    "calibration_rows",
    "check_conformal",
    "conformal_options",
    "conformal_targets",
    "external_conformal",
    "parse_cli",
    "run_conformal",
]
