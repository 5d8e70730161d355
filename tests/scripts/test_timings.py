"""scripts/timings.py on trivial commands: the markdown table it writes (machine, one row per step, exit codes),
CPU time counted over a step's whole process tree, and the default steps being the README's commands."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "timings.py"


def _timings():
    spec = importlib.util.spec_from_file_location("timings_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_table_rows_exit_codes_and_cpu_of_grandchildren(tmp_path: Path) -> None:
    t = _timings()
    py = sys.executable
    busy = (
        f"{py} -c \"import subprocess, sys; subprocess.run([sys.executable, '-c', 'sum(range(3 * 10**6))'])\""
    )
    out = tmp_path / "timings" / "README.md"
    rc = t.main(["--step", f"busy={busy}", "--step", "fails=exit 3", "--out", str(out)])
    assert rc == 3  # the worst step's exit code
    text = out.read_text()
    assert "| cores (usable / logical) |" in text and "| git commit |" in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| busy |") or ln.startswith("| fails |")]
    assert [r.split(" | ")[0] for r in rows] == ["| busy", "| fails"]
    assert rows[1].endswith("| 3 |") and rows[0].endswith("| 0 |")
    steps = {s["name"]: s for s in json.loads((out.parent / "timings.json").read_text())["steps"]}
    assert steps["busy"]["cpu_s"] > 0  # the grandchild's CPU is counted (wait4 of the step's process tree)
    assert set(steps) == {"busy", "fails"}  # given commands only: the heavy README steps are not run


def test_default_steps_are_the_readme_commands(tmp_path: Path) -> None:
    t = _timings()
    steps = t.default_steps(tmp_path, "python")
    assert steps == {
        "demo": f"python -m survlab.run paths.root_dir={tmp_path} experiment=demo",
        "make_test": "make test",
        "clam_sb": f"python -m survlab.run paths.root_dir={tmp_path} model=clam_sb data=synthetic_classification",
    }
    assert t.install_step(tmp_path) == f"make install VENV={tmp_path / 'venv'}"
    with pytest.raises(SystemExit):
        t.main(["--only", "nope", "--out", str(tmp_path / "x.md")])
