#!/bin/bash
# the measurements of experiments/speed/cpu_equal, cpu_memory, cpu_crossfusion, bf16_eval (run 23:35-00:10 UTC)
cd /work/wt/speed2
export PYTHONPATH=$PWD WANDB_MODE=disabled
PY="nice -n 5 /work/main/.venv/bin/python"
E=experiments/speed
D=/tmp/speed2/data
log() { echo "== $(date -u +%H:%M:%S) $1 | $(uptime | sed 's/.*load/load/')" | tee -a $E/load.log; }
: > $E/load.log
log "A: ABMIL equal C-index"
$PY -m survlab.bench --patients 200 --patches 1500 --dim 1024 --signal-strength 12 --epochs 15 --models abmil \
  --folds 0 1 --only-variants --variants "survlab=" "survlab+bucketing=data.bucketing=true" \
  "survlab+bucketing+cap1024=data.bucketing=true,data.max_patches=1024" \
  "survlab+bucketing+cap512=data.bucketing=true,data.max_patches=512" \
  "survlab+bucketing+cap512+bf16=data.bucketing=true,data.max_patches=512,trainer.precision=bf16-mixed" \
  --sizes --patch-caps --data $D --out $E/cpu_equal > /tmp/speed2/A.log 2>&1
log "A done rc=$?"
for n in 125 250 500; do
  log "B: memory, packed + cache off, $n patients"
  $PY -m survlab.bench --patients $n --patches 1500 --dim 1024 --models --sizes $n --patch-caps \
    --scaling-variant survlab+packed+bucketing --scaling-overrides ++data.wsi.cache=false \
    --data $D --out $E/cpu_memory/packed_cache_off_p$n > /tmp/speed2/B$n.log 2>&1
done
for n in 125 500; do
  log "B: memory, RAM cache on (default), $n patients"
  $PY -m survlab.bench --patients $n --patches 1500 --dim 1024 --models --sizes $n --patch-caps \
    --scaling-variant survlab+bucketing --data $D --out $E/cpu_memory/cache_auto_p$n > /tmp/speed2/Bc$n.log 2>&1
done
log "C: CrossFusion"
timeout 420 $PY -m survlab.bench --patients 100 --patches 1000 --dim 1024 --signal-strength 12 --epochs 3 \
  --models crossfusion --only-variants --variants "survlab=" "survlab+bucketing=data.bucketing=true" \
  --sizes --patch-caps --data $D --out $E/cpu_crossfusion > /tmp/speed2/C.log 2>&1
log "C done rc=$?"
mkdir -p $E/bf16_eval
log "D: bf16 eval check"
$PY $E/eval_alloc_check.py 32-true bf16-mixed 32-true bf16-mixed 2>&1 | grep "eval s" > $E/bf16_eval/default_malloc.txt
MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 $PY $E/eval_alloc_check.py 32-true bf16-mixed 32-true bf16-mixed 2>&1 | grep "eval s" > $E/bf16_eval/malloc_reuse.txt
for m in "" "--malloc-reuse"; do
  log "E: fp32 vs bf16, ABMIL p100 n2500, $m"
  $PY -m survlab.bench --patients 100 --patches 2500 --dim 1024 --signal-scale x5 --epochs 3 --models abmil $m \
    --only-variants --variants "survlab+bucketing=data.bucketing=true" \
    "survlab+bucketing+bf16=data.bucketing=true,trainer.precision=bf16-mixed" --no-usual \
    --sizes --patch-caps --data /tmp/bench/data --out $E/bf16_eval/bench${m:+_malloc_reuse} > /tmp/speed2/E$m.log 2>&1
done
log "all done"
