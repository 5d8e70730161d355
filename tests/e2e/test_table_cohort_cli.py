"""A user's own table cohort, defined outside the package (README "Your own cohort"), trains end to end through
`python -m survlab.run`; and the slow check: coxnet and coxmlp run 5 folds on GSE7390."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers.cli import check, run_survlab
from tests.helpers.table_cohort import write_table_cohort, write_user_config

QUIET = ["debug=fast_dev_run", "export_attention=false"]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_user_table_cohort_from_a_config_folder_trains_coxmlp(tmp_path: Path) -> None:
    # three CSVs as a lab has them: survival.csv, clinical.csv (covariates), expression.csv
    root = write_table_cohort(tmp_path / "my_data" / "brca_local", n=60, three_files=True)
    write_user_config(tmp_path / "my_conf", "brca_local", root, three_files=True)
    os.chmod(root, 0o555)  # user data is read-only: survlab must not need to write there
    before = _snapshot(root)
    try:
        out = check(
            run_survlab(
                ["model=coxmlp", "data=brca_local", f"paths.log_dir={tmp_path / 'logs'}", *QUIET],
                env={"SURVLAB_CONFIG_PATH": str(tmp_path / "my_conf")},
            )
        )
    finally:
        os.chmod(root, 0o755)
    assert "survlab: coxmlp on brca_local fold 0: test C-index" in out
    run_dir = next((tmp_path / "logs" / "runs" / "coxmlp" / "brca_local" / "fold0").iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["n_test"] == 12 and "selection_warning" in metrics
    protocol = json.loads((run_dir / "protocol.json").read_text())
    assert protocol["cohort"]["modalities"] == ["genomics", "clinical"]
    assert protocol["cohort"]["split_file"].startswith(str(tmp_path / "logs" / "splits" / "brca_local"))
    assert _snapshot(root) == before


def test_user_table_cohort_missing_root_is_one_line(tmp_path: Path) -> None:
    write_user_config(tmp_path / "my_conf", "nowhere", tmp_path / "absent")
    proc = run_survlab(
        ["model=coxnet", "data=nowhere", f"paths.log_dir={tmp_path / 'logs'}", *QUIET],
        env={"SURVLAB_CONFIG_PATH": str(tmp_path / "my_conf"), "HYDRA_FULL_ERROR": "0"},
    )
    assert proc.returncode == 1
    err = [line for line in proc.stderr.splitlines() if line.startswith("survlab: error:")]
    assert len(err) == 1 and f"clinical CSV at {tmp_path / 'absent' / 'clinical.csv'}" in err[0], proc.stderr[
        -2000:
    ]
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("model", ["coxnet", "coxmlp"])
def test_coxnet_and_coxmlp_run_five_folds_on_gse7390(tmp_path: Path, model: str) -> None:
    from tests.helpers.runs import run_job

    scores = []
    for fold in range(5):
        metrics = run_job(
            tmp_path / f"fold{fold}",
            [
                f"experiment={model}_gse7390",
                f"fold={fold}",
                f"paths.log_dir={tmp_path / 'logs'}",
                "logger=csv",
                "trainer.enable_progress_bar=false",
                "callbacks.rich_progress_bar=null",
                "callbacks.lr_monitor=null",
            ],
        )
        assert (tmp_path / f"fold{fold}" / "predictions.csv").is_file() and metrics["n_test"] in (39, 40)
        scores.append(metrics["test/cindex"])
    assert min(scores) > 0.5 and sum(scores) / 5 > 0.56, scores  # measured: coxnet 0.644, coxmlp 0.646
    if model == "coxnet":  # an exact fit: it reproduces the table in experiments/gse7390/README.md
        published = [0.815, 0.606, 0.698, 0.550, 0.551]
        assert [round(c, 3) for c in scores] == published
