#!/bin/bash
# The leak-free MM-DLS imaging pipeline on the synthetic PET/CT cohort, per fold k (issue #21 item 2):
#   segmentor of fold k (trained on synthetic_petct's fold-k training patients only: data.outcome_splits)
#   -> imaging_cut with that segmentor (cut_report.json records run, fold, checkpoint sha256, split)
#   -> MM-DLS fold k on those stacks (refused for any other fold), beside MM-DLS fold k on the cohort's own stacks.
# Usage: experiments/mmdls_synthetic/run.sh <out dir> [folds...]   (default folds 0 1 2 3 4)
# A reduced setting (README "Measured"), from the environment:
#   COHORT="..."  overrides of the generated cohort (data.synthetic.*), given to the segmentor AND to MM-DLS on the
#                 cohort's own stacks, so all three models see the same cohort (one cohort per <out dir>: the
#                 generator regenerates <out>/data/synthetic/petct when its spec changes); the cut's lesion window
#                 follows data.synthetic.lesion_window (default 32, the recipe's)
#   SEG="..."     extra overrides of the segmentor only (e.g. data.image_size=48 trainer.max_epochs=4)
#   MM="..."      extra overrides of both MM-DLS runs
# e.g. COHORT="data.synthetic.volume_size=48 data.synthetic.n_slices=16 data.synthetic.lesion_window=24" \
#      SEG="data.image_size=48 trainer.max_epochs=4" experiments/mmdls_synthetic/run.sh /tmp/mmdls48 0
set -euo pipefail
OUT=$(realpath -m "${1:?out dir}"); shift || true
FOLDS=${*:-0 1 2 3 4}
COHORT=${COHORT:-}
SEG=${SEG:-}
MM=${MM:-}
LW=$(echo "$COHORT" | sed -n 's/.*data\.synthetic\.lesion_window=\([0-9]*\).*/\1/p')
LW=${LW:-32}
mkdir -p "$OUT"
COMMON="paths.root_dir=$OUT logger=none callbacks.lr_monitor=null trainer.enable_progress_bar=false callbacks.rich_progress_bar=null"
step() {  # step <name> <command...>: run it and append "<name> <seconds>" to $OUT/wall_s.txt
  local name=$1 t0; shift; t0=$(date +%s)
  "$@"
  echo "$name $(( $(date +%s) - t0 ))" >> "$OUT/wall_s.txt"
}
for k in $FOLDS; do
  # shellcheck disable=SC2086  # the override lists are word-split on purpose
  step seg_f$k python -m survlab.run experiment=mmdls_seg_synthetic fold=$k $COMMON $COHORT $SEG hydra.run.dir=$OUT/runs/seg_f$k
  step cut_f$k python -m survlab cut run=$OUT/runs/seg_f$k out=$OUT/cut_f$k lesion_window=$LW
  # shellcheck disable=SC2086
  step mm_cut_f$k python -m survlab.run experiment=mmdls_synthetic fold=$k $COMMON data.synthetic=null data.root=$OUT/cut_f$k \
    data.imaging.missing=drop $MM hydra.run.dir=$OUT/runs/mm_cut_f$k
  # shellcheck disable=SC2086
  step mm_truth_f$k python -m survlab.run experiment=mmdls_synthetic fold=$k $COMMON $COHORT $MM hydra.run.dir=$OUT/runs/mm_truth_f$k
done
python - "$OUT" $FOLDS <<'PY'
import json, sys
import numpy as np
out, folds = sys.argv[1], sys.argv[2:]
keys = ["test/dice_lung", "test/dice_lesion", "chance_dice_lesion", "test/dice_lesion_on_lesion_slices",
        "test/lesion_fp_voxels", "test/lesion_fp_slices"]
for k in folds:
    seg = json.load(open(f"{out}/runs/seg_f{k}/metrics.json"))
    cut = json.load(open(f"{out}/runs/mm_cut_f{k}/metrics.json"))
    truth = json.load(open(f"{out}/runs/mm_truth_f{k}/metrics.json"))
    report = json.load(open(f"{out}/cut_f{k}/cut_report.json"))
    test = set(report["segmentor"]["test_patients"])
    # the masks that cut the test patients' stacks (whole volume, largest component) vs the cohort's own masks
    cut_dice = {s: float(np.nanmean([c[f"dice_{s}_vs_cohort_mask"] for n, c in report["cases"].items() if n in test]))
                for s in ("lung", "lesion")}
    print(k, {key: round(seg[key], 3) for key in keys},
          "cut masks (test patients): Dice lung", round(cut_dice["lung"], 3), "lesion", round(cut_dice["lesion"], 3),
          "empty lesion", len(test & set(report["empty_lesion"])), "/", len(test),
          "| OS C cut", round(cut["test/cindex"], 3), "n", cut["n_test"],
          "| OS C truth", round(truth["test/cindex"], 3), "n", truth["n_test"])
PY
