"""Golden outputs of a few short runs and every recipe's job identity, recorded before code is moved and compared
after (a reorganisation must keep the numbers).

    python scripts/golden.py record            # writes tests/golden/runs/<name>.csv + tests/golden/identities.json
    python scripts/golden.py compare           # exit 1 with the differences when a run's predictions or an identity moved

Each run is one in-process job on a tiny embedded cohort (survival NLL and Cox, classification, a table estimator,
the multi-task MM-DLS model); its predictions.csv is kept sorted by case_id. `tests/e2e/test_golden.py` runs the
comparison. Record with OMP_NUM_THREADS=1 (the test suite's setting): float results depend on the thread count.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden"
sys.path.insert(0, str(REPO))  # tests.helpers (in-process jobs) when run as `python scripts/golden.py`
from tests.helpers.cli import TINY as TINY_COHORT  # noqa: E402

TINY = [*TINY_COHORT, "export_attention=false"]
# name -> overrides of one short job (paths are added per run)
RUNS: dict[str, list[str]] = {
    "abmil_nll": ["model=abmil", *TINY, "fold=1"],
    "ggmf_nll": ["model=ggmf", *TINY, "selection=last"],
    "clinical_mlp_cox": [
        "model=clinical_mlp",
        "model.net.output=risk",
        "model.task.loss=cox",
        *TINY,
        "data.batch_size=16",
    ],
    "abmil_cls": [
        "model=abmil_cls",
        "data=synthetic_classification",
        "debug=tiny",
        "data.synthetic.n_patients=60",
        "data.synthetic.feature_dim=8",
        "data.wsi.feature_dim=8",
        "data.synthetic.patches_per_slide=[10,30]",
        "data.splits.folds=3",
        "export_attention=false",
    ],
    "coxnet_gse7390": ["model=coxnet", "data=gse7390", "debug=tiny", "fold=2"],
    "mmdls": [
        "experiment=mmdls_synthetic",
        "debug=tiny",
        "data.synthetic.n_patients=40",
        "model.net.dim=16",
        "model.net.hidden=16",
        "model.net.heads=2",
    ],
}


def _compose(overrides: list[str], out: Path) -> Any:
    from tests.helpers.runs import compose_config

    return compose_config(out, overrides)


def identities() -> dict[str, str]:
    """Job identity digest of every experiment recipe and of every model on its default cohort."""
    from survlab.config.search_path import PACKAGE_CONF_DIR
    from survlab.utils import job_identity

    conf = Path(PACKAGE_CONF_DIR)
    names = [f"experiment={p.stem}" for p in sorted((conf / "experiment").glob("[!_]*.yaml"))]
    names += [f"model={p.stem}" for p in sorted((conf / "model").glob("[!_]*.yaml"))]
    names += [f"data={p.stem}" for p in sorted((conf / "data").glob("[!_]*.yaml"))]
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            try:
                cfg = _compose([name], Path(tmp))
            except Exception as err:  # a model that needs another cohort still has an identity with it
                out[name] = f"compose error: {type(err).__name__}"
                continue
            out[name] = job_identity._digest(job_identity.identity_of(cfg))
    return out


def run(name: str, tmp: Path) -> pd.DataFrame:
    """Predictions of one golden run, sorted by case_id."""
    from tests.helpers.runs import run_job

    out = tmp / name
    run_job(out / "run", [*RUNS[name], f"paths.data_dir={tmp / 'data'}", f"paths.log_dir={out / 'logs'}"])
    return pd.read_csv(out / "run" / "predictions.csv").sort_values("case_id").reset_index(drop=True)


def compare_frames(old: pd.DataFrame, new: pd.DataFrame, atol: float = 1e-5) -> list[str]:
    """Differences between two predictions tables: columns, case ids, numbers beyond atol."""
    diffs = []
    if list(old.columns) != list(new.columns):
        diffs.append(f"columns {list(old.columns)} -> {list(new.columns)}")
    if list(old["case_id"]) != list(new["case_id"]):
        return [*diffs, "case ids differ"]
    for col in old.columns.intersection(new.columns):
        a, b = old[col], new[col]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            delta = np.nanmax(np.abs(a.to_numpy(float) - b.to_numpy(float))) if len(a) else 0.0
            if not np.array_equal(np.isnan(a.to_numpy(float)), np.isnan(b.to_numpy(float))) or delta > atol:
                diffs.append(f"{col}: max |delta| {delta:.3g}")
        elif not a.astype(str).equals(b.astype(str)):
            diffs.append(f"{col}: values differ")
    return diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/golden.py", description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["record", "compare"])
    parser.add_argument("--runs", nargs="*", default=list(RUNS), help="golden runs (default: all)")
    args = parser.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "disabled")
    problems: list[str] = []
    (GOLDEN / "runs").mkdir(parents=True, exist_ok=True)
    ids = identities()
    if args.mode == "record":
        (GOLDEN / "identities.json").write_text(json.dumps(ids, indent=1, sort_keys=True) + "\n")
    else:
        old = json.loads((GOLDEN / "identities.json").read_text())
        problems += [
            f"identity of {k} moved" for k in sorted(old.keys() | ids.keys()) if old.get(k) != ids.get(k)
        ]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.runs:
            frame = run(name, Path(tmp))
            path = GOLDEN / "runs" / f"{name}.csv"
            if args.mode == "record":
                frame.to_csv(path, index=False, float_format="%.9g")
            else:
                problems += [f"{name}: {d}" for d in compare_frames(pd.read_csv(path), frame)]
    for line in problems:
        print(line)
    print(
        "golden outputs " + ("recorded" if args.mode == "record" else "differ" if problems else "unchanged")
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
