"""Choose the table models' defaults on GSE7390 from INNER VALIDATION ONLY (the test folds are never evaluated).

For each (model, setting) and outer fold 0..4 this fits on the fold's training patients with survlab's own
protocol (early stopping and checkpoint choice on the inner validation split) and records the selected checkpoint's
inner-validation Harrell C-index (`val/cindex` of the best epoch). It never calls `trainer.test`. Output: one CSV row
per (model, setting, fold) and a table of the mean over folds, ranked per model.

    nice -n 10 python experiments/gse7390/defaults_study.py --out experiments/gse7390/defaults_study
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import hydra
import lightning as L
import pandas as pd

from survlab.config.check_task import resolve_auto
from survlab.runner.build import build_callbacks, build_loggers, build_task, finish_loggers, instantiate_clean
from survlab.runner.modalities import job_modalities

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: tests.helpers
from tests.helpers.runs import compose_config  # noqa: E402

QUIET = [
    "trainer.enable_progress_bar=false",
    "callbacks.rich_progress_bar=null",
    "callbacks.lr_monitor=null",
    "logger=csv",
    "data=gse7390",
]
LONG = ["trainer.max_epochs=100", "callbacks.early_stopping.patience=20", "data.batch_size=32"]

#: setting name -> overrides (the first of each model = today's defaults, for reference); round 2 (`*_r2`) explores
#: around round 1's best settings
COX = ["model.net.output=risk", "model.task.loss=cox"]
#: the Cox MLP's first defaults (before this study), spelled out so the grid stays fixed when the yaml changes
FIRST = ["model.net.hidden=[32]", "model.net.dropout=0.1", "model.task.weight_decay=1e-4"]
#: the SNN recipe's first settings (20 epochs, patience 10), likewise
SNN_FIRST = ["trainer.max_epochs=20", "callbacks.early_stopping.patience=10"]
GRID: dict[str, dict[str, list[str]]] = {
    "clinical_mlp": {
        "current": [],
        "long_lr1e-3_h64": [*LONG],
        "long_lr3e-3_h16_d0.1": [
            *LONG,
            "model.task.lr=3e-3",
            "model.net.hidden=[16]",
            "model.net.dropout=0.1",
        ],
        "long_lr1e-3_h16_d0.1_cox": [
            *LONG,
            "model.net.hidden=[16]",
            "model.net.dropout=0.1",
            "model.net.output=risk",
            "model.task.loss=cox",
        ],
        "long_lr3e-3_h64_wd1e-3": [*LONG, "model.task.lr=3e-3", "model.task.weight_decay=1e-3"],
        "r2_cox_lr3e-3_h16_d0.1": [
            *LONG,
            *COX,
            "model.net.hidden=[16]",
            "model.net.dropout=0.1",
            "model.task.lr=3e-3",
        ],
        "r2_cox_lr1e-3_h32_wd1e-3": [*LONG, *COX, "model.net.hidden=[32]", "model.task.weight_decay=1e-3"],
        "r2_cox_lr1e-3_h16_d0.1_b64": [
            *LONG,
            *COX,
            "model.net.hidden=[16]",
            "model.net.dropout=0.1",
            "data.batch_size=64",
        ],
    },
    "coxmlp": {
        "current": [*FIRST],
        "long_lr1e-3_h32": [*FIRST, *LONG],
        "long_lr3e-3_h32": [*FIRST, *LONG, "model.task.lr=3e-3"],
        "long_lr1e-3_h16_d0.3": [*FIRST, *LONG, "model.net.hidden=[16]", "model.net.dropout=0.3"],
        "long_lr1e-3_h64_wd1e-3": [*FIRST, *LONG, "model.net.hidden=[64]", "model.task.weight_decay=1e-3"],
        "long_lr1e-3_linear_wd1e-2": [*FIRST, *LONG, "model.net.hidden=[]", "model.task.weight_decay=1e-2"],
        "r2_lr1e-3_h64_wd1e-2": [*FIRST, *LONG, "model.net.hidden=[64]", "model.task.weight_decay=1e-2"],
        "r2_lr1e-3_h64_wd1e-3_d0.3": [
            *FIRST,
            *LONG,
            "model.net.hidden=[64]",
            "model.task.weight_decay=1e-3",
            "model.net.dropout=0.3",
        ],
        "r2_lr1e-3_h64_wd1e-3_b64": [
            *FIRST,
            *LONG,
            "model.net.hidden=[64]",
            "model.task.weight_decay=1e-3",
            "data.batch_size=64",
        ],
    },
    # coxnet: scored on the inner validation split, which select=cv never sees (the penalty is chosen by CV over
    # the training patients); no epochs
    "coxnet": {
        "l1_0.5": ["model.estimator.l1_ratio=0.5"],
        "l1_1.0_lasso": ["model.estimator.l1_ratio=1.0"],
        "l1_0.1": ["model.estimator.l1_ratio=0.1"],
        "l1_0.01_ridge_like": ["model.estimator.l1_ratio=0.01"],
        "l1_0.01_ridge_like_min0.001": [
            "model.estimator.l1_ratio=0.01",
            "model.estimator.alpha_min_ratio=0.001",
        ],
    },
    "snn": {
        "recipe": ["experiment=snn_gse7390", *SNN_FIRST],
        "long_recipe": ["experiment=snn_gse7390", *LONG],
        "long_h32_lr3e-4": ["experiment=snn_gse7390", *LONG, "model.task.lr=3e-4"],
        "r2_long_recipe_lr3e-3": ["experiment=snn_gse7390", *LONG, "model.task.lr=3e-3"],
        "r2_long_recipe_b8": [
            "experiment=snn_gse7390",
            "trainer.max_epochs=100",
            "callbacks.early_stopping.patience=20",
        ],
        "r2_long_recipe_wd1e-2": ["experiment=snn_gse7390", *LONG, "model.task.weight_decay=1e-2"],
        "long_h64x1_cox": [
            "experiment=snn_gse7390",
            *LONG,
            "model.net.hidden=[64]",
            "model.net.output=risk",
            "model.task.loss=cox",
        ],
    },
}


def fit_only(overrides: list[str], out_dir: Path) -> tuple[float, int]:
    """Fit one job (no test) -> (selected checkpoint's inner-validation score, epochs trained)."""
    cfg = compose_config(out_dir, overrides)
    resolve_auto(cfg)
    L.seed_everything(cfg.seed, workers=True)
    net_cls = hydra.utils.get_class(cfg.model.net._target_)
    dm = instantiate_clean(
        cfg.data, modalities=job_modalities(net_cls, cfg.data, cfg.model.net), _recursive_=False
    )
    dm.prepare_data()
    dm.setup("fit")
    net = instantiate_clean(cfg.model.net, _partial_=True)(dims=dm.dims)
    task = build_task(cfg, net)
    task.fit_references(dm)
    loggers = build_loggers(cfg, out_dir)
    try:
        if (
            cfg.model.get("estimator") is not None
        ):  # model=coxnet: fitted exactly; val/best = its CV C-index since issue 21.12 (select=cv fits on inner val too)
            from survlab.runner.estimators.coxnet import fit_estimator

            trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers, default_root_dir=str(out_dir))
            _, fitted = fit_estimator(cfg, task, dm, trainer, out_dir)
            return float(fitted["val/best"]), 0
        trainer = hydra.utils.instantiate(
            cfg.trainer,
            callbacks=build_callbacks(cfg, out_dir),
            logger=loggers,
            default_root_dir=str(out_dir),
        )
        trainer.fit(task, datamodule=dm)
        return float(trainer.checkpoint_callback.best_model_score), int(trainer.current_epoch)
    finally:
        finish_loggers(loggers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("experiments/gse7390/defaults_study"))
    parser.add_argument("--models", nargs="*", default=list(GRID))
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    args.out.mkdir(parents=True, exist_ok=True)
    rows_path = args.out / "inner_val.csv"
    done = pd.read_csv(rows_path) if rows_path.is_file() else pd.DataFrame()
    rows = done.to_dict("records")
    for model in args.models:
        for setting, extra in GRID[model].items():
            for fold in range(args.folds):
                if any(r["model"] == model and r["setting"] == setting and r["fold"] == fold for r in rows):
                    continue
                started = time.time()
                with tempfile.TemporaryDirectory() as tmp:
                    score, epochs = fit_only([*QUIET, f"model={model}", f"fold={fold}", *extra], Path(tmp))
                rows.append(
                    {
                        "model": model,
                        "setting": setting,
                        "fold": fold,
                        "val_cindex": score,
                        "epochs": epochs,
                        "seconds": round(time.time() - started, 1),
                        "overrides": " ".join(extra),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
                pd.DataFrame(rows).to_csv(rows_path, index=False)
    frame = pd.DataFrame(rows)
    table = (
        frame.groupby(["model", "setting"])
        .agg(
            val_cindex_mean=("val_cindex", "mean"),
            val_cindex_std=("val_cindex", "std"),
            min_fold=("val_cindex", "min"),
            epochs=("epochs", "mean"),
            seconds=("seconds", "sum"),
        )
        .reset_index()
        .sort_values(["model", "val_cindex_mean"], ascending=[True, False])
    )
    table.to_csv(args.out / "summary.csv", index=False)
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |")
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
