#!/bin/bash
# The leak-free MM-DLS imaging pipeline on the synthetic PET/CT cohort, per fold k (issue #21 item 2):
#   segmentor of fold k (trained on synthetic_petct's fold-k training patients only: data.outcome_splits)
#   -> imaging_cut with that segmentor (cut_report.json records run, fold, checkpoint sha256, split)
#   -> MM-DLS fold k on those stacks (refused for any other fold), beside MM-DLS fold k on the cohort's own stacks.
# Usage: experiments/mmdls_synthetic/run.sh <out dir> [folds...]   (default folds 0 1 2 3 4)
set -euo pipefail
OUT=$(realpath -m "${1:?out dir}"); shift || true
FOLDS=${*:-0 1 2 3 4}
mkdir -p "$OUT"
COMMON="paths.root_dir=$OUT logger=none callbacks.lr_monitor=null trainer.enable_progress_bar=false callbacks.rich_progress_bar=null"
for k in $FOLDS; do
  python -m survlab.run experiment=mmdls_seg_synthetic fold=$k $COMMON hydra.run.dir=$OUT/runs/seg_f$k
  survlab cut run=$OUT/runs/seg_f$k out=$OUT/cut_f$k
  python -m survlab.run experiment=mmdls_synthetic fold=$k $COMMON data.synthetic=null data.root=$OUT/cut_f$k \
    data.imaging.missing=drop hydra.run.dir=$OUT/runs/mm_cut_f$k
  python -m survlab.run experiment=mmdls_synthetic fold=$k $COMMON hydra.run.dir=$OUT/runs/mm_truth_f$k
done
python - "$OUT" $FOLDS <<'PY'
import json, sys
out, folds = sys.argv[1], sys.argv[2:]
keys = ["test/dice_lung", "test/dice_lesion", "chance_dice_lesion", "test/dice_lesion_on_lesion_slices",
        "test/lesion_fp_voxels", "test/lesion_fp_slices"]
for k in folds:
    seg = json.load(open(f"{out}/runs/seg_f{k}/metrics.json"))
    cut = json.load(open(f"{out}/runs/mm_cut_f{k}/metrics.json"))
    truth = json.load(open(f"{out}/runs/mm_truth_f{k}/metrics.json"))
    print(k, {key: round(seg[key], 3) for key in keys}, "OS C cut", round(cut["test/cindex"], 3), "n", cut["n_test"],
          "OS C truth", round(truth["test/cindex"], 3), "n", truth["n_test"])
PY
