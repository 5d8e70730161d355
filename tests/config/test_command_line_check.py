"""`survlab train` / `python -m survlab.run` check the command line's keys, config names and value types before
torch or Lightning is imported, and say what is wrong in one line with the closest valid key or name."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from survlab.config.check_cli import check_command_line
from survlab.config.check_values import ConfigError
from tests.helpers.proc import run_group

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trainer.max_epochs=two"], "trainer.max_epochs='two' must be an integer (the default is 20)"),
        (["model.task.lr=abc"], "model.task.lr='abc' must be a number (the default is 0.001)"),
        (
            ["modle=abmil"],
            "unknown key 'modle' (did you mean 'model'?); `survlab train --cfg job` prints every key",
        ),
        (["trainer.max_epoch=3"], "unknown key 'trainer.max_epoch' (did you mean 'trainer.max_epochs'?)"),
        (["model=abmill"], "model=abmill: no config 'model/abmill.yaml' (did you mean model=abmil?)"),
        (
            ["-m", "model=abmil,snnn", "fold=0,1"],
            "model=snnn: no config 'model/snnn.yaml' (did you mean model=snn?)",
        ),
        (["-m", "fold=0,1,x"], "fold='x' must be an integer (the default is 0)"),
        (["trainer.enable_progress_bar=maybe"], "trainer.enable_progress_bar='maybe' must be true or false"),
        (["+trainer.max_epochs=3"], "+trainer.max_epochs: the key already exists; set it without the '+'"),
        (["selection=bestval"], "selection='bestval' is not one of best_val, last"),
        (["fold=[1"], "cannot read the override 'fold=[1'"),
    ],
)
def test_a_bad_command_line_fails_in_one_line_naming_the_key(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_command_line(argv)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "argv",
    [
        ["model=abmil", "fold=3", "trainer.max_epochs=2", "model.task.lr=1e-4"],
        ["-m", "model=abmil,snn", "fold=0,1", "trainer.max_epochs=2"],
        [
            "trainer.devices=auto",
            "data.num_workers=auto",
            "trainer.max_epochs=null",
            "++trainer.limit_train_batches=2",
        ],
        ["experiment=demo", "eval_times=[12,24]", "+callbacks.steps._target_=x.Y"],
        ["-m", "fold=range(0,5)", "seed=0,1"],
    ],
)
def test_valid_command_lines_pass(argv: list[str]) -> None:
    check_command_line(argv)


@pytest.mark.slow
def test_survlab_train_reports_before_importing_torch_or_lightning(tmp_path: Path) -> None:
    """In a fresh interpreter: each bad command line ends with status 1 and one stderr line, torch and Lightning
    never imported; `python -m survlab.run` says the same line."""
    script = textwrap.dedent("""
        import contextlib, io, json, sys
        from survlab.cli import main as cli
        out = []
        for argv in (["train", "trainer.max_epochs=two"], ["train", "model.task.lr=abc"], ["train", "modle=abmil"]):
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                status = cli.main(argv)
            out.append([status, err.getvalue()])
        print(json.dumps({"out": out, "heavy": sorted(m for m in ("torch", "lightning") if m in sys.modules)}))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled"}
    env.pop("SURVLAB_TRACEBACK", None)
    proc = run_group(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["heavy"] == []
    assert res["out"] == [
        [1, "survlab: error: trainer.max_epochs='two' must be an integer (the default is 20)\n"],
        [1, "survlab: error: model.task.lr='abc' must be a number (the default is 0.001)\n"],
        [
            1,
            "survlab: error: unknown key 'modle' (did you mean 'model'?); `survlab train --cfg job` prints every "
            "key (a new key of your own is added with +key=value)\n",
        ],
    ]
    run = run_group(
        [sys.executable, "-m", "survlab.run", "model.task.lr=abc"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (
        run.returncode == 1
        and run.stderr == "survlab: error: model.task.lr='abc' must be a number (the default is 0.001)\n"
    )
    assert not (tmp_path / "data").exists() and not (tmp_path / "logs").exists()
