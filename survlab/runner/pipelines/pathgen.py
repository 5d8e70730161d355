"""The PathGen pipeline for one fold: generator → grader (+ WSI-only) → conformal, each stage in its own subdir.

    python -m survlab.run experiment=pathgen_pipeline_synthetic            # one fold, all stages
    python -m survlab.run -m experiment=pathgen_pipeline_tcga_kirc fold=0,1,2,3,4

Stages (`pipeline.stages`, in this order; a stage reads only what earlier stages wrote):
1. `generator/`: PathGen DDPM (`pipeline.generator.model`, e.g. conf/model/pathgen.yaml) trained on the fold's
   TRAINING patients' real expression groups, min-max scaled to [-1, 1] by a scaler fitted on them
   (`scaler.json`); inner-validation loss picks the checkpoint. Writes `expression.csv` (synthetic expression of
   every patient of the fold — train, val, calibration, test — in the real table's format and units),
   `parts.csv` (case_id, part) and `generation.json` (per-family and overall Spearman / MAE on the TEST patients
   beside the training-mean reference, and the synthetic cohort's ceiling when known).
2. `grader/`: MCAT_GR (the run's `model`) trained on REAL genomics like any survlab run (its run outputs are in the
   stage dir), then evaluated on calibration + test patients with `genomics_source` real and synthetic (the
   synthetic values go through the scaler fitted on the real training expression: `data.genomics.values_from`) →
   `eval_predictions.csv` (rows of the one prediction pass, survlab.runner.predict); per-patch grade + risk of the
   test patients (`patch_predictions_<source>.csv`).
   `wsi_only/`: the WSI-only comparator (`pipeline.wsi_only.model`), same objectives, same outputs.
3. `conformal/`: split-conformal sets for grade and survival bin per (model, source), calibrated on the calibration
   patients of the SAME source as the test patients → conformal.json / .csv / conformal_sets.csv / conformal.png,
   computed and written by the shared conformal code of every run (survlab.report.conformal: q̂, sets, coverage,
   subgroup tables, the survival-bin censoring rule; its module doc gives the layout).
The job dir gets `comparison.csv` / `.md` (C-index, grade metrics per model × genomics source: the paper's table)
and metrics.json (the grader's real-genomics test metrics plus `test/<setting>/...` of every setting).

The stages are in pathgen_stage (the machinery: identity, skip, per-stage config), pathgen_generator,
pathgen_outcome and pathgen_conformal; this module runs them in order and writes the comparison table.

Every stage builds its data module, network, task and trainer through the one build path (survlab.runner.build).

Skipping and re-running: every stage dir holds `stage.json` (the stage's identity: the settings it depends on and the
identities of the stages it reads) and `DONE`. A stage whose DONE and identity match is skipped (a crashed job
re-runs from the stage that failed). `pipeline.rerun=[conformal]` (not part of the job's identity) re-runs the named
stages and everything after them: `python -m survlab.run experiment=... hydra.run.dir=<job dir>
pipeline.rerun=[conformal] skip_completed=false`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from survlab.metrics.classification import classification_metrics
from survlab.metrics.survival import harrell_cindex
from survlab.runner.pipelines.pathgen_conformal import run_conformal
from survlab.runner.pipelines.pathgen_generator import run_generator
from survlab.runner.pipelines.pathgen_outcome import run_outcome_stage
from survlab.runner.pipelines.pathgen_stage import Train, _digest, _run_stage

STAGES = ("generator", "grader", "wsi_only", "conformal")


def comparison_table(out_dir: Path, settings: dict[str, tuple[str, str]], label: str) -> pd.DataFrame:
    """Test C-index and grade metrics per setting (model × genomics source) from the stages' eval predictions."""
    rows = []
    for setting, (stage, source) in settings.items():
        frame = pd.read_csv(out_dir / stage / "eval_predictions.csv", dtype={"case_id": str})
        test = frame[(frame["source"] == source) & (frame["part"] == "test")]
        known = test[label].to_numpy() >= 0
        probs = test.filter(regex=f"^{label}_prob_").to_numpy()
        grade = classification_metrics(probs[known], test[label].to_numpy()[known], ordinal=True)
        rows.append(
            {
                "setting": setting,
                "model": stage,
                "genomics_source": source,
                "n_test": len(test),
                "cindex": harrell_cindex(
                    test["risk"].to_numpy(), test["time"].to_numpy(), test["event"].to_numpy().astype(bool)
                ),
                **{
                    f"{label}_{k}" + ("_quadratic" if k == "kappa" else ""): v
                    for k, v in grade.items()
                    if k in ("accuracy", "balanced_accuracy", "f1", "auroc", "kappa")
                },
            }
        )
    return pd.DataFrame(rows)


def _markdown(table: pd.DataFrame) -> str:
    """A Markdown table (floats to 3 decimals) without the optional `tabulate` dependency."""
    cells = [
        [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in table.itertuples(index=False)
    ]
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])


