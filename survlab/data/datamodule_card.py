"""The data module's protocol-card facts (`describe()`: cohort, split, parts, modalities, fitted preprocessing,
dropped patients; JSON-safe) and the synthetic cohorts' true risks (`oracle_risk`), a mixin of
`CohortDataModule` (it reads the data module's state after setup).
"""

from __future__ import annotations

from typing import Any

import pandas as pd


class DataCard:
    """`CohortDataModule.describe` and `oracle_risk` (module doc)."""

    # set by CohortDataModule (its __init__, setup() and bases CohortSpec / PartLoaders / Absence)
    _loader_settings: Any
    _need_setup: Any
    availability: Any
    cohort: Any
    datasets: Any
    dims: Any
    drop_report: Any
    endpoint: Any
    fitted: Any
    fold: Any
    has_survival: Any
    imaging: Any
    missing: Any
    modalities: Any
    name: Any
    root: Any
    secondary: Any
    sources: Any
    split: Any
    split_cfg: Any
    split_hash: Any
    split_path: Any
    stacks_provenance: Any
    wsi_cfg: Any

    @property
    def oracle_risk(self) -> dict[str, float] | None:
        """case_id -> true risk from `<root>/truth.csv` (synthetic cohorts), else None."""
        path = self.root / "truth.csv"
        if not path.is_file():
            return None
        truth = pd.read_csv(path, dtype={"case_id": str})
        return dict(zip(truth["case_id"], truth["true_risk"].astype(float), strict=False))

    def describe(self) -> dict[str, Any]:
        """Protocol-card facts about the data (JSON-safe)."""
        self._need_setup()
        per = {p: self.cohort.rows(self.split.part(p)) for p in self.datasets}
        w = self.wsi_cfg or {}
        fitted = self.fitted
        prep: dict[str, Any] = {"fitted_on": "train"}
        if fitted.time_bins is not None:
            prep["time_bins"] = fitted.time_bins.to_dict()
        if self.secondary:
            prep["endpoint_time_bins"] = {n: b.to_dict() for n, b in fitted.endpoint_bins.items()}
        if self.sources.genomics is not None:
            assert fitted.gene_scaler is not None and fitted.gene_groups is not None
            prep["genomics"] = {
                "scaling": fitted.gene_scaler.method,
                "log1p": fitted.gene_scaler.log1p,
                "groups": fitted.gene_groups.report(),
            }
            if fitted.gene_filter_report:
                prep["genomics"]["select"] = fitted.gene_filter_report
        if self.sources.clinical is not None:
            assert fitted.clinical_encoder is not None
            prep["clinical"] = {
                "features": fitted.clinical_encoder.feature_names,
                "imputation": "median / most-frequent",
                "scaling": "z-score, one-hot",
            }
        if self.sources.imaging is not None:
            prep["imaging"] = self.imaging.describe()
            if getattr(self, "stacks_provenance", None) is not None:  # stacks cut from a segmentor's masks
                prep["imaging"]["stacks_from_segmentor"] = self.stacks_provenance
        return {
            "cohort": self.name,
            "root": str(self.root),
            "endpoint": {
                "name": self.endpoint.name,
                "time_col": self.endpoint.time_col,
                "censorship_col": self.endpoint.censorship_col,
                "event_col": self.endpoint.event_col,
            }
            if self.endpoint
            else None,
            "targets": fitted.targets,
            "n_patients": {p: len(r) for p, r in per.items()},
            "n_events": {p: int(r["event"].sum()) for p, r in per.items()} if self.has_survival else None,
            # per label / slide label / endpoint and part: n patients (slides) and n_missing, masked out of the losses
            "target_counts": getattr(self, "target_counts", {}),
            "modalities": list(self.modalities),
            "encoder": (w.get("trident") or {}).get("encoder")
            if w.get("layout") == "trident"
            else w.get("encoder"),
            "wsi_layout": {"layout": "trident", **(w.get("trident") or {})}
            if w.get("layout") == "trident"
            else None,
            "feature_dim": self.dims.wsi_dim if self.dims else None,
            "scales": dict(self.dims.scale_dims) if self.dims and self.dims.scale_dims else None,
            "genomic_groups": dict(zip(self.dims.genomic_names, self.dims.genomic_sizes, strict=False))
            if self.dims and self.dims.genomic_sizes
            else None,
            "split_file": str(self.split_path),
            "split_hash": self.split_hash,
            "split_import": getattr(self, "split_meta", {}).get("imported"),
            "fold": self.fold,
            "folds": self.split_cfg["folds"],
            "split_repeat": int(self.split_cfg["repeat"]),
            # only when used: site-preserved folds, the column and where the groups came from
            **(
                {
                    "split_group": {
                        "column": self.split_cfg["group"],
                        "source": getattr(self, "split_meta", {}).get("group_source"),
                        "n_groups": len(set(getattr(self, "split_groups", {}).values())),
                    }
                }
                if self.split_cfg.get("group")
                else {}
            ),
            "dropped": self.drop_report,
            # only when set / when some patient lacks a provided modality: older protocol cards keep their keys
            **({"missing": self.missing} if self.missing != "error" else {}),
            **(
                {"availability": pd.Series(self.availability).value_counts().sort_index().to_dict()}
                if self.availability
                else {}
            ),
            "preprocessing": prep,
            # DataLoader workers / pinning, and which of them `auto` chose from this machine (choose_loader)
            "loader": {k: v for k, v in self._loader_settings().items()},
        }
