#!/bin/bash
# Re-run of cpu_equal (ABMIL) after the bench seeds every loop (cfg.seed) before building the network: the earlier
# rounds' variants started from different initial weights. Same cohort (200 patients, ~1,500 patches, strength 12),
# folds 0 1. Also the device-resident store (data.wsi.cache=device: on a CPU run the host gathers each batch).
cd "$(dirname "$0")/../.." || exit 1
export PYTHONPATH=$PWD WANDB_MODE=disabled
PY="nice -n 5 ${PYTHON:-python}"
E=experiments/speed
D=${BENCH_DATA:-/tmp/speed2/data}
log() { echo "== $(date -u +%H:%M:%S) $1 | $(uptime | sed 's/.*load/load/')" | tee -a $E/load_seeded.log; }
: > $E/load_seeded.log
log "S1: ABMIL survlab variants, 12 epochs, folds 0 1"
timeout 1200 $PY -m survlab.bench --patients 200 --patches 1500 --dim 1024 --signal-strength 12 --epochs 12 \
  --models abmil --folds 0 1 --no-usual --only-variants --variants "survlab+bucketing=data.bucketing=true" \
  "survlab+bucketing+cap512=data.bucketing=true,data.max_patches=512" \
  "survlab+resident+bucketing+cap512=data.bucketing=true,data.max_patches=512,++data.wsi.cache=device" \
  --sizes --patch-caps --data $D --out $E/cpu_equal_seeded > /tmp/S1.log 2>&1
log "S1 done rc=$?"
log "S2: the usual loop, 12 and 48 epochs, folds 0 1"
for ep in 12 48; do
  timeout 900 $PY -m survlab.bench --patients 200 --patches 1500 --dim 1024 --signal-strength 12 --epochs $ep \
    --models abmil --folds 0 1 --only-variants --sizes --patch-caps --data $D --out $E/cpu_equal_seeded_usual_${ep}ep > /tmp/S2_$ep.log 2>&1
  log "S2 $ep done rc=$?"
done
log "S3: GGMF survlab variants, 12 epochs, folds 0 1"
timeout 1200 $PY -m survlab.bench --patients 200 --patches 1500 --dim 1024 --signal-strength 12 --epochs 12 \
  --models ggmf --folds 0 1 --no-usual --only-variants --variants "survlab+bucketing=data.bucketing=true" \
  "survlab+bucketing+cap512=data.bucketing=true,data.max_patches=512" \
  --sizes --patch-caps --data $D --out $E/cpu_equal_ggmf_seeded > /tmp/S3.log 2>&1
log "S3 done rc=$?"
log "S4: GGMF, the usual loop at 48 epochs, folds 0 1"
timeout 900 $PY -m survlab.bench --patients 200 --patches 1500 --dim 1024 --signal-strength 12 --epochs 48 \
  --models ggmf --folds 0 1 --only-variants --sizes --patch-caps --data $D --out $E/cpu_equal_ggmf_seeded_usual_48ep > /tmp/S4.log 2>&1
log "S4 done rc=$?"
