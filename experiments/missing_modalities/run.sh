#!/usr/bin/env bash
# Missing modalities kept vs dropped (issue 23.2): late fusion (WSI + genomics) with data.missing=keep and =drop, and
# ABMIL (WSI only, unaffected by missing genomics), 5-fold CV, on the synthetic cohort with 30% of the patients'
# genomics removed at random (data=synthetic_missing) and removed more often for short survivors
# (data=synthetic_missing_mnar). 400 patients at the learning tests' small widths (8-dim patch features, 60 genes in
# 8 pathways), risk split between WSI patches and pathways; 3 runs x 2 cohorts x 5 folds = 30 jobs of 30 epochs.
# Usage: experiments/missing_modalities/run.sh [out dir]   (default logs/multiruns/missing_modalities)
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 WANDB_MODE=disabled
OUT=$(realpath -m "${1:-logs/multiruns/missing_modalities}")
COMMON=(debug=tiny data.synthetic.n_patients=400 data.synthetic.feature_dim=8 data.wsi.feature_dim=8
  data.synthetic.n_genes=60 data.synthetic.n_pathways=8 "data.synthetic.patches_per_slide=[8,24]"
  "+data.synthetic.weights=[1.5,1.5,0.0]" data.batch_size=16 data.max_patches=64 selection=last
  trainer.max_epochs=30 model.task.lr=1e-3 export_attention=false fold=0,1,2,3,4)
for cohort in synthetic_missing synthetic_missing_mnar; do
  python -m survlab.run -m model=late_fusion,abmil data=$cohort data.missing=keep "${COMMON[@]}" \
    hydra.sweep.dir="$OUT/$cohort/keep"
  python -m survlab.run -m model=late_fusion data=$cohort data.missing=drop "${COMMON[@]}" \
    hydra.sweep.dir="$OUT/$cohort/drop"
done
python experiments/missing_modalities/report.py "$OUT"
