"""Why bf16 evaluation looked 4x slower (experiments/speed/README.md).

Times survlab's test pass (ABMIL, bucketing, 20 test patients) after one training epoch, for each precision given,
in one process, with the minor page faults and system time of each pass. Run:

    python experiments/speed/eval_alloc_check.py 32-true bf16-mixed 32-true bf16-mixed
    MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 \
        python experiments/speed/eval_alloc_check.py 32-true bf16-mixed 32-true bf16-mixed

(the second: glibc reuses freed batch buffers instead of mapping fresh zero pages for every batch). Needs the
p100 / n2500 bench cohort (`python benchmarks/bench.py --patients 100 --patches 2500 --signal-scale x5 --data
/tmp/bench/data ...` writes it).
"""

from __future__ import annotations

import resource
import sys
import time
from argparse import Namespace

import lightning as L
import torch

import bench  # benchmarks/bench.py (PYTHONPATH=benchmarks)

ARGS = Namespace(
    patients=100, patches=2500, dim=1024, signal_scale="x5", signal_strength=3.0, data="/tmp/bench/data"
)


def main(precisions: list[str]) -> None:
    root, spec = bench.cohort_root(ARGS), bench.cohort_spec(ARGS)
    kw = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    for prec in precisions:
        dm, _, task = bench.build(
            bench.compose("abmil", root, spec, ["data.bucketing=true", "trainer.max_epochs=1"])
        )
        trainer = L.Trainer(max_epochs=1, limit_val_batches=0, num_sanity_val_steps=0, precision=prec, **kw)
        trainer.fit(task, datamodule=dm)
        passes = []
        for _ in range(2):
            r0, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            trainer.test(task, datamodule=dm, verbose=False)
            dt, r1 = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF)
            passes.append(
                f"{dt:.3f} s ({r1.ru_minflt - r0.ru_minflt} minor faults, sys {r1.ru_stime - r0.ru_stime:.2f} s)"
            )
        print(
            f"{prec}: eval s {'; '.join(passes)}; threads {torch.get_num_threads()}; "
            f"rss {bench.PeakRSS.now() / 1e9:.2f} GB",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:] or ["32-true", "bf16-mixed"])
