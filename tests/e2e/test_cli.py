"""The one `survlab` command line: fast help / config printing, dispatch and one-line errors, `survlab synth`, and a
cohort of the user's own (outside the package) that trains through the user config search path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from lifelines.utils import concordance_index

from survlab.cli import main as cli
from survlab.cli.synth import describe_layout
from tests.helpers.proc import run_group

REPO = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SURVLAB_CONFIG_PATH", "SURVLAB_TRACEBACK")}
    return {
        **env,
        "PYTHONPATH": str(REPO),
        "WANDB_MODE": "disabled",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        **extra,
    }


def _py(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return run_group(
        [sys.executable, *args], cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=300
    )


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def test_help_and_config_printing_import_neither_torch_nor_lightning(tmp_path: Path) -> None:
    """`survlab --help`, every `survlab <command> --help` and `survlab train --cfg job` run without importing
    torch or Lightning (checked in a fresh interpreter), and print what they should."""
    script = textwrap.dedent("""
        import contextlib, io, json, sys
        from survlab.cli import main as cli
        out = {}
        for argv in (["--help"], ["train", "--help"], ["summarize", "--help"], ["synth", "--help"],
                     ["bench", "--help"], ["pack", "--help"], ["train", "--cfg", "job", "model=abmil", "fold=3"]):
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                status = cli.main(argv)
            out[" ".join(argv)] = [status, buf.getvalue()]
        heavy = sorted(m for m in ("torch", "lightning", "pytorch_lightning") if m in sys.modules)
        print(json.dumps({"out": out, "heavy": heavy}))
    """)
    proc = _py(["-c", script], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["heavy"] == []
    out = res["out"]
    assert all(status == 0 for status, _ in out.values()), {k: v[0] for k, v in out.items()}
    assert "synth" in out["--help"][1] and "train" in out["--help"][1]
    assert "abmil" in out["train --help"][1] and "synthetic" in out["train --help"][1]  # config names listed
    assert "--patients" in out["bench --help"][1] and "sweep_dir" in out["summarize --help"][1]
    assert "out=DIR" in out["synth --help"][1]
    cfg_text = out["train --cfg job model=abmil fold=3"][1]
    assert "name: abmil" in cfg_text and "fold: 3" in cfg_text


def test_train_cfg_prints_the_same_config_as_survlab_run(tmp_path: Path) -> None:
    """The light `--cfg job` path composes exactly what `python -m survlab.run --cfg job` composes, user config
    dirs included (`--config-dir`)."""
    lab = tmp_path / "lab"
    (lab / "model").mkdir(parents=True)
    (lab / "model" / "my_abmil.yaml").write_text(
        "defaults: [abmil, _self_]\nname: my_abmil\ntask:\n  lr: 0.00123\n"
    )
    args = ["--cfg", "job", "--config-dir", str(lab), "model=my_abmil", "data=tcga_luad", "seed=7"]
    light = _py(["-m", "survlab", "train", *args], cwd=tmp_path)
    full = _py(["-m", "survlab.run", *args], cwd=tmp_path)
    assert light.returncode == 0 and full.returncode == 0, (light.stderr + full.stderr)[-3000:]
    assert light.stdout == full.stdout
    assert "lr: 0.00123" in light.stdout and "name: my_abmil" in light.stdout


def test_unknown_command_and_missing_module_are_one_line_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["trian"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown command 'trian'" in err and "train" in err
    monkeypatch.setitem(cli.COMMANDS, "check", cli.Command("survlab.no_such_module_xyz", "test"))
    assert cli.main(["check", "data=synthetic"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "survlab: error: `survlab check` is not available in this install "
        "(module survlab.no_such_module_xyz is missing)\n"
    )
    assert cli.main([]) == 2 and "commands:" in capsys.readouterr().out


def test_a_command_error_is_one_line_with_a_nonzero_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["synth", "data=synthetic"]) == 1
    assert capsys.readouterr().err == (
        "survlab: error: survlab synth: give the folder to write, e.g. survlab synth "
        "data=synthetic out=/tmp/cohort\n"
    )
    assert cli.main(["synth", "data=gse7390", f"out={tmp_path / 'x'}"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data=gse7390 has no `synthetic:` block" in err
    assert not (tmp_path / "x").exists()
    assert cli.main(["synth", "data=my_lab_cohort_xyz", f"out={tmp_path / 'z'}"]) == 1
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and "Could not find 'data/my_lab_cohort_xyz'" in err
        and "--config-dir DIR" in err
    )
    existing = tmp_path / "mine.yaml"
    existing.write_text("keep: me\n")
    assert cli.main(["synth", "data=synthetic", f"out={tmp_path / 'y'}", f"config={existing}"]) == 1
    assert "exists; survlab never overwrites it" in capsys.readouterr().err
    assert existing.read_text() == "keep: me\n"


def test_synth_refuses_a_folder_holding_user_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    user = tmp_path / "my_data"
    user.mkdir()
    (user / "clinical.csv").write_text("case_id\nA\n")
    before = _files(user)
    assert cli.main(["synth", "data=synthetic", f"out={user}", "data.synthetic.n_patients=20"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds files survlab did not create (e.g. clinical.csv" in err
    assert _files(user) == before and (user / "clinical.csv").read_text() == "case_id\nA\n"


def test_describe_layout_collapses_per_case_folders(tmp_path: Path) -> None:
    for case in range(12):
        (tmp_path / "images" / f"P{case:02d}").mkdir(parents=True)
        for s in range(2):
            (tmp_path / "images" / f"P{case:02d}" / f"slice_{s}.png").write_bytes(b"x")
    (tmp_path / "clinical.csv").write_text("a\n")
    assert describe_layout(tmp_path) == [
        "  clinical.csv",
        "  images/<12 folders>/  24 files (24 *.png), e.g. images/P00/slice_0.png",
    ]


def test_synth_cohort_trains_from_a_user_config_folder(tmp_path: Path) -> None:
    """`survlab synth ... config=<lab>/data/mycoh.yaml`, then `survlab train data=mycoh` through SURVLAB_CONFIG_PATH
    from a cwd outside the repo: the run ends 0, reads the written files as a real cohort (its oracle from
    truth.csv equals the generator's) and writes nothing into the cohort folder."""
    out, lab = tmp_path / "cohort", tmp_path / "lab"
    synth = _py(
        [
            "-m",
            "survlab",
            "synth",
            "data=synthetic",
            f"out={out}",
            "name=mycoh",
            f"config={lab / 'data' / 'mycoh.yaml'}",
            "data.synthetic.n_patients=40",
            "data.synthetic.feature_dim=8",
            "data.synthetic.n_genes=60",
            "data.synthetic.n_pathways=8",
            "data.synthetic.patches_per_slide=[6,20]",
        ],
        cwd=tmp_path,
    )
    assert synth.returncode == 0, synth.stderr[-3000:]
    assert f"SURVLAB_CONFIG_PATH={lab} survlab train data=mycoh" in synth.stdout
    assert "features/synthetic/h5_files/" in synth.stdout and "clinical.csv" in synth.stdout
    written = (lab / "data" / "mycoh.yaml").read_text()
    assert "synthetic:" not in written and f"root: {out}" in written and "feature_dim: 8" in written
    before = _files(out)
    train = _py(
        [
            "-m",
            "survlab",
            "train",
            "data=mycoh",
            "debug=fast_dev_run",
            f"paths.log_dir={tmp_path / 'logs'}",
            "export_attention=false",
            "data.splits.folds=3",
        ],
        cwd=tmp_path,
        SURVLAB_CONFIG_PATH=str(lab),
    )
    assert train.returncode == 0, (train.stdout + train.stderr)[-4000:]
    metrics = json.loads(next((tmp_path / "logs" / "runs").rglob("metrics.json")).read_text())
    assert metrics["cohort"] == "mycoh" and 0.0 <= metrics["test/cindex"] <= 1.0
    # the fold's test patients come from the split file written OUTSIDE the cohort folder; their oracle C-index
    # (truth.csv's true risk, Harrell's C by lifelines) is the one the run reports
    split = pd.read_csv(tmp_path / "logs" / "splits" / "mycoh" / "os_k3_seed0" / "splits_0.csv")
    test_ids = set(split.loc[split.split == "test", "case_id"])
    assert metrics["n_test"] == len(test_ids)
    truth = pd.read_csv(out / "truth.csv").set_index("case_id").loc[sorted(test_ids)]
    clin = (
        pd.read_csv(out / "clinical.csv")
        .drop_duplicates("case_id")
        .set_index("case_id")
        .loc[sorted(test_ids)]
    )
    oracle = concordance_index(clin.survival_months, -truth.true_risk, 1 - clin.censorship)
    assert metrics["oracle_cindex"] == pytest.approx(oracle, abs=1e-9)
    assert _files(out) == before  # nothing written into (or changed in) the cohort folder


def test_user_cohort_on_a_shipped_base_trains_with_config_dir(tiny_cohort: Path, tmp_path: Path) -> None:
    """A cohort YAML in the user's own folder building on the shipped `_tcga` base, found through `--config-dir`,
    trains with `python -m survlab.run` run from another cwd; the cohort folder is left untouched."""
    lab = tmp_path / "lab"
    (lab / "data").mkdir(parents=True)
    (lab / "data" / "lab_cohort.yaml").write_text(
        textwrap.dedent(f"""\
        defaults: [_tcga, _self_]
        name: lab_cohort
        root: {tiny_cohort}
        wsi: {{encoder: synthetic, format: h5, feature_dim: 8}}
        genomics: {{signatures: signatures_mcat6.csv}}
        clinical: {{columns: [age, sex], categorical: [sex]}}
        splits: {{folds: 3}}
        num_workers: 0
        pin_memory: false
        """)
    )
    before = _files(tiny_cohort)
    proc = _py(
        [
            "-m",
            "survlab.run",
            "--config-dir",
            str(lab),
            "data=lab_cohort",
            "model=ggmf",
            "debug=fast_dev_run",
            f"paths.log_dir={tmp_path / 'logs'}",
            "export_attention=false",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    run_dirs = list((tmp_path / "logs" / "runs" / "ggmf" / "lab_cohort").glob("fold0/*"))
    assert len(run_dirs) == 1 and (run_dirs[0] / "DONE").is_file()
    metrics = json.loads((run_dirs[0] / "metrics.json").read_text())
    assert 0.0 <= metrics["test/cindex"] <= 1.0
    assert (tmp_path / "logs" / "splits" / "lab_cohort").is_dir()  # split files outside the cohort folder
    assert _files(tiny_cohort) == before
    assert pd.read_csv(tiny_cohort / "clinical.csv").shape[0] > 0


def test_train_resume_of_a_dir_without_a_run_is_one_line(tmp_path: Path) -> None:
    """`survlab train resume=<dir>` goes through survlab.run's resume handling; a dir that holds no run -> one line
    naming the missing job record, status 1, no traceback."""
    proc = _py(["-m", "survlab", "train", f"resume={tmp_path}"], cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"survlab: resume={tmp_path}: no job record ({tmp_path / 'job.json'}); pass a run dir written by survlab.run"
    ]
