"""Shipped public table-only cohort: GSE7390 breast cancer (Desmedt et al. 2007), as in scikit-survival.

``survlab/data/sources/public/gse7390.csv`` was written once from ``sksurv.datasets.load_breast_cancer()`` (scikit-survival
is only a test dependency, so the data ships with survlab). Verified when written:

- 198 patients, 51 events (event rate 0.2576, endpoint = time to distant metastasis, ``t.tdm`` / ``e.tdm``);
- ``t.tdm`` is in DAYS (125 .. 9108, median 4384 = 12 years of follow-up), so
  ``survival_months = t.tdm / 30.4375`` (4.1 .. 299.2 months); ``censorship = 1 - e.tdm`` (1 = censored);
- clinical columns kept raw as sksurv has them: ``age`` (years), ``er`` ('negative' / 'positive'),
  ``grade`` ('well differentiated' / 'intermediate' / 'poorly differentiated' / 'unkown' [sic, 2 patients]),
  ``size`` (tumour size, cm);
- 76 probe columns (Affymetrix HG-U133A probes of the 76-gene signature, R-style names such as ``X200726_at``),
  log2 intensities; no missing values.

Read it with ``float_precision="round_trip"`` to get sksurv's float64 values exactly.

Example:
    >>> root = materialize_gse7390("/tmp/cohorts/gse7390")      # doctest: +SKIP
    >>> sorted(p.name for p in root.iterdir())                   # doctest: +SKIP
    ['clinical.csv', 'cohort.json', 'expression.csv', 'signatures_all.csv']
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from survlab.data.sources.cohort_folder import atomic_cohort

GSE7390_CSV: Path = Path(__file__).with_name("public") / "gse7390.csv"
GSE7390_CLINICAL: tuple[str, ...] = ("age", "er", "grade", "size")
_SURVIVAL: tuple[str, ...] = ("case_id", "survival_months", "censorship")


def load_gse7390_table() -> pd.DataFrame:
    """The shipped table [198 rows]: case_id, survival_months, censorship, age, er, grade, size, 76 probes."""
    return pd.read_csv(GSE7390_CSV, float_precision="round_trip")


def probe_columns(table: pd.DataFrame) -> list[str]:
    """Names of the 76 expression probe columns (everything that is not survival or clinical)."""
    return [c for c in table.columns if c not in _SURVIVAL + GSE7390_CLINICAL]


def _write_gse7390(tmp: Path, key: dict[str, str]) -> None:
    table = load_gse7390_table()
    probes = probe_columns(table)
    table[list(_SURVIVAL + GSE7390_CLINICAL)].to_csv(tmp / "clinical.csv", index=False)
    table[["case_id", *probes]].to_csv(tmp / "expression.csv", index=False)
    pd.DataFrame({"all_probes": probes}).to_csv(tmp / "signatures_all.csv", index=False)
    events = int((table.censorship == 0).sum())
    meta = {
        "source": "GSE7390 via scikit-survival load_breast_cancer (t.tdm days / 30.4375 -> months)",
        "n_patients": len(table),
        "n_events": events,
        "event_rate": events / len(table),
        "cache_key": key,
    }
    (tmp / "cohort.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def materialize_gse7390(root: str | Path) -> Path:
    """Write GSE7390 to ``root`` in survlab's table-only layout (cached; rewritten only if the shipped CSV changes).
    ``root`` must be absent, empty or a folder survlab created (see `atomic_cohort`); user files are never touched.

    Files: clinical.csv (case_id, survival_months, censorship, age, er, grade, size — no slide_id),
    expression.csv (case_id + 76 probes), signatures_all.csv (one group ``all_probes``), cohort.json (counts).
    """
    key = {"cohort": "gse7390", "sha256": hashlib.sha256(GSE7390_CSV.read_bytes()).hexdigest()}
    return atomic_cohort(root, key, "cohort.json", lambda tmp: _write_gse7390(tmp, key), what="public")
