"""A finished run dir read back for scoring (`survlab eval`): its resolved config, selected checkpoint, saved
FoldPreprocessing and metrics (`load_run`), and what scoring rebuilds from them: the task with the checkpoint's
weights, a test-only Trainer, the config outputs are written with.

    cfg, ckpt, fitted, run_metrics = load_run(Path("logs/runs/<run>"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from survlab.utils.files import read_json


def load_run(run_dir: Path) -> tuple[DictConfig, str, Any, dict[str, Any]]:
    """-> (resolved config, selected checkpoint, its FoldPreprocessing (preprocessing.json), run metrics) of a
    finished run dir."""
    from survlab.config.check import moved_targets
    from survlab.data.fitted import read_preprocessing
    from survlab.data.fitted_plan import FILENAME

    if not run_dir.is_dir():
        raise ValueError(f"run={run_dir}: no such directory; pass the output dir of a finished survlab run")
    protocol_path, metrics_path = run_dir / "protocol.json", run_dir / "metrics.json"
    for path in (protocol_path, metrics_path):
        if not path.is_file():
            raise ValueError(f"run={run_dir}: no {path.name}; the run did not finish (see its FAILED / log)")
    protocol, metrics = read_json(protocol_path), read_json(metrics_path)
    cfg = OmegaConf.create(protocol["config"])
    moved_targets(cfg)  # a run written before the folders became the layers names classes by their old paths
    ckpt = metrics.get("checkpoint") or protocol.get("selected_checkpoint")
    if not ckpt:
        raise ValueError(f"run={run_dir}: metrics.json names no selected checkpoint")
    path = Path(ckpt)
    if not path.is_file():  # the run dir was moved: the checkpoint travels with it
        moved = run_dir / "checkpoints" / path.name
        if not moved.is_file():
            raise ValueError(f"run={run_dir}: selected checkpoint {ckpt} not found (nor {moved}); restore it")
        path = moved
    return cfg, str(path), read_preprocessing(run_dir / FILENAME), metrics


def _trainer(cfg: DictConfig, out: Path) -> Any:
    """A test-only Lightning Trainer with the run's accelerator and precision (one device, no loggers)."""
    import hydra

    node = cast(dict[str, Any], OmegaConf.to_container(cfg.trainer, resolve=True))
    if "ddp" in str(node.get("strategy", "")):
        node.pop("strategy")
    node.update(
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=str(out),
        callbacks=[],
    )
    return hydra.utils.instantiate(node)


def _task(cfg: DictConfig, dims: Any, fitted: Any) -> Any:
    """The run's OutcomeTask around a freshly built network (weights come from the checkpoint), with its training
    references (bins, training outcomes, a saved Cox Breslow baseline) from the FoldPreprocessing `fitted`."""
    from survlab.runner.build import build_task, instantiate_clean

    net = instantiate_clean(cfg.model.net, _partial_=True)(dims=dims)
    task = build_task(cfg, net)
    task.fit_references(fitted)
    return task


def _load_weights(task: Any, ckpt: str) -> None:
    """The checkpoint's weights (and its training references) into `task`, as Lightning's `ckpt_path` would."""
    import torch

    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    task.on_load_checkpoint(checkpoint)
    task.load_state_dict(checkpoint["state_dict"])


def _check_out(out: Path, root: Path) -> None:
    """Outputs never go into a cohort's folder (user data is read-only)."""
    if out.resolve().is_relative_to(Path(root).resolve()):
        raise ValueError(f"out={out} lies inside the cohort folder {root}; write the outputs elsewhere")


def _eval_cfg(cfg: DictConfig, data: DictConfig | None = None) -> DictConfig:
    """The run's config for writing outputs: another cohort's data node, no attention export."""
    out = cast(DictConfig, OmegaConf.create(OmegaConf.to_container(cfg, resolve=True)))
    if data is not None:
        out.data = data
    out.export_attention = False
    return out


def _with_overrides(node: DictConfig, overrides: list[str]) -> DictConfig:
    return cast(DictConfig, OmegaConf.merge(node, OmegaConf.from_dotlist(overrides))) if overrides else node
