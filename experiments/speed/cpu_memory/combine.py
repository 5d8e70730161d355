"""One table from the per-size memory runs (experiments/speed/measure_cpu.sh, step B): peak host memory against the
cohort's size, for the packed store with the RAM cache off and for the default RAM cache."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    lines = [
        "| setting | patients | x20 features on disk GB | epoch s | train patients/s | peak host GB |",
        "|---|---|---|---|---|---|",
    ]
    for run in sorted(
        HERE.glob("*/bench.json"),
        key=lambda p: (p.parent.name.rsplit("_p", 1)[0], int(p.parent.name.rsplit("_p", 1)[1])),
    ):
        sc = json.loads(run.read_text())["scaling"]
        for n, r in sc["cohort_size"].items():
            lines.append(
                f"| {' '.join(sc['overrides'])} | {n} | {r['feature_gb']:.2f} | {r['epoch_s']:.2f} | "
                f"{r['train_patients_per_s']:.1f} | {r['peak_host_gb']:.2f} |"
            )
    (HERE / "memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
