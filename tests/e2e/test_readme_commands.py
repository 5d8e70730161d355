"""The README's commands as written: the default paths resolve before a multirun's first job (fast), and every
`survlab ...` / `python -m survlab...` line of the README's bash blocks either runs at a tiny size from a fresh
working directory with no `paths.*` override, or is listed in SKIP with the reason it cannot run here (slow)."""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from survlab.config.search_path import PACKAGE_CONF_DIR
from survlab.runner.hydra_callbacks import SweepKeysCallback
from tests.helpers.proc import run_group

REPO = Path(__file__).resolve().parents[2]


def test_multirun_sweep_dir_resolves_before_any_job_with_the_default_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A multirun resolves `hydra.sweep.dir` (and the sweep-keys callback writes into it) before any job sets
    HydraConfig: with the default `paths` (no paths.* / hydra.sweep.dir override) it lands under ./logs/multiruns."""
    monkeypatch.chdir(tmp_path)
    for var in ("SURVLAB_ROOT", "SURVLAB_LOGS", "SURVLAB_DATA"):
        monkeypatch.delenv(var, raising=False)
    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None  # as in the launching process of `survlab train -m ...`
    try:
        with initialize_config_dir(config_dir=str(PACKAGE_CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=["model=abmil", "fold=1"], return_hydra_config=True)
        assert not HydraConfig.initialized()
        sweep_dir = Path(
            str(cfg.hydra.sweep.dir)
        )  # was: InterpolationResolutionError 'HydraConfig was not set'
        assert sweep_dir.parent == tmp_path / "logs" / "multiruns"
        assert Path(str(cfg.paths.data_dir)) == tmp_path / "data"
        SweepKeysCallback().on_multirun_start(cfg)
        assert json.loads((sweep_dir / "sweep_keys.json").read_text()) == {"swept": []}
    finally:
        GlobalHydra.instance().clear()


README = REPO / "README.md"
TINY = ["trainer.max_epochs=1", "data.synthetic.n_patients=40"]  # appended to training commands (no paths.*)
#: README commands run as written (placeholders filled from the runs before them), in this order
RUN = (
    "survlab train",
    "survlab train model=abmil data=synthetic fold=3",
    "survlab train -m model=abmil,snn fold=0,1 trainer.max_epochs=2",
    "survlab summarize <sweep dir>",
    "survlab eval run=<run dir>",
    "python -m survlab.run resume=logs/runs/ggmf/synthetic/fold2/<timestamp>_<pid>",
    "survlab train --cfg job model=mcat",
    "survlab synth data=synthetic out=/tmp/cohort",
    "survlab doctor",
    "survlab --help",
)
#: README commands whose cohort is the user's, a paper's or too big for a test: their command line is checked as
#: written (keys, config names, value types: survlab.config.check_cli.check_command_line), not run
COMPOSE_ONLY = (
    "survlab train model=snn data=gse7390",
    "survlab train model=ggmf data=tcga_luad",
    "python -m survlab.run experiment=hmf_synthetic",
    "python -m survlab.run experiment=hmf_camelyon17 fold=0",
    "python -m survlab.run experiment=hmf_camelyon17 model.net.filter=frozen "
    "'model.filter_checkpoint=\"~/clam/s_0_checkpoint.pt\"'",
    "python -m survlab.run experiment=hmf_tcga_nsclc 'model.net.text_encoder.path=\"~/models/flan-t5-small\"' "
    "model.net.text_encoder.trainable=true",
    "python -m survlab.run model=clam_sb data=synthetic_classification",
    "python -m survlab.run model=abmil_cls data=tcga_nsclc",
    "python -m survlab.run experiment=pathgen_pipeline_synthetic",
    "python -m survlab.run -m experiment=pathgen_pipeline_tcga_kirc fold=0,1,2,3,4 trainer=gpu",
    "python -m survlab.run data=tcga_luad model=abmil data.wsi.layout=trident data.wsi.trident.job_dir=/data/trident/luad "
    "data.wsi.trident.encoder=uni_v1 data.wsi.trident.mag=20 data.wsi.trident.patch_size=256 data.wsi.feature_dim=1024",
    "python -m survlab.run data=tcga_blca model=mcat 'data.splits.import={format: mcat, dir: /data/mcat_splits/tcga_blca}' "
    "fold=0",
    "python -m survlab.run experiment=mmdls_synthetic",
    "python -m survlab.run experiment=mmdls_synthetic external_data=synthetic_petct_external",
    "python -m survlab.run experiment=mmdls_seg_synthetic fold=0",
    "python -m survlab.run experiment=mmdls_nsclc",
    "python -m survlab.run -m model=ggmf,mcat,abmil data=synthetic,tcga_luad fold=0,1,2,3,4",
    "survlab train -m model=abmil,snn fold=0,1,2,3,4 +data.splits.repeat=0,1,2",
    "survlab train -m model=abmil data=tcga_brca fold=0,1,2,3,4 +data.splits.group=null,site",
    "survlab train model=abmil data=tcga_brca fold=0 +data.splits.group=site",
    # data.missing (data configs) and model.net.modality_dropout (late_fusion) come with issue 23.2's data / models work
    "survlab train -m model=late_fusion,abmil data=tcga_luad data.missing=keep fold=0,1,2,3,4",
    "survlab train model=late_fusion data=tcga_luad data.missing=keep model.net.modality_dropout=0.2 fold=0",
    "python -m survlab.run -m hydra/launcher=submitit_slurm hydra.launcher.partition=gpu hydra.launcher.timeout_min=240 "
    "hydra.launcher.cpus_per_task=8 hydra.launcher.mem_gb=32 'hydra.launcher.setup=[\"source .venv/bin/activate\"]' "
    "trainer=gpu model=ggmf,mcat,abmil data=tcga_luad,tcga_brca fold=0,1,2,3,4",
    "python -m survlab.run -m hparams_search=optuna model=abmil data=synthetic fold=0 hydra.sweeper.n_trials=30",
    "survlab train model=abmil_cls data=synthetic_classification data.splits.calibration_fraction=0.2 "
    "'conformal.alphas=[0.1,0.2]' conformal.mondrian=true",
    "survlab train model=abmil data=synthetic +data.splits.calibration_fraction=0.2 'conformal.alphas=[0.1,0.2]'",
)
#: README commands that need the user's own cohort / config folder or another tool's files: neither run nor composed
SKIP = {
    "survlab check data=my_cohort": "the user's cohort (survlab check is run by tests/cli/test_check.py)",
    "survlab eval run=<run dir> data=<other cohort>": "a second cohort (tests/e2e/test_evaluate.py)",
    "survlab eval run=<run dir> data=<other cohort> 'conformal.alphas=[0.1,0.2]'": "a second cohort "
    "(tests/e2e/test_conformal_run.py)",
    "survlab import-splits --format clam --dir splits/task_1 --clinical clinical.csv --out "
    "logs/splits/x": "a peer's split files (tests/data/test_split_import.py)",
    "python -m survlab.run data=my_cohort model=coxnet": "the user's cohort config",
    "python -m survlab.run -m data=my_cohort model=coxnet,coxmlp,snn,clinical_mlp fold=0,1,2,3,4": "the user's cohort",
    "survlab cut run=<that run dir> out=<folder 0>": "a segmentation run (tests/models/test_mmdls_seg.py)",
    "python -m survlab.run experiment=mmdls_synthetic data.synthetic=null data.root=<folder 0> data.imaging.missing=drop "
    "fold=0": "imaging_cut's output",
    "survlab eval run=<run dir> data=my_cohort": "the user's cohort",
    "survlab eval run=<keep run dir> data=synthetic_missing_mnar": "a run trained with data.missing=keep "
    "(tests/e2e/test_external_missing_run.py)",
    "survlab eval run=<complete run dir> data=synthetic_missing_mnar data.missing=drop": "a run trained on a complete "
    "cohort (tests/e2e/test_external_missing_run.py)",
    "survlab eval run=<sweep dir> data=my_cohort": "the user's cohort (tests/e2e/test_eval_ensemble.py)",
    "survlab eval run=<run dir> data=my_cohort data.root=/data/other out=/results/ext": "the user's cohort",
    "SURVLAB_CONFIG_PATH=/lab/conf survlab train data=my_cohort model=abmil": "the user's config folder",
    "survlab train --config-dir /lab/conf data=my_cohort --cfg job": "the user's config folder",
}


def readme_commands() -> list[str]:
    """The `survlab ...` / `python -m survlab...` lines of the README's bash blocks (continuations joined, trailing
    comments dropped)."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if re.match(r"^(SURVLAB_\w+=\S+\s+)?(survlab\b|python -m survlab)", line):
                out.append(" ".join(line.split()))
    return out


