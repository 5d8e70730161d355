"""Measure how long the README's steps take on THIS machine and write the table the README points to.

    python scripts/timings.py                      # demo, make test, a CLAM-SB run -> experiments/timings/README.md
    python scripts/timings.py --install            # also a fresh `make install` (a new venv in a temporary folder)
    python scripts/timings.py --only demo clam_sb  # some steps only
    python scripts/timings.py --step hello="python -c pass" --out /tmp/t.md   # any command (to try the script)

Each step runs as a child process; its wall time (perf_counter) and CPU time (user + system of all its children,
os.wait4 of the step's process) and peak RSS are recorded, with the machine (CPU model, cores, memory), the
load average before and after each step, the Python / torch versions and the git commit. Run it on a quiet machine:
a load average above half the cores before a step is flagged in the table, because the wall times are then
inflated. Run artefacts go to a temporary folder (paths.root_dir), never into the repository.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "experiments" / "timings" / "README.md"


@dataclass
class Timing:
    """One measured step: wall and CPU seconds (children's user + sys), peak RSS (MiB), load before / after."""

    name: str
    command: str
    wall_s: float
    cpu_s: float
    max_rss_mib: float
    load_before: float
    load_after: float
    returncode: int


def default_steps(scratch: Path, python: str) -> dict[str, str]:
    """The README's steps as shell commands; run artefacts under `scratch`."""
    run = f"{shlex.quote(python)} -m survlab.run paths.root_dir={shlex.quote(str(scratch))}"
    return {
        "demo": f"{run} experiment=demo",
        "make_test": "make test",
        "clam_sb": f"{run} model=clam_sb data=synthetic_classification",
    }


def install_step(scratch: Path) -> str:
    """A fresh `make install` into a new venv under `scratch` (downloads: network and cache matter)."""
    return f"make install VENV={shlex.quote(str(scratch / 'venv'))}"


def measure(name: str, command: str, cwd: Path, log_dir: Path) -> Timing:
    """Run `command` (a shell line) in `cwd`, output to `log_dir/<name>.log`, and time it: os.wait4 gives the
    rusage of this step's process tree alone (CPU of every descendant it waited for, its peak RSS)."""
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with open(log_dir / f"{name}.log", "w") as log:
        proc = subprocess.Popen(command, shell=True, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = rc = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    rss = usage.ru_maxrss / (1024 if sys.platform != "darwin" else 2**20)  # Linux: KiB, macOS: bytes
    return Timing(
        name, command, round(wall, 2), round(cpu, 2), round(rss, 1), load_before, os.getloadavg()[0], rc
    )


def machine() -> dict[str, str]:
    """CPU model, cores, memory, OS, Python / torch versions, git commit."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    try:
        mem = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB"
    except (ValueError, OSError, AttributeError):
        mem = "?"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        torch = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        torch = ""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "date (UTC)": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        "CPU": cpu,
        "cores (usable / logical)": f"{usable} / {os.cpu_count()}",
        "memory": mem,
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "torch": torch or "not importable",
        "git commit": commit or "?",
    }


def markdown(timings: list[Timing], info: dict[str, str], cores: int) -> str:
    """The experiments/timings/README.md text: machine, then one row per step."""
    busy = [t.name for t in timings if t.load_before > cores / 2]
    lines = [
        "# Timings of the README's steps",
        "",
        "Written by `python scripts/timings.py` (rerun it to regenerate this file on your machine). Wall: elapsed",
        "seconds; CPU: user + system seconds of the step's processes (CPU > wall: several cores busy). Load: the",
        "1-minute load average before / after the step.",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in info.items()),
        "",
        "| step | command | wall (s) | CPU (s) | peak RSS of one process (MiB) | load before / after | exit |",
        "|---|---|---:|---:|---:|---|---:|",
        *(
            f"| {t.name} | `{t.command}` | {t.wall_s:.1f} | {t.cpu_s:.1f} | {t.max_rss_mib:.0f} | "
            f"{t.load_before:.2f} / {t.load_after:.2f} | {t.returncode} |"
            for t in timings
        ),
    ]
    if busy:
        lines += [
            "",
            f"**Busy machine:** the load average exceeded half the cores ({cores}) before {', '.join(busy)}; their "
            f"wall times are inflated. Rerun on a quiet machine.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/timings.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--install", action="store_true", help="also time a fresh `make install` (new venv)")
    p.add_argument(
        "--only", nargs="+", metavar="STEP", help="steps to run: install, demo, make_test, clam_sb"
    )
    p.add_argument(
        "--step", action="append", default=[], metavar="NAME=COMMAND", help="an extra shell command"
    )
    p.add_argument("--python", default=sys.executable, help="the interpreter with survlab installed")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"markdown table (default {DEFAULT_OUT})")
    a = p.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="survlab-timings-"))
    steps = {"install": install_step(scratch)} if a.install else {}
    steps.update(default_steps(scratch, a.python))
    extra = dict(s.split("=", 1) for s in a.step)
    if extra and not a.only:
        steps = {
            k: v for k, v in steps.items() if k == "install"
        }  # only the given commands (+ install if asked)
    steps.update(extra)
    if a.only:
        unknown = sorted(set(a.only) - set(steps))
        if unknown:
            p.error(f"unknown step(s) {unknown}; choose from {sorted(steps)}")
        steps = {k: v for k, v in steps.items() if k in a.only or k in extra}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    info = machine()
    timings = []
    for name, command in steps.items():
        print(f"timing {name}: {command}", file=sys.stderr, flush=True)
        t = measure(name, command, REPO, scratch)
        print(
            f"  wall {t.wall_s:.1f} s, CPU {t.cpu_s:.1f} s, exit {t.returncode}", file=sys.stderr, flush=True
        )
        timings.append(t)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(markdown(timings, info, cores))
    (a.out.parent / "timings.json").write_text(
        json.dumps({"machine": info, "steps": [asdict(t) for t in timings]}, indent=1)
    )
    print(f"wrote {a.out} (logs in {scratch})", file=sys.stderr)
    return max((t.returncode for t in timings), default=0)


if __name__ == "__main__":
    sys.exit(main())
