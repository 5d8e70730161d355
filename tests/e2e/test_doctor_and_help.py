"""`survlab doctor`, the subcommands' help naming them as the user typed them, and `survlab check --config-dir`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from survlab.cli import main as cli


@pytest.mark.parametrize("command", ["eval", "summarize", "bench", "doctor"])
def test_subcommand_help_names_the_survlab_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"survlab {command}" in out
    assert "python -m survlab." not in out.replace("(`python -m survlab.", "") and "__main__.py" not in out
    if command != "doctor":
        assert f"usage: survlab {command}" in out


def test_check_takes_config_dir_like_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`survlab check --config-dir DIR data=<a config in DIR>` composes the config from DIR (was:
    OverrideParseException on '--config-dir'); the cohort itself is not read here (the spy stops after composing)."""
    import survlab.cli.check as check_module

    lab = tmp_path / "lab" / "data"
    lab.mkdir(parents=True)
    (lab / "toy.yaml").write_text("defaults: [synthetic, _self_]\nname: toy\nbatch_size: 3\n")
    monkeypatch.chdir(tmp_path)
    composed = []
    real = check_module.compose_data

    def spy(overrides: list[str], info: dict | None = None) -> None:
        dm = real(overrides, info)
        composed.append((dm.name, dm.batch_size))
        raise ValueError("composed; not reading the cohort in this test")

    monkeypatch.setattr(check_module, "compose_data", spy)
    for flag in (
        ["--config-dir", str(tmp_path / "lab")],
        ["-cd", str(tmp_path / "lab")],
        [f"--config-dir={tmp_path / 'lab'}"],
    ):
        assert cli.main(["check", *flag, "data=toy"]) == 1
        assert (
            capsys.readouterr().err == "survlab check: error: composed; not reading the cohort in this test\n"
        )
    assert composed == [("toy", 3)] * 3
    assert cli.main(["check", "data=toy"]) == 1  # without the folder: not found, one line
    assert "Could not find 'data/toy'" in capsys.readouterr().err
    assert cli.main(["check", "--config-dir"]) == 1
    assert "--config-dir needs a folder" in capsys.readouterr().err


def test_doctor_reports_the_machine_and_unwritable_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    for var in ("SURVLAB_ROOT", "SURVLAB_DATA", "SURVLAB_LOGS", "SURVLAB_SPLITS"):
        monkeypatch.delenv(var, raising=False)
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert f"torch {torch.__version__} " in out and f"GPUs: {gpus} " in out
    assert f"CUDA available: {'yes' if torch.cuda.is_available() else 'no'}" in out
    assert "W&B: wandb" in out and "disabled (WANDB_MODE=disabled" in out
    assert f"paths.data_dir: {tmp_path / 'data'} (will be created under {tmp_path}, writable)" in out
    has_tb = importlib.util.find_spec("tensorboard") is not None
    assert ("tensorboard missing (pip install" in out) is not has_tb
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert cli.main(["doctor", f"paths.log_dir={blocker / 'logs'}"]) == 1
    captured = capsys.readouterr()
    assert (
        f"paths.log_dir: {blocker / 'logs'} (will be created under {blocker}, NOT writable)" in captured.out
    )
    assert captured.err.splitlines()[0] == (
        f"survlab doctor: problem: paths.log_dir={blocker / 'logs'} is not writable; pass paths.log_dir=<a folder "
        "you can write> (or SURVLAB_LOGS=...)"
    )


def test_config_dir_flags_become_a_hydra_searchpath(tmp_path: Path) -> None:
    """The helper `survlab check` / `pack` / `synth` share: every spelling of --config-dir, the rest kept in order."""
    from survlab.config.search_path import searchpath_overrides, split_config_dirs

    argv = ["data=toy", "--config-dir", "a", "-cd", "b", "--config-dir=c", "--verify"]
    dirs, rest = split_config_dirs(argv)
    assert (dirs, rest) == (["a", "b", "c"], ["data=toy", "--verify"])
    assert searchpath_overrides([str(tmp_path)]) == [f"hydra.searchpath=[file://{tmp_path}]"]
    assert searchpath_overrides([]) == []
