#!/usr/bin/env bash
# Missing modalities kept vs dropped (issue 23.2): late fusion (WSI + genomics) and ABMIL (WSI only), 5-fold CV, on the
# synthetic cohort with 30% of the patients' genomics removed at random (data=synthetic_missing) and removed more often
# for short survivors (data=synthetic_missing_mnar), each with data.missing=keep and =drop.
# 2 models x 2 cohorts x 2 modes x 5 folds = 40 jobs of 5 epochs: about 10 min on 2 CPU cores (estimate, see README).
# The summary (summary.md with "Metrics per availability pattern", summary.csv, availability.csv) lands in the sweep dir.
set -euo pipefail
cd "$(dirname "$0")/../.." && . .venv/bin/activate
export OMP_NUM_THREADS=1 WANDB_MODE=disabled
SWEEP_DIR=${SWEEP_DIR:-logs/multiruns/missing_modalities}
survlab train -m model=late_fusion,abmil data=synthetic_missing,synthetic_missing_mnar data.missing=keep,drop \
  fold=0,1,2,3,4 trainer.max_epochs=${EPOCHS:-5} logger=csv export_attention=false \
  hydra.sweep.dir="$SWEEP_DIR"
# the WSI-only model as the reference of the paired comparison (the sweep already wrote a summary; this rebuilds it)
survlab summarize "$SWEEP_DIR" --reference abmil
