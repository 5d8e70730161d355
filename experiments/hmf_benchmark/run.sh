#!/usr/bin/env bash
# HMF vs ABMIL / CLAM-SB / mean-pooling MIL on synthetic_classification (5 patient-level folds, the same split files
# for every model: paired), plus HMF's ablations (no text, no attention filter, filter ratio 0.1 / 0.9; 0.5 is the
# main run). Two jobs at a time on CPU, niced. Then: python experiments/hmf_benchmark/table.py
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1 WANDB_MODE=disabled HF_HUB_OFFLINE=1
OUT=${OUT:-logs/multiruns/hmf_benchmark}
COMMON=(logger=csv callbacks.rich_progress_bar=null callbacks.lr_monitor=null trainer.enable_progress_bar=false
        export_attention=false hydra/launcher=joblib hydra.launcher.n_jobs=2 fold=0,1,2,3,4)
SLIDE_OBJECTIVE=(+model.task.objectives.slide._target_=survlab.tasks.objectives.ClassificationObjective
                 +model.task.objectives.slide.level=slide +model.task.objectives.slide.label=slide_label)

# ABMIL with a patient head and a slide head (each slide pooled on its own): both levels, like HMF
nice -n 10 $PY -m survlab.run -m model=abmil_cls data=synthetic_classification "model.net.slide_targets=[slide_label]" \
  "${SLIDE_OBJECTIVE[@]}" "${COMMON[@]}" hydra.sweep.dir=$OUT/abmil_cls
# CLAM-SB and mean pooling classify the patient only (one bag per patient)
nice -n 10 $PY -m survlab.run -m model=clam_sb,mean_mil data=synthetic_classification "${COMMON[@]}" \
  hydra.sweep.dir=$OUT/patient_baselines
# HMF and its ablations (experiment=hmf_synthetic: small widths, AdamW 1e-3, batch 8, <= 30 epochs)
nice -n 10 $PY -m survlab.run -m experiment=hmf_synthetic "${COMMON[@]}" hydra.sweep.dir=$OUT/hmf
nice -n 10 $PY -m survlab.run -m experiment=hmf_synthetic model.net.use_text=false "${COMMON[@]}" hydra.sweep.dir=$OUT/hmf_no_text
nice -n 10 $PY -m survlab.run -m experiment=hmf_synthetic model.net.filter=none "${COMMON[@]}" hydra.sweep.dir=$OUT/hmf_no_filter
nice -n 10 $PY -m survlab.run -m experiment=hmf_synthetic model.net.ratio=0.1 "${COMMON[@]}" hydra.sweep.dir=$OUT/hmf_ratio_0.1
nice -n 10 $PY -m survlab.run -m experiment=hmf_synthetic model.net.ratio=0.9 "${COMMON[@]}" hydra.sweep.dir=$OUT/hmf_ratio_0.9
