"""`survlab <command> ...`: the one command line (also `python -m survlab`).

    survlab train model=abmil data=tcga_luad fold=2      # = python -m survlab.run ... (same Hydra overrides, -m, resume=)
    survlab train --cfg job model=abmil                  # print the composed config (no Lightning / torch import)
    survlab check data=my_cohort                         # every problem of a cohort's files, before a sweep
    survlab eval run=<run dir> data=<other cohort>       # a trained model on another cohort
    survlab summarize <sweep dir>                        # rebuild a sweep's summary
    survlab synth data=synthetic out=/tmp/cohort         # a synthetic cohort in the real file layout
    survlab bench --patients 200                         # speed benchmark
    survlab pack data=tcga_luad                          # build a cohort's packed feature store once
    survlab doctor                                       # torch / CUDA / GPUs, extras, W&B mode, writable paths

This module imports no heavy library: `--help`, `<command> --help` and config printing start in well under a
second; each command's module is imported only when that command runs.
"""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from survlab import __version__


@dataclass(frozen=True)
class Command:
    """A subcommand: `module:function(argv) -> int | None` (imported when the command runs) and a one-line summary."""

    module: str
    summary: str
    function: str = "main"


COMMANDS: dict[str, Command] = {
    "train": Command(
        "survlab.cli.train", "fit, select on inner validation, test once (= python -m survlab.run)"
    ),
    "check": Command(
        "survlab.cli.check",
        "read a whole cohort once and report every problem (per file / case, with the fix)",
    ),
    "eval": Command(
        "survlab.cli.eval", "apply a trained run to a cohort (external validation, or predictions only)"
    ),
    "summarize": Command("survlab.cli.summarize", "rebuild a sweep's summary tables and comparison plot"),
    "synth": Command(
        "survlab.cli.synth", "write a synthetic cohort in the real file layout, print its data config"
    ),
    "bench": Command(
        "survlab.cli.bench",
        "speed benchmark (benchmarks/bench.py of a source checkout): survlab vs the papers' loop",
    ),
    "pack": Command(
        "survlab.cli.pack", "build (or verify) a cohort's packed feature store once, before a sweep"
    ),
    "cut": Command(
        "survlab.cli.cut",
        "an MM-DLS segmentor run's predicted lesion masks -> a new cohort of cut PET/CT stacks",
    ),
    "import-splits": Command(
        "survlab.cli.import_splits", "a peer's split folder (CLAM / MCAT / PORPOISE) -> survlab split files"
    ),
    "doctor": Command(
        "survlab.cli.doctor",
        "this machine for survlab: torch / CUDA / GPUs, cores, extras, W&B mode, writable folders",
    ),
}

#: Hydra flags that only compose / print: handled without importing Lightning (survlab.run imports it)
_PRINT_FLAGS = ("--cfg", "-c", "--info", "-i", "--hydra-help", "--shell-completion", "-sc")
_HELP = ("-h", "--help")


def usage() -> str:
    """The top-level help: commands and where to read more."""
    width = max(len(n) for n in COMMANDS)
    lines = [
        f"survlab {__version__}: multimodal cancer outcome models (PyTorch Lightning + Hydra)",
        "",
        "usage: survlab <command> [arguments]   (survlab <command> --help for a command's own help)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {cmd.summary}" for name, cmd in COMMANDS.items()]
    lines += [
        "",
        "Configs: the package's survlab/conf, plus SURVLAB_CONFIG_PATH folders, ./conf and --config-dir DIR",
        "(README 'Your own configs'). Errors are one line; SURVLAB_TRACEBACK=1 shows the traceback.",
    ]
    return "\n".join(lines)


def train_usage(argv: Sequence[str]) -> str:
    """`survlab train --help`: usage and the config names of each group (package + user folders)."""
    extra = _config_dirs_from_argv(argv)
    groups = {g: _available(g, extra) for g in ("data", "model", "experiment", "trainer", "logger", "debug")}
    lines = [
        "usage: survlab train [key=value ...] [-m] [--cfg job|hydra|all] [--config-dir DIR] [resume=<run dir>]",
        "",
        "One (model, cohort, fold) job: fit on the fold's training patients, select a checkpoint on the inner",
        "validation split, test once on the fold's test patients, write outputs. Same as `python -m survlab.run`.",
        "",
        "  survlab train experiment=demo",
        "  survlab train model=abmil data=tcga_luad fold=2",
        "  survlab train -m model=ggmf,mcat fold=0,1,2,3,4        # a sweep (one job per combination)",
        "  survlab train --cfg job model=abmil                   # print the composed config, run nothing",
        "  survlab train resume=<run dir>                        # resume a killed run with its own overrides",
        "",
        "config groups (pick one with group=name; shared parts starting with '_' are not listed):",
    ]
    for g, names in groups.items():
        lines += textwrap.wrap(
            ", ".join(names) or "-", width=110, initial_indent=f"  {g:<11} ", subsequent_indent=" " * 14
        )
    lines += ["", "Hydra's own help: survlab train --hydra-help"]
    return "\n".join(lines)