def run_pipeline(cfg: DictConfig, out_dir: Path, train: Train) -> dict[str, Any]:
    """Run (or skip) every stage of `cfg.pipeline.stages` for this fold; → the job's metrics.json content."""
    p = cfg.pipeline
    stages = [str(s) for s in p.stages]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"pipeline.stages {unknown} unknown; allowed (in order): {list(STAGES)}")
    rerun_from = min((STAGES.index(str(s)) for s in (p.get("rerun") or [])), default=len(STAGES))
    base = {
        "data": OmegaConf.to_container(cfg.data, resolve=False),
        "fold": cfg.fold,
        "seed": cfg.seed,
        "trainer": OmegaConf.to_container(cfg.trainer, resolve=False),
    }
    ids: dict[str, str] = {}
    ids["generator"] = _digest({**base, "generator": OmegaConf.to_container(p.generator, resolve=False)})
    ids["grader"] = _digest(
        {
            **base,
            "model": OmegaConf.to_container(cfg.model, resolve=False),
            "upstream": ids["generator"],
            "monitor": cfg.monitor,
            "selection": cfg.selection,
            "patch_maps": p.grader.get("patch_maps", True),
        }
    )
    ids["wsi_only"] = _digest(
        {
            **base,
            "model": OmegaConf.to_container(p.wsi_only.model, resolve=False),
            "max_epochs": p.wsi_only.get("max_epochs"),
            "monitor": cfg.monitor,
            "selection": cfg.selection,
        }
    )
    ids["conformal"] = _digest(
        {
            "conformal": OmegaConf.to_container(p.conformal, resolve=False),
            "upstream": [ids["grader"], ids["wsi_only"]],
        }
    )
    synthetic = out_dir / "generator" / "expression.csv"
    grader_sources = {"real": None, **({"synthetic": str(synthetic)} if "generator" in stages else {})}
    settings = {f"mcat_gr_{s}": ("grader", s) for s in grader_sources if "grader" in stages}
    if "wsi_only" in stages:
        settings["wsi_only"] = ("wsi_only", "none")
    work = {
        "generator": lambda: run_generator(cfg, out_dir / "generator"),
        "grader": lambda: run_outcome_stage(
            cfg,
            out_dir,
            out_dir / "grader",
            train,
            OmegaConf.to_container(cfg.model, resolve=True),
            None,
            grader_sources,
            bool(p.grader.get("patch_maps", True)),
        ),
        "wsi_only": lambda: run_outcome_stage(
            cfg,
            out_dir,
            out_dir / "wsi_only",
            train,
            OmegaConf.to_container(p.wsi_only.model, resolve=True),
            p.wsi_only.get("max_epochs"),
            {"none": None},
            False,
        ),
        "conformal": lambda: run_conformal(cfg, out_dir, out_dir / "conformal", settings),
    }
    for i, stage in enumerate(STAGES):
        if stage in stages:
            _run_stage(stage, out_dir / stage, ids[stage], i >= rerun_from, work[stage])

    metrics: dict[str, Any] = {
        "model": "pathgen_pipeline",
        "cohort": cfg.data.name,
        "fold": int(cfg.fold),
        "seed": int(cfg.seed),
        "status": "ok",
    }
    if "grader" in stages:
        grader = json.loads((out_dir / "grader" / "metrics.json").read_text())
        metrics.update(
            {k: v for k, v in grader.items() if k.startswith(("test/", "val/")) or k == "oracle_cindex"}
        )
    if settings:
        table = comparison_table(out_dir, settings, p.conformal.label)
        table.to_csv(out_dir / "comparison.csv", index=False)
        (out_dir / "comparison.md").write_text(_markdown(table) + "\n")
        for row in table.to_dict("records"):
            for k, v in row.items():
                if isinstance(v, float):
                    metrics[f"test/{row['setting']}/{k}"] = v
        print(
            f"\nsurvlab: PathGen pipeline on {cfg.data.name} fold {cfg.fold} (test patients)\n"
            f"{_markdown(table)}\noutputs: {out_dir}\n"
        )
    if "generator" in stages:
        gen = json.loads((out_dir / "generator" / "generation.json").read_text())["test"]
        for who in ("generator", "training_mean"):
            for k, v in gen[who]["overall"].items():
                metrics[f"test/generation/{who}/{k}"] = v
    if "conformal" in stages:
        conf = json.loads((out_dir / "conformal" / "conformal.json").read_text())["settings"]
        for key, s in conf.items():
            metrics[f"test/conformal/{key}/coverage"] = s["coverage"]
            metrics[f"test/conformal/{key}/mean_set_size"] = s["mean_set_size"]
            if s.get("note"):
                metrics[f"test/conformal/{key}/coverage_note"] = s["note"]
    return metrics


__all__ = [
    "STAGES",
    "comparison_table",
    "run_pipeline",
]
