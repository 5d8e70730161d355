"""`survlab eval run=<sweep dir> data=<cohort>`: a 2-fold tiny sweep applied to another synthetic cohort — each fold
scored exactly as its single-run evaluation, and the fold ensemble's C-index equal to lifelines' concordance on the
folds' averaged risks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines.utils import concordance_index

from survlab.cli.eval import main
from tests.helpers.cli import TINY, check, run_survlab

pytestmark = pytest.mark.slow

SYNTH_B = (
    "defaults: [synthetic, _self_]\nname: synth_b\nroot: {root}\nwsi: {{feature_dim: 8}}\n"
    "synthetic: {{n_patients: 30, feature_dim: 8, n_genes: 60, n_pathways: 8, patches_per_slide: [6, 20], seed: 5}}\n"
)


def test_fold_ensemble_of_a_sweep_on_another_cohort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "conf" / "data"
    conf.mkdir(parents=True)
    (conf / "synth_b.yaml").write_text(SYNTH_B.format(root=tmp_path / "cohorts" / "synth_b"))
    monkeypatch.setenv("SURVLAB_CONFIG_PATH", str(tmp_path / "conf"))
    sweep = tmp_path / "sweep"
    check(
        run_survlab(
            [
                "train",
                "-m",
                "model=abmil",
                "data=synthetic",
                "fold=0,1",
                *TINY,
                "trainer.max_epochs=1",
                "export_attention=false",
                f"paths.data_dir={tmp_path / 'data'}",
                f"paths.log_dir={tmp_path / 'logs'}",
                f"hydra.sweep.dir={sweep}",
            ],
            module="survlab",
            timeout=400,
        )
    )
    folds = [sweep / "abmil" / "synthetic" / f"fold{f}" for f in (0, 1)]
    assert all((d / "DONE").is_file() for d in folds)

    assert main([f"run={sweep}", "data=synth_b"]) == 0
    ens_dir = sweep / "external" / "synth_b" / "ensemble"
    ens = json.loads((ens_dir / "metrics.json").read_text())
    assert ens["n_folds"] == 2 and ens["fold_runs"] == [str(d) for d in folds]

    # each fold: exactly its single-run evaluation (own preprocessing, same checkpoint)
    fold_preds = []
    for f, d in enumerate(folds):
        single = tmp_path / f"single{f}"
        assert main([f"run={d}", "data=synth_b", f"out={single}"]) == 0
        alone = json.loads((single / "metrics.json").read_text())
        in_sweep = json.loads((d / "eval" / "synth_b" / "metrics.json").read_text())
        tests = {k: v for k, v in alone.items() if k.startswith("test/") and isinstance(v, float)}
        assert tests and {k: in_sweep[k] for k in tests} == tests
        assert ens["folds"][f"abmil/synthetic/fold{f}"] == {
            k: v for k, v in in_sweep.items() if k.startswith("test/") and isinstance(v, float)
        }
        pd.testing.assert_frame_equal(
            pd.read_csv(single / "predictions.csv"), pd.read_csv(d / "eval" / "synth_b" / "predictions.csv")
        )
        fold_preds.append(
            pd.read_csv(single / "predictions.csv", dtype={"case_id": str}).set_index("case_id")
        )

    # the ensemble: the mean of the two folds' risks per patient, each fold's standardised over the 30 scored
    # patients first; its C-index = lifelines' on them
    preds = pd.read_csv(ens_dir / "predictions.csv", dtype={"case_id": str})
    assert list(preds.columns) == list(fold_preds[0].reset_index().columns)
    assert len(preds) == 30 and ens["n_test"] == 30

    def z(f: int) -> np.ndarray:
        r = fold_preds[f].loc[preds["case_id"], "risk"].to_numpy(np.float64)
        return (r - r.mean()) / r.std()

    mean = (z(0) + z(1)) / 2
    np.testing.assert_allclose(preds["risk"], mean, rtol=0, atol=1e-9)
    expected = concordance_index(preds["time"], -mean, preds["event"])
    assert ens["test/cindex"] == pytest.approx(expected, abs=1e-6)  # rows: float32 risks averaged in float64
    c = [ens["folds"][f"abmil/synthetic/fold{f}"]["test/cindex"] for f in (0, 1)]
    assert ens["folds_mean"]["test/cindex"] == pytest.approx(np.mean(c))
    assert ens["folds_sd"]["test/cindex"] == pytest.approx(np.std(c, ddof=1))
    protocol = json.loads((ens_dir / "protocol.json").read_text())
    assert [r["fold"] for r in protocol["fold_runs"]] == [0, 1] and "standardised" in protocol["averaging"]

    # the sweep summary does not take the ensemble's outputs for a job
    from survlab.report.sweep_jobs import collect_jobs

    assert sorted(collect_jobs(sweep)["dir"]) == [str(d) for d in folds]
