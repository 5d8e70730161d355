"""The genomics of a synthetic survival cohort: gene names, pathway and MCAT6 family lists (some listing genes absent
from the table), log-normal expression whose signal genes carry ``loading * z_gen`` (`_expression`), and the
signature tables (one column per group). Model: survlab.data.sources.synthetic.

    >>> _signature_table({"A": ["G1", "G2"], "B": ["G3"]}).to_dict("list")
    {'A': ['G1', 'G2'], 'B': ['G3', '']}
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from survlab.data.sources.synthetic_spec import (
    _STREAM_GENES,
    MCAT6_FAMILIES,
    MCAT6_SIGNAL_FAMILIES,
    SyntheticSpec,
    _rng,
)


def _gene_groups(
    spec: SyntheticSpec,
) -> tuple[list[str], dict[str, list[str]], dict[str, list[str]], list[str]]:
    """-> (gene names, pathways, MCAT6 families, signal genes). Some listed genes are absent from the table."""
    rng = _rng(spec, _STREAM_GENES)
    genes = [f"GENE{g + 1:04d}" for g in range(spec.n_genes)]
    absent = iter(f"GENE{g + 1:04d}" for g in range(spec.n_genes, spec.n_genes + 10_000))

    def draw(pool: list[str], lo: int, hi: int) -> list[str]:
        size = int(rng.integers(lo, min(hi, len(pool)) + 1))
        return [pool[i] for i in np.sort(rng.choice(len(pool), size=size, replace=False))]

    pathways = {f"PATHWAY_{p:02d}": draw(genes, 3, 30) for p in range(spec.n_pathways)}
    signal = sorted({g for p in list(pathways.values())[: spec.n_signal_pathways] for g in p})
    noise = [g for g in genes if g not in set(signal)] or genes
    mcat = {fam: draw(signal if fam in MCAT6_SIGNAL_FAMILIES else noise, 3, 25) for fam in MCAT6_FAMILIES}
    # every third pathway lists 1-2 genes missing from the expression table
    for p, name in enumerate(pathways):
        if p % 3 == 0:
            pathways[name] += [next(absent) for _ in range(1 + p % 2)]
    for fam in MCAT6_FAMILIES[::2]:
        mcat[fam].append(next(absent))
    return genes, pathways, mcat, signal


def _expression(spec: SyntheticSpec, genes: list[str], signal: list[str], z_gen: np.ndarray) -> np.ndarray:
    """Positive log-normal expression [n_patients, n_genes]; signal genes get loading * z_gen in log space."""
    rng = _rng(spec, _STREAM_GENES + 100)
    n, g = spec.n_patients, len(genes)
    base = rng.normal(3.0, 1.5, size=g)
    sd = rng.uniform(0.4, 1.0, size=g)
    loading = np.zeros(g)
    idx = np.asarray([genes.index(s) for s in signal], dtype=int)
    loading[idx] = rng.choice([-1.0, 1.0], size=idx.size) * rng.uniform(0.5, 1.0, size=idx.size)
    log_expr = base + sd * rng.standard_normal((n, g)) + np.outer(z_gen, loading)
    return np.exp(log_expr)


def _signature_table(groups: dict[str, list[str]]) -> pd.DataFrame:
    """Columns = groups, cells = gene symbols, shorter columns padded with empty cells."""
    longest = max(len(v) for v in groups.values())
    return pd.DataFrame({k: v + [""] * (longest - len(v)) for k, v in groups.items()})
