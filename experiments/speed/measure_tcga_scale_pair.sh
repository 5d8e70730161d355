#!/bin/bash
# TCGA scale, packed store: glibc default vs malloc reuse, each after dropping the page cache (the cohort, 20 GB
# packed, does not fit beside the rest in 24 GB RAM, so what the cache holds decides the read speed). ABMIL, 1 epoch.
cd "$(dirname "$0")/../.." || exit 1
export PYTHONPATH=$PWD WANDB_MODE=disabled
D=${TCGA_DATA:-/tmp/tcga_scale}
for m in "" "--malloc-reuse"; do
  sync; echo 1 > /proc/sys/vm/drop_caches
  echo "== $(date -u +%H:%M:%S) packed $m | $(uptime | sed 's/.*load/load/')"
  nice -n 5 ${PYTHON:-python} -m survlab.bench --models abmil --epochs 1 --only-variants --no-usual $m \
    --variants "survlab+packed+bucketing=data.bucketing=true,++data.wsi.packed=true" \
    --sizes --patch-caps --data "$D" --out experiments/speed/cpu_tcga_scale_dropped${m:+_malloc_reuse} 2>&1 | tail -4
done
echo "== $(date -u +%H:%M:%S) done"
# and one / two DataLoader workers (to overlap disk reads with compute; the cohort is read from disk each epoch)
for w in 1 2; do
  sync; echo 1 > /proc/sys/vm/drop_caches
  echo "== $(date -u +%H:%M:%S) packed, malloc reuse, $w worker(s) | $(uptime | sed 's/.*load/load/')"
  nice -n 5 ${PYTHON:-python} -m survlab.bench --models abmil --epochs 1 --only-variants --no-usual --malloc-reuse \
    --variants "survlab+packed+bucketing+workers$w=data.bucketing=true,++data.wsi.packed=true,data.num_workers=$w,data.persistent_workers=true" \
    --sizes --patch-caps --data "$D" --out experiments/speed/cpu_tcga_scale_dropped_workers$w 2>&1 | tail -4
done
echo "== $(date -u +%H:%M:%S) done"
