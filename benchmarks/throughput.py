"""Data and training throughput benchmark (not a test): how fast survlab feeds bags and trains on this machine.

    python benchmarks/throughput.py --patients 120 --dim 512 --out experiments/throughput/results.json

Measures, on a synthetic cohort written in the real CLAM layout:
  1. one pass over all training bags (patients/s, patches/s): h5 vs pt, RAM cache off vs on (2nd epoch), workers 0 vs 2;
  2. training steps/s of ABMIL and GGMF on padded batches (batch 8, max_patches 512), forward+backward+Adam;
  3. peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import torch

from survlab.data.datamodule import CohortDataModule
from survlab.data.sources.synthetic import generate_cohort
from survlab.data.sources.synthetic_spec import SyntheticSpec, cohort_dir
from survlab.models.abmil import ABMIL
from survlab.models.ggmf import GGMF
from survlab.tasks.losses import nll_discrete_survival


def datamodule(
    root: Path, dim: int, fmt: str, cache: bool, workers: int, modalities: tuple[str, ...]
) -> CohortDataModule:
    dm = CohortDataModule(
        name="bench",
        root=str(root),
        wsi={"encoder": "synthetic", "feature_dim": dim, "format": fmt, "cache": cache},
        genomics={"signatures": "signatures_pathways.csv", "log1p": True},
        splits={"dir": str(root / "splits_bench"), "folds": 5, "val_fraction": 0.2},
        batch_size=8,
        max_patches=512,
        num_workers=workers,
        persistent_workers=workers > 0,
        modalities=modalities,
    )
    dm.setup("fit")
    return dm


def epoch_throughput(dm: CohortDataModule) -> dict[str, float]:
    """Time one pass over the training loader; patients/s and patches/s (after the max_patches cap)."""
    start, patients, patches = time.perf_counter(), 0, 0
    for batch in dm.train_dataloader():
        patients += len(batch)
        patches += int(batch.wsi_mask.sum())
    elapsed = time.perf_counter() - start
    return {
        "seconds": round(elapsed, 3),
        "patients_per_s": round(patients / elapsed, 1),
        "patches_per_s": round(patches / elapsed, 0),
    }


def train_throughput(dm: CohortDataModule, net: torch.nn.Module, epochs: int = 2) -> dict[str, float]:
    """Steps/s of forward + backward + Adam over `epochs` passes (data loading included)."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    net.train()
    steps, start = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in dm.train_dataloader():
            loss = nll_discrete_survival(net(batch).hazard_logits, batch.time_bin, batch.event)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
    elapsed = time.perf_counter() - start
    return {"steps": steps, "seconds": round(elapsed, 2), "steps_per_s": round(steps / elapsed, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=120)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--patches", type=int, nargs=2, default=(200, 1000))
    ap.add_argument("--data", type=Path, default=Path("data/bench"))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    spec = SyntheticSpec(
        n_patients=args.patients, feature_dim=args.dim, patches_per_slide=tuple(args.patches)
    )
    t0 = time.perf_counter()
    root = generate_cohort(cohort_dir(args.data, "bench", spec), spec)
    results: dict = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
        },
        "cohort": {
            "patients": args.patients,
            "feature_dim": args.dim,
            "patches_per_slide": args.patches,
            "generate_s": round(time.perf_counter() - t0, 1),
        },
        "loading": {},
        "training": {},
    }
    for fmt in ("h5", "pt"):
        for workers in (0, 2):
            dm = datamodule(root, args.dim, fmt, cache=False, workers=workers, modalities=("wsi",))
            results["loading"][f"{fmt}_workers{workers}_nocache"] = epoch_throughput(dm)
        dm = datamodule(root, args.dim, fmt, cache=True, workers=0, modalities=("wsi",))
        epoch_throughput(dm)  # fills the RAM cache
        results["loading"][f"{fmt}_workers0_cached_2nd_epoch"] = epoch_throughput(dm)
        print(json.dumps(results["loading"], indent=1), flush=True)

    dm = datamodule(root, args.dim, "h5", cache=True, workers=0, modalities=("wsi", "genomics"))
    epoch_throughput(dm)
    torch.manual_seed(0)
    results["training"]["abmil"] = train_throughput(dm, ABMIL(dm.dims, hidden_dim=256))
    results["training"]["ggmf_paper_dims"] = train_throughput(dm, GGMF(dm.dims, dim=256, heads=16))
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)
    print(json.dumps(results, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