def _config_dirs_from_argv(argv: Sequence[str]) -> list[str]:
    """The folders given with `--config-dir DIR` / `-cd DIR` / `--config-dir=DIR`."""
    out: list[str] = []
    for i, a in enumerate(argv):
        if a in ("--config-dir", "-cd") and i + 1 < len(argv):
            out.append(argv[i + 1])
        elif a.startswith("--config-dir="):
            out.append(a.split("=", 1)[1])
    return out


def _available(group: str, extra_dirs: Sequence[str]) -> list[str]:
    from pathlib import Path

    from survlab.config.search_path import available

    names = set(available(group))
    for d in extra_dirs:
        names |= {p.stem for p in (Path(d).expanduser() / group).glob("*.yaml") if not p.stem.startswith("_")}
    return sorted(names)


def print_config(argv: Sequence[str]) -> int:
    """Hydra's `--cfg` / `--info` / `--hydra-help` for `survlab train` through a task function that runs nothing:
    the same config search path (package, SURVLAB_CONFIG_PATH, ./conf, --config-dir) and override grammar as
    `survlab.run`, without importing Lightning."""
    import hydra

    from survlab.utils import job_hydra

    job_hydra.register_resolvers()  # ${survlab.pid:} / ${survlab.job_tag:...} in conf/hydra/default.yaml

    @hydra.main(version_base="1.3", config_path="../conf", config_name="config")
    def _compose_only(cfg: object) -> None:  # pragma: no cover - Hydra prints before it would be called
        return None

    saved = sys.argv
    sys.argv = ["survlab train", *argv]
    try:
        _compose_only()
    except SystemExit as exc:  # Hydra's own error exit (it printed the one-line reason)
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    finally:
        sys.argv = saved
    return 0


def train(argv: Sequence[str]) -> int:
    """`survlab train ...` -> `survlab.cli.train.main` with the same argv (config printing and help stay light)."""
    argv = list(argv)
    if any(a in _HELP for a in argv):
        print(train_usage(argv))
        return 0
    if any(a in _PRINT_FLAGS or a.startswith("--cfg=") for a in argv) and not any(
        a.startswith("resume=") for a in argv
    ):
        return print_config(argv)
    from survlab.config.check_cli import check_command_line

    check_command_line(
        argv
    )  # keys, config names, value types: one line in about a second, before Lightning loads
    from survlab.cli import train as train_cli

    saved = sys.argv
    sys.argv = ["survlab train", *argv]
    try:
        train_cli.main(check=False)
    finally:
        sys.argv = saved
    return 0


def _load(name: str) -> Callable[[list[str]], int | None] | str:
    """The command's function, or a one-line reason it is not available in this install."""
    cmd = COMMANDS[name]
    try:
        module = importlib.import_module(cmd.module)
    except ModuleNotFoundError as exc:
        if exc.name == cmd.module:
            return f"`survlab {name}` is not available in this install (module {cmd.module} is missing)"
        raise
    return getattr(module, cmd.function)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch `survlab <command> ...`; returns the exit status (non-zero on an error, reported in one line)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in _HELP:
        print(usage())
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        print(f"survlab {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(
            f"survlab: error: unknown command {name!r}; commands: {', '.join(COMMANDS)} (survlab --help)",
            file=sys.stderr,
        )
        return 2
    try:
        if name == "train":
            return train(rest)
        func = _load(name)
        if isinstance(func, str):
            print(f"survlab: error: {func}", file=sys.stderr)
            return 2
        status = func(rest)
    except SystemExit as exc:
        if isinstance(exc.code, str):  # e.g. SystemExit("survlab: resume=...: no job record")
            print(exc.code, file=sys.stderr)
            return 1
        return int(exc.code or 0)
    except BrokenPipeError:  # e.g. `survlab synth ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:  # noqa: BLE001 - one line on the console; the traceback on request
        if os.environ.get("SURVLAB_TRACEBACK") == "1":
            raise
        from survlab.utils.jobs import error_line

        print(f"survlab: error: {error_line(exc)}", file=sys.stderr)
        return 1
    return int(status or 0)


if __name__ == "__main__":
    raise SystemExit(main())
