#!/bin/bash
# The CPU measurements in experiments/speed/{cpu_equal,bf16_eval,cpu_crossfusion,cpu_memory} (2-core box, no GPU).
# Cohorts are written (once, cached) under $D by the bench itself; nice -n 5 (the box is shared).
cd "$(dirname "$0")/../.." || exit 1
export PYTHONPATH=$PWD WANDB_MODE=disabled
PY="nice -n 5 ${PYTHON:-python}"
E=experiments/speed
D=${BENCH_DATA:-/tmp/speed2/data}
L=${LOGS:-/tmp/speed2}
log() { echo "== $(date -u +%H:%M:%S) $1 | $(uptime | sed 's/.*load/load/')" | tee -a $E/load.log; }
: > $E/load.log
log "A: ABMIL, equal C-index (usual loop vs survlab, bucketing, training caps 1024 / 512), folds 0 1"
timeout 1200 $PY -m survlab.bench --patients 200 --patches 1500 --dim 1024 --signal-strength 12 --epochs 12 \
  --models abmil --folds 0 1 --only-variants --variants "survlab=" "survlab+bucketing=data.bucketing=true" \
  "survlab+bucketing+cap1024=data.bucketing=true,data.max_patches=1024" \
  "survlab+bucketing+cap512=data.bucketing=true,data.max_patches=512" \
  --sizes --patch-caps --data $D --out $E/cpu_equal > $L/A.log 2>&1
log "A done rc=$?"
mkdir -p $E/bf16_eval
log "D: eval passes fp32 / bf16 with page faults, default glibc malloc then malloc reuse"
$PY $E/eval_alloc_check.py 32-true bf16-mixed 32-true bf16-mixed 2>&1 | grep "eval s" > $E/bf16_eval/default_malloc.txt
MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824 $PY $E/eval_alloc_check.py 32-true bf16-mixed \
  32-true bf16-mixed 2>&1 | grep "eval s" > $E/bf16_eval/malloc_reuse.txt
for m in "" "--malloc-reuse"; do
  log "E: ABMIL fp32 vs bf16 training + evaluation, p100 n2500 (the first runs' cohort) $m"
  timeout 400 $PY -m survlab.bench --patients 100 --patches 2500 --dim 1024 --signal-scale x5 --epochs 3 --models abmil \
    $m --only-variants --variants "survlab+bucketing=data.bucketing=true" \
    "survlab+bucketing+bf16=data.bucketing=true,trainer.precision=bf16-mixed" --no-usual \
    --sizes --patch-caps --data /tmp/bench/data --out $E/bf16_eval/bench${m:+_malloc_reuse} > $L/E$m.log 2>&1
done
log "C: CrossFusion"
timeout 360 $PY -m survlab.bench --patients 100 --patches 1000 --dim 1024 --signal-strength 12 --epochs 3 \
  --models crossfusion --only-variants --variants "survlab=" "survlab+bucketing=data.bucketing=true" \
  --sizes --patch-caps --data $D --out $E/cpu_crossfusion > $L/C.log 2>&1
log "C done rc=$?"
for n in 125 250 500; do
  log "B: memory, packed store + RAM cache off, $n patients"
  timeout 240 $PY -m survlab.bench --patients $n --patches 1500 --dim 1024 --models --sizes $n --patch-caps \
    --scaling-variant survlab+packed+bucketing --scaling-overrides ++data.wsi.cache=false \
    --data $D --out $E/cpu_memory/packed_cache_off_p$n > $L/B$n.log 2>&1
done
for n in 125 500; do
  log "B: memory, RAM cache auto (the default), $n patients"
  timeout 240 $PY -m survlab.bench --patients $n --patches 1500 --dim 1024 --models --sizes $n --patch-caps \
    --scaling-variant survlab+bucketing --data $D --out $E/cpu_memory/cache_auto_p$n > $L/Bc$n.log 2>&1
done
$PY $E/cpu_memory/combine.py > /dev/null
log "all done"
log "A2: the usual loop alone, 4x the epochs (48: ~200 optimiser steps at accumulation 32), folds 0 1"
timeout 600 $PY -m survlab.bench --patients 200 --patches 1500 --dim 1024 --signal-strength 12 --epochs 48 \
  --models abmil --folds 0 1 --only-variants --sizes --patch-caps --data $D --out $E/cpu_equal_usual_48ep > $L/A2.log 2>&1
log "A2 done rc=$?"
log "F: GGMF (WSI + genomics), equal C-index, folds 0 1"
timeout 900 $PY -m survlab.bench --patients 200 --patches 1500 --dim 1024 --signal-strength 12 --epochs 12 \
  --models ggmf --folds 0 1 --only-variants --variants "survlab+bucketing=data.bucketing=true" \
  "survlab+bucketing+cap512=data.bucketing=true,data.max_patches=512" \
  --sizes --patch-caps --data $D --out $E/cpu_equal_ggmf > $L/F.log 2>&1
log "F done rc=$?"
log "F2: GGMF, the usual loop alone at 48 epochs, folds 0 1"
timeout 600 $PY -m survlab.bench --patients 200 --patches 1500 --dim 1024 --signal-strength 12 --epochs 48 \
  --models ggmf --folds 0 1 --only-variants --sizes --patch-caps --data $D --out $E/cpu_equal_ggmf_usual_48ep > $L/F2.log 2>&1
log "F2 done rc=$?"
