"""`survlab synth` hands out a data config that reads what it wrote (issue 25.6), whatever synthetic options are given:
the config's file fields follow the generator's spec, and the written cohort is read with the config (as
`survlab check` reads it) before the config is printed or saved."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from survlab.cli import check
from survlab.cli import main as cli

SMALL_SURVIVAL = [
    "data=synthetic",
    "data.synthetic.n_patients=20",
    "data.synthetic.feature_dim=8",
    "data.synthetic.n_genes=60",
    "data.synthetic.n_pathways=8",
    "data.synthetic.patches_per_slide=[6,12]",
]
SMALL_PETCT = [
    "data=synthetic_petct",
    "data.synthetic.n_patients=12",
    "data.synthetic.volume_size=32",
    "data.synthetic.n_slices=12",
]


def _synth_then_check(tmp_path: Path, args: list[str]) -> tuple[dict, int]:
    conf = tmp_path / "conf"
    rc = cli.main(["synth", *args, f"out={tmp_path / 'cohort'}", f"config={conf / 'data' / 'mine.yaml'}"])
    assert rc == 0
    written = yaml.safe_load((conf / "data" / "mine.yaml").read_text())
    return written, check.main(["--config-dir", str(conf), "data=mine", f"paths.root_dir={tmp_path}"])


@pytest.mark.slow
def test_petct_radiomics_dim_is_what_the_config_reads(tmp_path: Path) -> None:
    written, rc = _synth_then_check(tmp_path, [*SMALL_PETCT, "+data.synthetic.radiomics_dim=8"])
    assert written["imaging"]["radiomics_dim"] == 8  # the config said 128
    assert rc == 0  # survlab check reads the cohort with the config: no problem


def test_feature_format_and_clinical_noise_columns_are_what_the_config_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written, rc = _synth_then_check(
        tmp_path, [*SMALL_SURVIVAL, "+data.synthetic.formats=[pt]", "+data.synthetic.n_clinical_noise=1"]
    )
    assert written["wsi"]["format"] == "pt"  # only .pt files were written; the config said h5
    assert [c for c in written["clinical"]["columns"] if c.startswith("noise")] == ["noise_num_0"]
    assert "noise_cat_1" not in written["clinical"]["categorical"]  # not written with one noise column
    assert rc == 0, capsys.readouterr()


def test_a_config_that_does_not_read_the_cohort_is_refused(tmp_path: Path) -> None:
    from survlab.cli.synth import check_reads

    conf = tmp_path / "conf"
    assert (
        cli.main(["synth", *SMALL_SURVIVAL, f"out={tmp_path / 'c'}", f"config={conf / 'data' / 'x.yaml'}"])
        == 0
    )
    cfg = yaml.safe_load((conf / "data" / "x.yaml").read_text())
    cfg["wsi"]["feature_dim"] = 16  # what an option synth did not carry over would leave behind
    with pytest.raises(ValueError, match=r"does not read what was written \(\[.*feature.*16"):
        check_reads(cfg, "x")
