"""External validation: after a run has selected and tested its model on the internal cohort, test the SAME weights
on every patient of another cohort (`external_data=<conf/data name>`), preprocessed with what was fitted on the
internal training patients, and write the outputs to `<run dir>/external/` (metrics.json says `"evaluation":
"external"`). Nothing is fitted, selected or tuned on the external cohort.

    python -m survlab.run experiment=mmdls_synthetic external_data=synthetic_petct_external
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from survlab.config.cohorts import compose_data_config
from survlab.data.external import setup_external
from survlab.report.outputs import write_run_outputs
from survlab.utils.outputs import write_json

log = logging.getLogger("survlab.run")


def _data_dirs() -> list[Path]:
    from survlab.config.search_path import group_dirs

    return group_dirs("data")


def external_data_config(cfg: DictConfig, name: str) -> DictConfig:
    """conf/data/<name>.yaml (composed by Hydra with its defaults parents), resolved in the context of the run's
    config (paths, fold, seed); one-line ValueError for an unknown name."""
    found = [d / f"{name}.yaml" for d in _data_dirs() if (d / f"{name}.yaml").is_file()]
    if not found:
        names = sorted({p.stem for d in _data_dirs() for p in d.glob("*.yaml") if not p.stem.startswith("_")})
        raise ValueError(f"external_data={name}: no conf/data/{name}.yaml; available: {', '.join(names)}")
    context = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    context.data = OmegaConf.to_container(compose_data_config(name), resolve=False)
    return OmegaConf.create(OmegaConf.to_container(context.data, resolve=True))


def scored_targets(task: Any, fitted: Any) -> tuple[list[str], list[str]]:
    """(endpoints, patient labels) the task's objectives score: what another cohort must provide (primary first)."""
    from survlab.tasks.objectives import ClassificationObjective, HorizonObjective, SurvivalObjective

    primary = fitted.endpoint.name if fitted.endpoint is not None else None
    endpoints: list[str] = []
    labels: list[str] = []
    for o in task.objectives.values():
        if isinstance(o, SurvivalObjective | HorizonObjective):
            endpoints.append(str(o.endpoint or primary))
        elif isinstance(o, ClassificationObjective) and o.level == "patient":
            labels.append(str(o.label))
    ordered = sorted(
        set(endpoints), key=lambda e: (e != primary, [x.name for x in fitted.endpoints].index(e))
    )
    return ordered, list(dict.fromkeys(labels))


def run_external(
    cfg: DictConfig, task: Any, datamodule: Any, trainer: L.Trainer, out_dir: Path, ckpt: str | None
) -> dict[str, Any]:
    """Test the task's current (selected) weights on `cfg.external_data`; write `out_dir/external/`; return the
    external metrics as `external/<metric>` keys for the internal metrics.json."""
    started = time.time()
    name = str(cfg.external_data)
    node = external_data_config(cfg, name)
    if node.get("name") == datamodule.name:
        raise ValueError(f"external_data={name} is the training cohort itself; name another cohort")
    ext = hydra.utils.instantiate(node, modalities=tuple(datamodule.modalities), _recursive_=False)
    setup_external(
        ext, datamodule, scored_on=scored_targets(task, datamodule)
    )  # only what the objectives score
    log.info(
        "external validation on %s (%d patients): the selected model, preprocessing of %s's training patients",
        name,
        len(ext.datasets["test"]),
        datamodule.name,
    )
    trainer.test(task, dataloaders=ext.test_dataloader(), verbose=False)
    ext_dir = out_dir / "external"
    ext_dir.mkdir(parents=True, exist_ok=True)
    ext_cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    ext_cfg.data = node
    ext_cfg.export_attention = False
    from survlab.report.km import training_cutoffs  # KM groups cut as in the internal run

    cutoffs = training_cutoffs(task, datamodule, cfg.get("km_groups", "median"))
    metrics = write_run_outputs(
        ext_cfg, ext_dir, task, ext, trainer, ckpt, wall_s=time.time() - started, km_cutoffs=cutoffs
    )
    metrics.update(evaluation="external", trained_on=datamodule.name, trained_fold=int(cfg.fold))
    write_json(ext_dir / "metrics.json", metrics)
    print(
        f"survlab: EXTERNAL validation on {name} of the model trained on {datamodule.name} fold {cfg.fold} "
        f"(nothing fitted or selected on {name}): {ext_dir}\n"
    )
    return {f"external/{k}": v for k, v in metrics.items() if k.startswith("test/") or k == "oracle_cindex"}


__all__ = ["external_data_config", "run_external"]
