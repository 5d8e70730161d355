"""Time survlab's data path alone (no network): one training epoch of batches (batch 8, bucketing, max_patches 4096)
and one test pass, materialised on the host with Batch.to("cpu"), for the RAM cache (per-item fp32 copies + padding
in collate) and the resident store (row numbers; one gather + pad per batch). Alternated A/B/A/B in one process so
that load drift hits both. Usage: python data_path.py <bench --data dir> <patients> <patches> [repeats]
(the bench cohort of those sizes, signal at x5, as written by `benchmarks/bench.py --signal-scale x5`)"""

import argparse
import sys
import time
from pathlib import Path

import torch

from bench import build, cohort_root, cohort_spec, compose  # benchmarks/bench.py (PYTHONPATH=benchmarks)

args = argparse.Namespace(
    data=sys.argv[1], patients=int(sys.argv[2]), patches=int(sys.argv[3]), dim=1024, signal_scale="x5",
    signal_strength=3.0,
)
repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 3
root, spec = cohort_root(args), cohort_spec(args)
assert root.is_dir(), root
torch.set_num_threads(1)
dms = {}
for name, cache in (("ram", "true"), ("resident", "device")):
    cfg = compose("abmil", root, spec, ["data.bucketing=true", f"++data.wsi.cache={cache}", "data.num_workers=0"])
    dms[name] = build(cfg)[0]
    dms[name].trainer = None
times: dict[str, dict[str, list[float]]] = {n: {"train": [], "test": []} for n in dms}
for _ in range(repeats):
    for name, dm in dms.items():
        for part, loader in (("train", dm.train_dataloader()), ("test", dm.test_dataloader())):
            t = time.perf_counter()
            n = 0
            for b in loader:
                b = b.to("cpu")
                n += int(b.wsi_mask.sum())
            times[name][part].append(time.perf_counter() - t)
for name, t in times.items():
    print(name, {p: [round(x, 3) for x in v] for p, v in t.items()}, "min:", {p: round(min(v), 3) for p, v in t.items()})