def _argv(command: str) -> list[str]:
    """`survlab X ...` -> python -m survlab X ...; `python -m M ...` -> python -m M ... (this interpreter)."""
    words = shlex.split(command)
    if words[0] == "survlab":
        return [sys.executable, "-m", "survlab", *words[1:]]
    assert words[:2] == ["python", "-m"], command
    return [sys.executable, *words[1:]]


def test_every_readme_command_is_run_composed_or_skipped_with_a_reason() -> None:
    found = readme_commands()
    assert len(found) == len(set(found))
    assert sorted(found) == sorted([*RUN, *COMPOSE_ONLY, *SKIP]), (
        "classify each README command (run here, compose-only, or skipped with a reason): "
        f"new {sorted(set(found) - {*RUN, *COMPOSE_ONLY, *SKIP})}, gone {sorted({*RUN, *COMPOSE_ONLY, *SKIP} - set(found))}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("command", COMPOSE_ONLY)
def test_readme_command_lines_compose_as_written(
    command: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from survlab.config.check_cli import check_command_line

    monkeypatch.chdir(tmp_path)
    argv = _argv(command)
    check_command_line(argv[4:] if argv[3] == "train" else argv[3:])


@pytest.mark.slow
def test_readme_commands_run_as_written_from_a_fresh_folder(tmp_path: Path) -> None:
    """The cheap README commands, run one after the other from an empty working directory with the default paths
    (and W&B as a user has it), training at a tiny size: each exits 0 without a traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "SURVLAB_", "HYDRA_"))}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    filled: dict[str, str] = {}
    for command in RUN:
        line = command.replace("/tmp/cohort", str(tmp_path / "cohort"))
        if "<sweep dir>" in line:
            (sweep,) = (tmp_path / "logs" / "multiruns").iterdir()
            line = line.replace("<sweep dir>", str(sweep))
        line = line.replace("<run dir>", filled.get("abmil", "<run dir>"))
        line = re.sub(
            r"resume=\S+", f"resume={filled.get('ggmf')}", line
        )  # the default run, finished: skipped
        argv = _argv(line)
        if ("train" in argv[3:4] and "--cfg" not in argv) or command.startswith("survlab synth"):
            argv += [t for t in TINY if t.split("=")[0] + "=" not in command]
        proc = run_group(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"{command}\n{out[-4000:]}"
        assert "Traceback" not in out and "HydraConfig was not set" not in out and "reinit" not in out, out[
            -4000:
        ]
        for line in out.splitlines() if "train" in argv[3:4] else []:
            if line.startswith("outputs: ") and "/runs/" in line:
                filled[Path(line.split(" ", 1)[1]).parts[-4]] = line.split(" ", 1)[1]
        if "-m" in argv[3:]:
            (sweep,) = (tmp_path / "logs" / "multiruns").iterdir()
            assert "4 jobs, 0 failed, refused or incomplete" in out
            assert (sweep / "summary.md").is_file() and sorted(
                p.parent.name for p in sweep.glob("*/synthetic/fold*/DONE")
            ) == ["fold0", "fold0", "fold1", "fold1"]
        if "resume=" in command:
            assert "skipping completed job" in out
    assert sorted(filled) == ["abmil", "ggmf"]
    assert (tmp_path / "cohort" / "clinical.csv").is_file()
