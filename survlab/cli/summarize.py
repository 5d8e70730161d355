"""Rebuild a sweep's summary at any time (also after a partial or resumed sweep).

    survlab summarize <sweep_dir> [--reference MODEL] [--metric test/cindex] [--out DIR] [--no-plot] [--over seed]
        [--n-boot 1000] [--boot-seed 0]

Writes ``summary.csv``, ``summary.md``, ``paired.csv`` and ``comparison.png`` into the sweep dir (or ``--out``)
and prints summary.md. (`survlab summarize` is the same command.) Exit status 0 even when jobs failed (they are listed); 2 when the dir has no jobs.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="survlab summarize", description=__doc__.splitlines()[0])
    p.add_argument("sweep_dir", help="a Hydra multirun dir (the one holding multirun.yaml)")
    p.add_argument(
        "--reference", default=None, help="model the others are compared with (default: first alphabetically)"
    )
    p.add_argument(
        "--metric",
        default=None,
        help="metric of the paired comparison and the plot (default: test/cindex, else test/balanced_accuracy)",
    )
    p.add_argument("--out", default=None, help="write the files here instead of the sweep dir")
    p.add_argument("--no-plot", action="store_true", help="skip comparison.png")
    p.add_argument(
        "--over",
        nargs="*",
        default=[],
        metavar="KEY",
        help="swept keys to pool within a row (e.g. --over seed: mean ± std over folds × seeds)",
    )
    p.add_argument(
        "--n-boot",
        type=int,
        default=1000,
        help="patient bootstrap resamples for the CIs of pooled C-index / AUC and paired differences (0: none)",
    )
    p.add_argument("--boot-seed", type=int, default=0, help="seed of the bootstrap resamples")
    a = p.parse_args(argv)
    from survlab.report.sweep import summarize_sweep  # after parsing: `--help` starts without torch

    try:
        s = summarize_sweep(
            a.sweep_dir,
            reference=a.reference,
            metric=a.metric,
            out_dir=a.out,
            plot=not a.no_plot,
            over=a.over,
            n_boot=a.n_boot,
            boot_seed=a.boot_seed,
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(s.files["summary.md"].read_text())
    if s.jobs.empty:
        print(
            f"error: no job dirs (metrics.json / DONE / FAILED / .hydra) under {a.sweep_dir}", file=sys.stderr
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
