"""A table-only cohort with a planted signal, written as a user would bring it: clinical.csv (outcome + covariates),
expression.csv, and a data config built on the shipped `_table` base in a user config folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

PLANTED = ("G00", "G01")  # risk = 1.2 * G00 - 1.2 * G01 + 0.6 * (age - 60) / 10


def write_table_cohort(
    root: Path, n: int = 200, n_genes: int = 30, seed: int = 0, three_files: bool = False
) -> Path:
    """clinical.csv (case_id, survival_months, censorship, age, stage) + expression.csv (case_id, G00..); with
    `three_files`, survival.csv (case_id, survival_months, censorship) and clinical.csv (case_id, age, stage) apart,
    in different row orders. Rows are written in a shuffled order (nothing may depend on it). Returns root."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    ids = [f"P{i:03d}" for i in range(n)]
    genes = rng.normal(size=(n, n_genes)) * rng.uniform(0.5, 3.0, size=n_genes) + 5.0
    z = (genes - genes.mean(0)) / genes.std(0)
    age = rng.normal(60, 10, n)
    risk = 1.2 * z[:, 0] - 1.2 * z[:, 1] + 0.6 * (age - 60) / 10
    event_time = rng.exponential(24.0 * np.exp(-risk))
    censor_time = rng.uniform(6, 80, n)
    order = rng.permutation(n)
    clinical = pd.DataFrame(
        {
            "case_id": ids,
            "survival_months": np.minimum(event_time, censor_time).round(4),
            "censorship": (event_time > censor_time).astype(int),
            "age": age.round(1),
            "stage": rng.choice(["I", "II", "III"], n),
        }
    ).iloc[order]
    if three_files:
        clinical[["case_id", "survival_months", "censorship"]].to_csv(root / "survival.csv", index=False)
        clinical[["case_id", "age", "stage"]].iloc[::-1].to_csv(root / "clinical.csv", index=False)
    else:
        clinical.to_csv(root / "clinical.csv", index=False)
    expr = pd.DataFrame(genes, columns=[f"G{j:02d}" for j in range(n_genes)])
    expr.insert(0, "case_id", ids)
    expr.iloc[rng.permutation(n)].to_csv(root / "expression.csv", index=False)
    pd.DataFrame({"case_id": ids, "true_risk": risk}).to_csv(
        root.parent / f"{root.name}_truth.csv", index=False
    )
    return root


def write_user_config(conf: Path, name: str, root: Path, extra: str = "", three_files: bool = False) -> Path:
    """<conf>/data/<name>.yaml: the README's four-line cohort config on the `_table` base (`three_files`: outcomes in
    survival.csv, covariates in clinical.csv)."""
    (conf / "data").mkdir(parents=True, exist_ok=True)
    path = conf / "data" / f"{name}.yaml"
    path.write_text(
        "defaults: [_table, _self_]\n"
        f"name: {name}\n"
        f"root: {root}\n"
        + (
            "clinical_csv: survival.csv\nclinical: {table: clinical.csv, columns: [age, stage], categorical: [stage]}\n"
            if three_files
            else "clinical: {columns: [age, stage], categorical: [stage]}\n"
        )
        + extra
    )
    return path
