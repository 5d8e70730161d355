#!/bin/bash
# After the fix (cache=auto also checks the memory this process may still use): the run that was OOM-killed in
# run.sh (packed_cache_auto_8gb), again, on a smaller cohort and limit: 500 patients, 1.56 GB of x20 features, inside
# a 1.5 GiB cgroup, cache=auto with cache_max_gb=8 (the files fit the cap, not the cgroup). Expected: the cache
# stays off with a log line saying why, and the epoch trains. Control: cache=true (forced) warns, then is killed.
cd "$(dirname "$0")/../../.." || exit 1
export PYTHONPATH=$PWD WANDB_MODE=disabled
PY="nice -n 10 ${PYTHON:-python}"
E=experiments/speed/larger_than_ram
R=$E/results_auto_fix
D=${BENCH_DATA:-/tmp/speed2/data}
G=/sys/fs/cgroup/memory/survlab_auto
COHORT=(--data "$D" --patients 500 --patches 1500 --dim 1024)
PACKED="data.bucketing=true ++data.wsi.packed=true"
mkdir -p "$R" $G
echo 1536M > $G/memory.limit_in_bytes
echo 1536M > $G/memory.memsw.limit_in_bytes 2> /dev/null
$PY $E/loop.py "${COHORT[@]}" --build-only --out "$R/packed_build.json" -- $PACKED ++data.wsi.cache=false > "$R/packed_build.log" 2>&1
for c in auto true; do
  echo 0 > $G/memory.max_usage_in_bytes
  timeout 600 bash -c "echo \$\$ > $G/cgroup.procs && exec $PY $E/loop.py ${COHORT[*]} --epochs 1 --out $R/cache_$c.json -- $PACKED ++data.wsi.cache=$c ++data.wsi.cache_max_gb=8" > "$R/cache_$c.log" 2>&1
  echo "rc $?" > "$R/cache_$c.cgroup"
  echo "max_usage_in_bytes $(cat $G/memory.max_usage_in_bytes)" >> "$R/cache_$c.cgroup"
  grep oom_kill $G/memory.oom_control >> "$R/cache_$c.cgroup"
done
rmdir $G 2> /dev/null
