#!/usr/bin/env bash
# Classification baselines × synthetic_classification × 5 folds (patient label, CLAM-style defaults of
# conf/model/_classification.yaml), two jobs at a time on CPU.
set -euo pipefail
cd "$(dirname "$0")/../.." && . .venv/bin/activate
export OMP_NUM_THREADS=1 WANDB_MODE=disabled
python -m survlab.run -m hydra/launcher=joblib hydra.launcher.n_jobs=2 \
  model=abmil_cls,clam_sb,mean_mil,max_mil data=synthetic_classification fold=0,1,2,3,4 \
  logger=csv callbacks.rich_progress_bar=null trainer.enable_progress_bar=false export_attention=false \
  hydra.sweep.dir=${SWEEP_DIR:-logs/multiruns/classification_benchmark} \
  ++hydra.callbacks.sweep_summary.reference=mean_mil
