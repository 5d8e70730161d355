#!/bin/bash
# Larger-than-RAM check (issue #14): ABMIL trains on a cohort whose x20 features are > 3x the memory the training
# process may use. Needs root and cgroup v1 (memory controller at /sys/fs/cgroup/memory). Results: $E/results/.
#   PYTHON=/path/to/python bash experiments/speed/larger_than_ram/run.sh
# The cohort (~9 GB + a ~7 GB packed store) is written OUTSIDE the cgroup under $D, deleted at the end (KEEP=1 keeps).
cd "$(dirname "$0")/../../.." || exit 1
export PYTHONPATH=$PWD WANDB_MODE=disabled
PY="nice -n 10 ${PYTHON:-python}"
E=experiments/speed/larger_than_ram
R=$E/results
D=${RAM_DATA:-/tmp/ram_data}
LIMIT=${LIMIT:-2G}
G=/sys/fs/cgroup/memory/survlab_ram
COHORT=(--data "$D" --patients 1100 --patches 3400 --dim 1024)
ROOT=$D/bench_p1100_n3400_d1024_sx20
mkdir -p "$R"
log() { echo "== $(date -u +%H:%M:%S) $1 | $(uptime | sed 's/.*load/load/')" | tee -a "$R/load.log"; }

# 1. the cohort, outside the cgroup: the bench writes it (x20 .pt fp16 in pt_files/, plus the x5/x10/x20 scale
#    folders of a multi-scale cohort; x20/pt_files holds the same bytes as pt_files/: hard-linked to save 7 GB)
log "write cohort"
$PY -m survlab.bench "${COHORT[@]}" --models --sizes --patch-caps --out "$R/cohort_write" > "$R/cohort_write.log" 2>&1
for f in "$ROOT"/features/synthetic/pt_files/*.pt; do
  x="$ROOT/features/synthetic/x20/pt_files/$(basename "$f")"
  cmp -s "$f" "$x" && ln -f "$f" "$x"
done
du -sh "$ROOT"/features/synthetic/* > "$R/cohort_du.txt"
# 2. the packed store, outside the cgroup (the runs below reuse it: no source file is read when it is fresh)
log "build packed store"
$PY $E/loop.py "${COHORT[@]}" --build-only --out "$R/packed_build.json" -- data.bucketing=true \
  ++data.wsi.packed=true ++data.wsi.cache=false > "$R/packed_build.log" 2>&1
du -sh "$ROOT-packed" >> "$R/cohort_du.txt"

# 3. the cgroup: LIMIT of memory (page cache included), no swap
mkdir -p $G
echo "$LIMIT" > $G/memory.limit_in_bytes
echo "$LIMIT" > $G/memory.memsw.limit_in_bytes 2> /dev/null || echo "memsw limit not writable" >> "$R/load.log"

# run NAME TIMEOUT_S LOOP_ARGS... : drop the page cache, reset the cgroup's counters, run loop.py inside the cgroup
# (NAME ending in _nolimit: outside it, the control), record the counters, the OOM state and the kernel's OOM lines
run() {
  name=$1 t=$2
  shift 2
  sync
  echo 1 > /proc/sys/vm/drop_caches || echo "drop_caches refused" >> "$R/$name.cgroup"
  echo 0 > $G/memory.max_usage_in_bytes
  echo 0 > $G/memory.failcnt
  echo 0 > $G/memory.memsw.max_usage_in_bytes 2> /dev/null
  join="echo \$\$ > $G/cgroup.procs &&"
  [[ $name == *_nolimit ]] && join=""
  log "$name"
  kills=$(dmesg 2> /dev/null | grep -c -i "killed process")
  timeout "$t" bash -c "$join exec $PY $E/loop.py --out $R/$name.json $*" > "$R/$name.log" 2>&1
  echo "rc $?" >> "$R/$name.cgroup"
  log "$name done"
  [[ $name == *_nolimit ]] && return
  for k in max_usage_in_bytes failcnt memsw.max_usage_in_bytes memsw.failcnt; do
    echo "$k $(cat $G/memory.$k 2> /dev/null)" >> "$R/$name.cgroup"
  done
  cat $G/memory.oom_control >> "$R/$name.cgroup"
  # the kernel's OOM-kill lines of this run only (oom_kill above counts since the cgroup was made)
  (dmesg 2> /dev/null || echo "dmesg not readable") | grep -i "killed process" | tail -n +$((kills + 1)) >> "$R/$name.cgroup"
}
A="${COHORT[*]}"
PACKED="data.bucketing=true ++data.wsi.packed=true"
for r in ${RUNS:-packed_cache_off pt_cache_off packed_cache_auto_8gb packed_cache_off_nolimit disk_read}; do
  case $r in
    # packed store, RAM cache off (what the config bounds): 2 epochs
    packed_cache_off) run $r 900 "$A --epochs 2 -- $PACKED ++data.wsi.cache=false" ;;
    # the source .pt files, RAM cache off: each slide torch.load-ed whole, at every step
    pt_cache_off) run $r 900 "$A --epochs 1 -- data.bucketing=true ++data.wsi.cache=false" ;;
    # the CONFIG allows more than the cgroup has: RAM cache auto with an 8 GB cap (the cohort, 7.4 GB, fits the cap)
    packed_cache_auto_8gb) run $r 300 "$A --epochs 1 -- $PACKED ++data.wsi.cache=auto ++data.wsi.cache_max_gb=8" ;;
    # control: the same as packed_cache_off without the cgroup (epoch 1 from disk, epoch 2 from the page cache)
    packed_cache_off_nolimit) run $r 900 "$A --epochs 2 -- $PACKED ++data.wsi.cache=false" ;;
    # the disk: sequential read of the packed file, page cache bypassed
    disk_read)
      log "disk read"
      dd if="$ROOT-packed/synthetic/single/features.bin" of=/dev/null bs=16M iflag=direct 2>&1 | tail -1 > "$R/disk_read.txt"
      ;;
  esac
done
rmdir $G 2> /dev/null
[ -n "$KEEP" ] || rm -rf "$ROOT" "$ROOT-packed"
log "all done"
