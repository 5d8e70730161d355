#!/bin/bash
# The bench at its default TCGA scale (1,000 patients, 1-3 slides, ~10k x20 patches per patient, 1,024-d fp16:
# 20.5 GB of x20 features, more than this box's 24 GB RAM holds beside the packed copy), ABMIL only, 1 epoch, fold 0,
# on 2 CPU cores: the usual loop, survlab + bucketing (RAM cache auto: the cohort exceeds cache_max_gb 8 and half the
# free memory, so bags are read from the .pt files each step) and survlab + packed store + bucketing.
cd "$(dirname "$0")/../.." || exit 1
export PYTHONPATH=$PWD WANDB_MODE=disabled
D=${TCGA_DATA:-/tmp/tcga_scale}
echo "== $(date -u +%H:%M:%S) start | $(uptime | sed 's/.*load/load/')"
nice -n 5 ${PYTHON:-python} -m survlab.bench --models abmil --epochs 1 --only-variants \
  --variants "survlab+bucketing=data.bucketing=true" "survlab+packed+bucketing=data.bucketing=true,++data.wsi.packed=true" \
  --sizes --patch-caps --data "$D" --out experiments/speed/cpu_tcga_scale
echo "== $(date -u +%H:%M:%S) done rc=$? | $(uptime | sed 's/.*load/load/')"
du -sh "$D"/* 2> /dev/null
# the same packed variant with glibc keeping freed batch buffers (section 2: fresh 300 MB evaluation batches page-fault)
nice -n 5 ${PYTHON:-python} -m survlab.bench --models abmil --epochs 1 --only-variants --no-usual --malloc-reuse \
  --variants "survlab+packed+bucketing=data.bucketing=true,++data.wsi.packed=true" \
  --sizes --patch-caps --data "$D" --out experiments/speed/cpu_tcga_scale_malloc_reuse
echo "== $(date -u +%H:%M:%S) done rc=$? | $(uptime | sed 's/.*load/load/')"
