"""One survlab training run on the bench cohort, for the larger-than-RAM check (`run.sh` starts it inside a memory
cgroup). It is the bench's own survlab loop (`benchmarks/bench.py: survlab_loop`: the Hydra config a user gets, the
datamodule, Lightning; peak RSS sampled every 20 ms from setup on), without the bench's bandwidth probe (2 x 1 GB of
host buffers, which would dominate the cgroup's peak).

    python loop.py --data /tmp/ram_data --patients 1100 --patches 3400 --epochs 2 --out r.json -- ++data.wsi.packed=true
    python loop.py ... --build-only -- ++data.wsi.packed=true     # set the data module up (builds the packed store)

Writes --out (JSON): the bench's per-run numbers plus the cgroup's memory.stat / usage read just before exit
(the process's own page cache and anonymous memory, as the kernel charged them).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from bench import build, cohort_root, cohort_spec, compose, survlab_loop  # benchmarks/bench.py (PYTHONPATH=benchmarks)


def cgroup_memory() -> dict[str, object]:
    """This process's memory cgroup (v1) when it has a limit: its folder, usage, peak, failcnt, limit and
    memory.stat (bytes); {} otherwise."""
    line = next((x for x in Path("/proc/self/cgroup").read_text().splitlines() if ":memory:" in x), None)
    if line is None:
        return {}
    d = Path("/sys/fs/cgroup/memory") / line.split(":", 2)[2].lstrip("/")
    limit = d / "memory.limit_in_bytes"
    if not limit.is_file() or int(limit.read_text()) >= 1 << 62:  # not in a limited cgroup: nothing to report
        return {}
    out: dict[str, object] = {"cgroup": str(d)}
    for k in ("usage_in_bytes", "max_usage_in_bytes", "failcnt", "limit_in_bytes"):
        f = d / f"memory.{k}"
        if f.is_file():
            out[k] = int(f.read_text())
    stat = d / "memory.stat"
    if stat.is_file():
        out["stat"] = {k: int(v) for k, v in (x.split() for x in stat.read_text().splitlines())}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--patients", type=int, required=True)
    ap.add_argument("--patches", type=int, required=True)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--signal-scale", default="x20")
    ap.add_argument("--signal-strength", type=float, default=3.0)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--build-only", action="store_true", help="set the data module up and stop")
    ap.add_argument("--out", default=None)
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of the run (after --)")
    args = ap.parse_args()
    # survlab's setup lines (e.g. why the RAM cache is on or off) on stderr
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    spec, root = cohort_spec(args), cohort_root(args)
    t = time.perf_counter()
    if args.build_only:
        dm, _, _ = build(compose("abmil", root, spec, args.overrides))
        res: dict[str, object] = {"setup_s": time.perf_counter() - t, "patients": len(dm.cohort.case_ids)}
    else:
        res = survlab_loop("abmil", root, spec, args.epochs, args.overrides)
        n_train = res["train_patients_per_s"] * min(res["epoch_s"][1:] or res["epoch_s"])
        res["train_patients"] = round(n_train)
    res["wall_s"] = time.perf_counter() - t
    res["cohort"] = str(root)
    res["x20_feature_gb"] = (
        sum(f.stat().st_size for f in (root / "features/synthetic/pt_files").glob("*.pt")) / 1e9
    )
    res["cgroup_at_exit"] = cgroup_memory()
    text = json.dumps(res, indent=1, default=float)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
