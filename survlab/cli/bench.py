"""`survlab bench ...`: the speed benchmark. It lives outside the wheel, in the source checkout's
`benchmarks/bench.py` (it is a study tool, not a library part); this command runs that file."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import survlab

BENCH = Path(survlab.__file__).resolve().parent.parent / "benchmarks" / "bench.py"


def main(argv: list[str] | None = None) -> int:
    """Run `benchmarks/bench.py` with `argv`; one line when this install has no source checkout."""
    if not BENCH.is_file():
        print(
            f"survlab: error: the benchmark is not installed with the package ({BENCH} is absent); run it from a "
            "source checkout: git clone <survlab> && python benchmarks/bench.py --help",
            file=sys.stderr,
        )
        return 1
    sys.argv = [str(BENCH), *(sys.argv[1:] if argv is None else argv)]
    try:
        runpy.run_path(str(BENCH), run_name="__main__")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0
