"""Folders are the layers, and imports run one way: utils < metrics < data < models < tasks < report < config <
runner < cli (each may import its own layer and those below), with no exception.

Every import of a survlab module in every file under survlab/ is read from the source (ast: module-level and lazy
imports inside functions alike, relative imports resolved, `importlib.import_module("survlab....")` with a literal
name too) and checked against the layer order. The module graph must have no cycles either (a cycle is an import
that only works in one order). The package top level holds only __init__, __main__ and run.py (the alias of
`python -m survlab.run`)."""

from __future__ import annotations

import ast
from pathlib import Path

import survlab

ROOT = Path(survlab.__file__).resolve().parent
# A module may import its own layer and the layers below. config/ (the config checks and search path) is read by
# runner and cli; conf/ holds YAML only.
ORDER = ("utils", "metrics", "data", "models", "tasks", "report", "config", "runner", "cli")
LAYERS = {name: i for i, name in enumerate(ORDER)}
TOP_LEVEL_MODULES = {"__init__.py", "__main__.py", "run.py"}
ENTRY = {"survlab.run": LAYERS["cli"], "survlab.__main__": LAYERS["cli"]}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> tuple[str, int]:
    """('<package or entry module>', layer) of a survlab module; the bare package `survlab` is layer -1."""
    parts = module.split(".")
    if len(parts) == 1:
        return "survlab", -1
    if (ROOT / parts[1]).is_dir():
        if parts[1] not in LAYERS:
            raise AssertionError(
                f"survlab/{parts[1]}/ has no layer: add it to ORDER in tests/test_layering.py"
            )
        return parts[1], LAYERS[parts[1]]
    if module in ENTRY:
        return parts[1], ENTRY[module]
    raise AssertionError(
        f"{module} is a loose module at the package top level: move it into its layer's folder"
    )


FILES = sorted(ROOT.rglob("*.py"))
MODULES = {module_name(f) for f in FILES}


def imports_of(path: Path, module: str | None = None) -> list[tuple[str, int]]:
    """(imported survlab module, line) for every import in the file, wherever it sits (`module`: the file's dotted
    name, default from its place under survlab/)."""
    module = module or module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from ..eval import x
                parts = package.split(".")
                base = ".".join(
                    [*parts[: len(parts) - node.level + 1], *([node.module] if node.module else [])]
                )
            # `from survlab.eval import summary` imports the module survlab.report.sweep
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        out += [(name, node.lineno) for name in names if name == "survlab" or name.startswith("survlab.")]
    return out


EDGES = [(module_name(f), target, line) for f in FILES for target, line in imports_of(f)]


def test_the_import_parser_sees_lazy_relative_and_dynamic_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"  # parsed as if it were survlab/tasks/probe.py
    probe.write_text(
        "import numpy\nfrom survlab.data.batch import Batch\n\n\ndef f():\n"
        "    from survlab.runner import train\n    from ..metrics import survival, km as k\n"
        "    from . import losses\n    import importlib\n    importlib.import_module('survlab.run')\n"
    )
    found = sorted(imports_of(probe, "survlab.tasks.probe"))
    assert found == [
        ("survlab.data.batch", 2),
        ("survlab.metrics.km", 7),
        ("survlab.metrics.survival", 7),
        ("survlab.run", 10),
        ("survlab.runner.train", 6),
        ("survlab.tasks.losses", 8),
    ]


def test_imports_run_one_way() -> None:
    wrong = []
    for src, dst, line in EDGES:
        (src_pkg, src_layer), (dst_pkg, dst_layer) = layer_of(src), layer_of(dst)
        if dst_layer > src_layer:
            wrong.append(
                f"{src} (line {line}) imports {dst}: {src_pkg} (layer {src_layer}) may not import "
                f"{dst_pkg} (layer {dst_layer})"
            )
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_utils_imports_only_utils_and_the_package_root_imports_nothing() -> None:
    # utils/ may read survlab.__version__ / survlab.__file__ (`import survlab`): the root imports no subpackage
    assert [e for e in EDGES if e[0] == "survlab"] == []
    wrong = [
        f"{src} (line {line}) imports {dst}"
        for src, dst, line in EDGES
        if src.startswith("survlab.utils") and dst != "survlab" and not dst.startswith("survlab.utils")
    ]
    assert not wrong, "survlab/utils holds leaves only:\n" + "\n".join(wrong)


def test_metrics_compute_and_report_draws() -> None:
    """No module of survlab/metrics draws (matplotlib): figures belong in survlab/report (km.py, figures.py)."""
    drawing = sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / "metrics").rglob("*.py") if "matplotlib" in p.read_text()
    )
    assert not drawing, f"plotting in the metrics layer: {drawing}; move it to survlab/report"


def test_the_package_top_level_holds_no_loose_modules() -> None:
    loose = sorted(p.name for p in ROOT.glob("*.py") if p.name not in TOP_LEVEL_MODULES)
    assert not loose, f"loose modules at survlab/: {loose}; each belongs in its layer's folder"
    folders = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
    assert set(folders) <= {*ORDER, "conf"}, f"folders that are no layer: {set(folders) - {*ORDER, 'conf'}}"


def test_run_alias_is_thin() -> None:
    """`python -m survlab.run` is an alias of survlab/cli/train.py, not a second entry point."""
    text = (ROOT / "run.py").read_text()
    assert len(text.splitlines()) <= 10 and "from survlab.cli.train import main" in text


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of a directed graph as [a, b, ..., a], or None (depth-first search, nodes in sorted order)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return [*stack[stack.index(n) :], n]
            if n not in state and (cycle := visit(n)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles() -> None:
    def resolve(name: str) -> str:  # `import survlab.eval.x.y` of a name that is no module -> its module
        while name not in MODULES and "." in name:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for src, dst, _ in EDGES:
        dst = resolve(dst)
        # a package's __init__ importing its own submodules is not a cycle with them
        if dst != src and not dst.startswith(src + ".") and not src.startswith(dst + "."):
            graph[src].add(dst)
    assert find_cycle(graph) is None, "import cycle: " + " -> ".join(find_cycle(graph) or [])
