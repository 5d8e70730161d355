#!/usr/bin/env bash
# Random vs site-preserved 5-fold CV of ABMIL on the synthetic cohort with planted site effects (data=synthetic_sites):
# 10 jobs, ~6 min on 2 CPU cores. The summary (summary.md, site_gap.csv, sites.csv) lands in the sweep dir.
set -euo pipefail
cd "$(dirname "$0")/../.." && . .venv/bin/activate
export OMP_NUM_THREADS=1 WANDB_MODE=disabled
survlab train -m model=abmil data=synthetic_sites fold=0,1,2,3,4 +data.splits.group=null,site \
  trainer.max_epochs=15 logger=csv export_attention=false \
  hydra.sweep.dir=${SWEEP_DIR:-logs/multiruns/site_cv}
