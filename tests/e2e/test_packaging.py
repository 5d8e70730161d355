"""Packaging: a non-editable wheel carries the configs and data and runs the demo from anywhere; the dependency
ranges hold the exact tested set (requirements/constraints.txt); one version source."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import survlab
from tests.helpers.proc import run_group

REPO = Path(__file__).resolve().parents[2]
CONSTRAINTS = REPO / "requirements" / "constraints.txt"


def _pins() -> dict[str, str]:
    """Normalised package name -> pinned version of the constraints file (one `name==version` a line)."""
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert "==" in line and not line.startswith("-e"), f"not an exact pin: {line!r}"
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra if not r.startswith("survlab[")]
    return reqs


def test_ranges_hold_the_tested_set() -> None:
    """Every dependency (core and extras) is a range, pinned in the constraints file at a version inside it;
    torch is the one the project is tested with; survlab itself is not in the lock."""
    pins = _pins()
    assert pins["torch"] == "2.13.0" and "survlab" not in pins
    for req in _requirements():
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{req} is not in {CONSTRAINTS.name} (make lock)"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} outside {req}"
        assert not any(s.operator == "==" for s in req.specifier), (
            f"{req}: a range, not a pin (pins: constraints)"
        )


def test_one_version_source() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert project["license"] == "MIT" and "MIT License" in (REPO / "LICENSE").read_text()
    assert project["scripts"]["survlab"] == "survlab.cli.main:main"


def _build_wheel(tmp: Path) -> Path:
    """Build survlab's wheel from a copy of the sources (the checkout is left as it is)."""
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "local")
    for d in ("survlab", "hydra_plugins"):
        shutil.copytree(REPO / d, src / d, ignore=ignore)
    for f in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / f, src / f)
    proc = run_group(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("survlab-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_wheel(tmp_path_factory.mktemp("wheel"))


def test_wheel_carries_configs_data_and_plugin(wheel: Path, tmp_path: Path) -> None:
    """The wheel carries every packaged config, the public cohort CSV, the prompts, the Hydra search-path plugin,
    the version from survlab.__version__ and the license; the constraints file parses against it."""
    names = set(zipfile.ZipFile(wheel).namelist())
    for member in (
        "survlab/conf/config.yaml",
        "survlab/conf/data/synthetic.yaml",
        "survlab/conf/data/_tcga.yaml",
        "survlab/conf/model/ggmf.yaml",
        "survlab/conf/experiment/demo.yaml",
        "survlab/conf/hydra/launcher/submitit_slurm.yaml",
        "survlab/data/sources/public/gse7390.csv",
        "survlab/data/modalities/prompts/synthetic_slide.json",
        "hydra_plugins/survlab_searchpath/survlab_searchpath.py",
        "survlab/cli/main.py",
        "survlab/__main__.py",
    ):
        assert member in names, member
    n_yaml = sum(1 for p in (REPO / "survlab" / "conf").rglob("*.yaml") if "local" not in p.parts)
    assert sum(n.startswith("survlab/conf/") and n.endswith(".yaml") for n in names) == n_yaml
    assert not any(n.startswith(("tests/", "experiments/", "benchmarks/", "scripts/")) for n in names)
    # study tools stay outside: the benchmark and the README table generator (survlab/cli/bench.py is only the
    # launcher that runs benchmarks/bench.py of a source checkout, and says so when there is none)
    assert not any(n.endswith("/results_table.py") for n in names)
    assert [n for n in names if n.endswith("/bench.py")] == ["survlab/cli/bench.py"]
    launcher = zipfile.ZipFile(wheel).read("survlab/cli/bench.py").decode()
    assert "runpy.run_path" in launcher and len(launcher.splitlines()) < 40
    meta = zipfile.ZipFile(wheel).read(f"survlab-{survlab.__version__}.dist-info/METADATA").decode()
    assert f"Version: {survlab.__version__}" in meta and "License-Expression: MIT" in meta
    # the lock parses and agrees with the wheel (no index needed: --no-deps, the wheel itself)
    dry = run_group(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-deps",
            "--no-index",
            "-q",
            "--target",
            str(tmp_path / "dry"),
            "-c",
            str(CONSTRAINTS),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert dry.returncode == 0, dry.stderr[-3000:]


@pytest.mark.slow
def test_wheel_install_runs_the_demo(wheel: Path, tmp_path: Path) -> None:
    """The wheel installed (not editable) into its own folder, run from a cwd outside the repo: the demo recipe
    (1 batch, 40 patients) ends 0 with the package, its configs and the config search-path plugin all imported from
    that folder; the installed `survlab` script prints the demo's config."""
    site = tmp_path / "site"
    proc = run_group(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("SURVLAB_CONFIG_PATH", "SURVLAB_TRACEBACK")}
    env.update(PYTHONPATH=str(site), WANDB_MODE="disabled", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    where = run_group(
        [
            sys.executable,
            "-c",
            "import json, survlab, hydra_plugins.survlab_searchpath as p, survlab.config.search_path as c;"
            "print(json.dumps([survlab.__file__, p.__file__, str(c.PACKAGE_CONF_DIR)]))",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert where.returncode == 0, where.stderr[-2000:]
    for path in json.loads(where.stdout):
        assert Path(path).resolve().is_relative_to(site.resolve()), path

    logs = tmp_path / "logs"
    demo = run_group(
        [
            sys.executable,
            "-m",
            "survlab.run",
            "experiment=demo",
            "debug=fast_dev_run",
            f"paths.log_dir={logs}",
            "data.synthetic.n_patients=40",
            "export_attention=false",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert demo.returncode == 0, (demo.stdout + demo.stderr)[-4000:]
    (metrics_file,) = (logs / "runs" / "ggmf" / "synthetic" / "fold0").glob("*/metrics.json")
    metrics = json.loads(metrics_file.read_text())
    assert metrics["status"] == "ok" and 0.0 <= metrics["test/cindex"] <= 1.0
    assert (
        work / "data" / "synthetic" / "default" / "oracle.json"
    ).is_file()  # generated under the cwd's data/

    script = site / "bin" / "survlab"
    cfg = run_group(
        [sys.executable, str(script), "train", "--cfg", "job", "experiment=demo"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cfg.returncode == 0 and "max_epochs: 20" in cfg.stdout, cfg.stderr[-2000:]


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_flag(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    from survlab.cli import main as cli

    assert cli.main([flag]) == 0
    assert capsys.readouterr().out == f"survlab {survlab.__version__}\n"


def test_default_job_runs_on_core_dependencies_only(tmp_path: Path) -> None:
    """With every extra's package hidden (launchers, tensorboard, optuna, test references, text encoders), the
    default job (default data / model / loggers / callbacks / launcher; 1 batch, 40 patients) ends 0 and writes its
    metrics: nothing in the default path needs an extra."""
    env = {k: v for k, v in os.environ.items() if k not in ("SURVLAB_CONFIG_PATH", "SURVLAB_TRACEBACK")}
    env.update(PYTHONPATH=str(REPO), WANDB_MODE="disabled", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = run_group(
        [
            sys.executable,
            str(REPO / "tests" / "helpers" / "core_install.py"),
            "survlab.run",
            "debug=fast_dev_run",
            f"paths.log_dir={tmp_path / 'logs'}",
            f"paths.data_dir={tmp_path / 'data'}",
            "data.synthetic.n_patients=40",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "IMPORTED_HIDDEN=[]" in proc.stdout
    (metrics_file,) = (tmp_path / "logs" / "runs" / "ggmf" / "synthetic" / "fold0").glob("*/metrics.json")
    assert json.loads(metrics_file.read_text())["status"] == "ok"


def test_core_install_helper_hides_an_extra(tmp_path: Path) -> None:
    """The helper above really hides an extra: a module importing scikit-learn fails under it."""
    (tmp_path / "uses_sklearn.py").write_text("import sklearn\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    proc = run_group(
        [sys.executable, str(REPO / "tests" / "helpers" / "core_install.py"), "uses_sklearn"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "No module named 'sklearn'" in proc.stderr
