#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")/../.." && . .venv/bin/activate
export OMP_NUM_THREADS=1 WANDB_MODE=disabled
python -m survlab.run -m hydra/launcher=joblib hydra.launcher.n_jobs=2 \
  model=crossfusion,abmil data=synthetic_multiscale fold=0,1,2,3,4 trainer.max_epochs=40 selection=last \
  logger=csv callbacks.rich_progress_bar=null trainer.enable_progress_bar=false \
  export_attention=false hydra.sweep.dir=${SWEEP_DIR:-logs/multiruns/synthetic_benchmark} \
  ++hydra.callbacks.sweep_summary._target_=survlab.utils.hydra_callbacks.SweepSummaryCallback \
  ++hydra.callbacks.sweep_summary.reference=abmil
