"""`CohortDataModule`: cohort table -> persisted patient-level split -> fold-fitted preprocessing -> DataLoaders.

The data module is the orchestration; each job lives in its own module:
- the options and their defaults: survlab.data.options (DataOptions, WsiOptions, GenomicsOptions, SplitOptions);
- the cohort table, endpoints, labels and persisted split: survlab.data.cohort.spec (CohortSpec);
- generated / public cohorts: survlab.data.sources.registry;
- the modalities read once before fitting (bags, expression, CT / PET): survlab.data.modalities.readers, with the
  feature stores and their cache policy in survlab.data.modalities.stores (the builder `survlab check` uses too);
- workers, samplers and loaders: survlab.data.loaders.

Constructor keywords map 1:1 to `conf/data/<cohort>.yaml` (DataOptions). After `setup()`: `dims` (ModalityDims),
`fitted` (the fold's FoldPreprocessing: bins, training outcomes, class orders, encoders, scalers;
survlab.data.fitted), `split_hash`, `target_counts` (per label / slide label / endpoint and part: n and n_missing,
survlab.data.cohort.counts), `oracle_risk`, `describe()`, and the train/val/test(/predict = test)
DataLoaders yielding padded `Batch`es.

Example:
    >>> dm = CohortDataModule(name="tiny", root="/data/tiny", wsi={"encoder": "synthetic"},
    ...                       modalities=("wsi",), fold=0)                                   # doctest: +SKIP
    >>> dm.prepare_data(); dm.setup("fit"); batch = next(iter(dm.train_dataloader()))        # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import lightning as L
import pandas as pd

from survlab.data.absence import (  # noqa: F401 - AbsentModalityError / PRESENCE / availability_pattern: their import path
    PRESENCE,
    Absence,
    AbsentModalityError,
    availability_pattern,
)
from survlab.data.cohort.counts import count_problems, describe_counts, target_columns, target_counts
from survlab.data.cohort.ids import _first_ids
from survlab.data.cohort.spec import CohortSpec
from survlab.data.cohort.split_groups import group_column
from survlab.data.cohort.split_set import FoldSplit
from survlab.data.cohort.split_sizes import describe_sizes, part_sizes
from survlab.data.cohort.table import Cohort
from survlab.data.dataset import ModalitySources, PatientDataset
from survlab.data.dims import MODALITIES, ModalityDims
from survlab.data.fitted import FoldPreprocessing
from survlab.data.fitted_plan import PreprocessingPlan
from survlab.data.loaders import (  # noqa: F401 - choose_loader / usable_cpus: their old import path
    PartLoaders,
    check_loader_option,
    choose_loader,
    usable_cpus,
)
from survlab.data.modalities.imaging import ImagingStore, parse_imaging
from survlab.data.modalities.readers import read_genomics, read_imaging, read_wsi
from survlab.data.modalities.stores import check_cache_option
from survlab.data.modalities.text import prompts_for_classes, read_prompts, resolve_prompts_file
from survlab.data.modalities.wsi_availability import DropReport
from survlab.data.options import (
    DataOptions,
    GenomicsOptions,
    WsiOptions,
    data_options,
    missing_mode,
    option_dict,
    plain,
    signature_of,
    under,
)
from survlab.data.sources import registry

log = logging.getLogger(__name__)


class MissingModalityError(ValueError):
    """The model reads a modality this cohort does not provide (`modality`: the first missing one)."""

    def __init__(self, modality: str, message: str) -> None:
        super().__init__(message)
        self.modality = modality


class CohortDataModule(CohortSpec, PartLoaders, Absence, L.LightningDataModule):
    """One cohort, one outer fold. See module docstring; all preprocessing is fitted on the fold's TRAIN part."""

    def __init__(self, **options: Any) -> None:
        """`options`: the data config's keys (DataOptions fields; an unknown key is a one-line error)."""
        super().__init__()
        o = data_options(options)
        self._init_cohort(o)
        self.wsi_cfg = option_dict(WsiOptions, o.wsi, "wsi")
        if self.wsi_cfg is not None:
            check_cache_option(self.wsi_cfg)
        self.gen_cfg = option_dict(GenomicsOptions, o.genomics, "genomics")
        self.imaging_cfg = parse_imaging(plain(o.imaging))  # CT stacks + PET / radiomics (modalities.imaging)
        self.imaging: ImagingStore | None = None
        self.n_bins, self.fold, self.seed = int(o.n_bins), int(o.fold), int(o.seed)
        self.time_unit = str(o.time_unit)  # unit of the survival times (KM x axis), e.g. months, days
        self.batch_size, self.eval_batch_size = int(o.batch_size), int(o.eval_batch_size or o.batch_size)
        # `auto`: chosen from the machine when the first loader is built (choose_loader; the trainer's devices known)
        self.loader_options = {
            "num_workers": check_loader_option("num_workers", o.num_workers, int),
            "pin_memory": check_loader_option("pin_memory", o.pin_memory, bool),
            "persistent_workers": bool(o.persistent_workers),
        }
        self.loader_choice: dict[str, Any] | None = None
        self.max_patches, self.eval_max_patches = o.max_patches, o.eval_max_patches
        self.max_patches_per_scale = dict(plain(o.max_patches_per_scale) or {})
        # data.missing: error | drop (allow_missing=true, the old spelling) | keep (survlab.data.options.missing_mode)
        self.missing = missing_mode(o.missing, bool(o.allow_missing), str(o.name))
        self.weighted_sampling, self.allow_missing = bool(o.weighted_sampling), self.missing == "drop"
        # the modalities the network takes absent (build_datamodule passes them; None: not checked, e.g. survlab
        # check); `network` / `absent_alternatives` word the one-line error (runner.build.build_datamodule sets them)
        self.accepts_absent = frozenset(o.accepts_absent) if o.accepts_absent is not None else None
        self.network: str = "the network"
        self.absent_alternatives: Callable[[str], list[str]] | None = None
        self.bucketing, self.bucket_batches = bool(o.bucketing), int(o.bucket_batches)
        if self.weighted_sampling and not self.has_survival and self.primary_label is None:
            raise ValueError(
                f"data={self.name}: weighted_sampling=true needs a survival endpoint or a label to balance; "
                "declare data.labels or set data.weighted_sampling=false"
            )
        self.synthetic, self.public = plain(o.synthetic), o.public
        if self.synthetic is not None and self.public is not None:
            raise ValueError(f"data={self.name}: set either synthetic: or public:, not both")
        if self.synthetic is not None:
            registry.check_synthetic(self.synthetic, self.name)
        if self.public is not None:
            registry.check_public(self.public, self.name)
        # text prompts: label name -> prompts file (survlab.data.modalities.text), format-checked now, classes in setup()
        self.prompt_files = {str(k): str(v) for k, v in (plain(o.prompts) or {}).items()}
        self.raw_prompts = {name: read_prompts(f) for name, f in self.prompt_files.items()}
        self.modalities = (
            tuple(plain(o.modalities)) if o.modalities is not None else tuple(sorted(self.provides))
        )
        self._check_modalities()
        self._ready = False
        self.dims: ModalityDims | None = None
        self.datasets: dict[str, PatientDataset] = {}
        self.drop_report: dict[str, Any] = {}
        # case_id -> availability pattern over the provided modalities among PRESENCE; {} when nobody lacks one
        self.availability: dict[str, str] = {}
        self.absent: dict[str, list[str]] = {}  # data.missing=keep: read modality -> patients kept without it

    __init__.__signature__ = signature_of(DataOptions)  # type: ignore[attr-defined]  # the config check reads it

    # ------------------------------------------------------------------ modalities
    @property
    def provides(self) -> set[str]:
        """Modalities this data config can deliver."""
        have = set()
        if self.wsi_cfg is not None:
            have |= {"wsi", "scales"} if self.wsi_cfg["scales"] else {"wsi"}
        if self.gen_cfg is not None:
            have.add("genomics")
        if self.clin_cols:
            have.add("clinical")
        if self.prompt_files:
            have.add("text")
        if self.imaging_cfg is not None:
            have.add("ct")
        return have

    def _check_modalities(self) -> None:
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if unknown:
            raise ValueError(f"unknown modality {unknown}; known: {list(MODALITIES)}")
        missing = [m for m in self.modalities if m not in self.provides]
        if missing:
            raise MissingModalityError(
                missing[0],
                f"model needs {'+'.join(missing)} but data={self.name} provides "
                f"{'+'.join(sorted(self.provides)) or 'nothing'}",
            )

    # ------------------------------------------------------------------ files
    def prepare_data(self) -> None:
        """Materialise synthetic / public cohorts once (cached); check that real cohorts exist."""
        registry.materialize(self.root, self.synthetic, self.public, self.name)
        if not self.clinical_csv.is_file():
            raise self.missing_table_error()

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str | None = None) -> None:
        """Build cohort, split, fitted preprocessing and datasets (idempotent)."""
        if self._ready:
            return
        self.prepare_data()  # cheap when cached; makes setup() usable without a Trainer
        full = self.read_cohort_table()
        cfg = self.split_cfg
        split_set = self._split_set(full)
        event_of = self.events_of(full)
        split = split_set.fold(self.fold, full.case_ids, event_of)
        self.full_cohort, self.split_hash, self.split_path = full, split.hash, split.path
        self.split_meta: dict[str, Any] = split_set.meta
        # case_id -> group (site) of site-preserved folds, for per-site metrics; empty without splits.group
        self.split_groups: dict[str, str] = (
            dict(zip(full.table["case_id"], map(str, group_column(full.table, cfg["group"])[0]), strict=True))
            if cfg.get("group")
            else {}
        )

        cohort = full
        sources = ModalitySources()
        cohort = self._setup_wsi(cohort, sources)
        expr, cohort = self._read_genomics(cohort)
        cohort = self._setup_imaging(cohort)
        dropped = [c for c in full.case_ids if c not in set(cohort.case_ids)]
        split = self._drop_from_split(split, dropped, event_of)
        self.cohort, self.split = cohort, split
        kept = set(cohort.case_ids)  # a patient kept without one modality may be dropped by a later reader
        self.absent = {m: [c for c in cs if c in kept] for m, cs in self.absent.items() if set(cs) & kept}
        self.availability = self._availability(cohort, expr)
        self._check_absent(cohort)
        parts = ("train", "val", "test") + (("calibration",) if cfg["calibration_fraction"] else ())
        self._count_targets(cohort, split, parts)

        # fitted on the training patients only (survlab.data.fitted), then applied to every patient of the cohort
        self.fitted = FoldPreprocessing.fit(
            self._plan(),
            cohort,
            split.train,
            split.hash,
            expr=expr,
            gene_groups=getattr(self, "matched_gene_groups", None),
            imaging=self.imaging,
        )
        if lacking := set(self.absent.get("wsi", ())) & set(
            split.train
        ):  # the WSI stand-in was trained on them
            self.fitted.absent_in_training["wsi"] = len(lacking)
        absent_genes = set(self.absent.get("genomics", ()))
        if expr is not None and self.gen_cfg["values_from"]:
            # scaler fitted on the REAL training expression above; values from the other table
            from survlab.data.modalities.genomics import substitute_expression

            expr = substitute_expression(
                self.fitted.gene_groups,
                under(self.root, self.gen_cfg["values_from"]),
                [c for c in cohort.case_ids if c not in absent_genes],
                self.case_col,
            )
        if self.missing == "keep":
            sources.marked = tuple(m for m in PRESENCE if self._reads(m))
            if sources.wsi is not None and self.absent.get("wsi"):
                sources.wsi_placeholder = self._wsi_placeholder(sources.wsi)
        self.fitted.apply(
            cohort,
            sources,
            slide_label_specs=self.slide_label_specs,
            expr=expr,
            imaging=self.imaging,
            absent=self.absent,
        )
        self.sources = sources
        self.datasets = {part: self._dataset(part) for part in parts}
        self.dims = self.fitted.dims = self._dims()
        self._ready = True
        if unused := self.unused_columns_line():
            log.info("%s", unused)
        self.split_sizes = part_sizes(
            {p: split.part(p) for p in parts}, event_of
        )  # (patients, events) per part
        log.info(
            "data %s fold %d: %s", self.name, self.fold, describe_sizes(self.split_sizes, self.has_survival)
        )
        if self.target_counts:
            log.info("data %s fold %d: %s", self.name, self.fold, describe_counts(self.target_counts))

    def _count_targets(self, cohort: Cohort, split: FoldSplit, parts: tuple[str, ...]) -> None:
        """`target_counts` (per label / slide label / endpoint and part: patients or slides, and how many lack a
        value; survlab.data.cohort.counts); a part left with no value of a target is a one-line ValueError (the
        first such part; `survlab check` lists them all)."""
        self.target_counts = target_counts(
            cohort, {p: split.part(p) for p in parts}, self.label_specs, self.slide_label_specs
        )
        columns = target_columns(self.label_specs, self.slide_label_specs, self.endpoints)
        problems = count_problems(self.target_counts, cohort.path, f"fold {self.fold}", columns)
        if problems:
            more = (
                f" (+{len(problems) - 1} more such part(s); `survlab check` lists them)"
                if len(problems) > 1
                else ""
            )
            raise ValueError(problems[0][1] + more)

    def _setup_wsi(self, cohort: Cohort, sources: ModalitySources) -> Cohort:
        """Every slide's bags checked (and cached per wsi.cache) by survlab.data.modalities.readers.read_wsi."""
        cohort, read = read_wsi(
            cohort,
            self.wsi_cfg,
            self.modalities,
            name=self.name,
            root=self.root,
            clinical_csv=self.clinical_csv,
            allow_missing=self.allow_missing,
            generated=bool(self.synthetic or self.public),
            keep=self.missing == "keep",
        )
        if read is not None:
            if read.report.kept_without:
                self.absent["wsi"] = list(read.report.kept_without)
            self.drop_report["wsi"] = read.report.to_dict()
            self.wsi_report: DropReport = read.report
            self.slide_patches: dict[str, int] = read.sizes.slide_patches  # first store's (length bucketing)
            self.store_patches: dict[str, dict[str, int]] = (
                read.sizes.store_patches
            )  # the bench's bandwidth floor
            sources.wsi, sources.scales = read.wsi, read.scales
        return cohort

    def _read_genomics(self, cohort: Cohort) -> tuple[pd.DataFrame | None, Cohort]:
        """Read + check the expression table; drops (allow_missing) or errors on uncovered patients."""
        if "genomics" not in self.modalities:
            return None, cohort
        cohort, read = read_genomics(
            cohort,
            self.gen_cfg,
            root=self.root,
            case_col=self.case_col,
            allow_missing=self.allow_missing,
            keep=self.missing == "keep",
        )
        self.matched_gene_groups = read.groups  # before the fold's gene filter (FoldPreprocessing.fit)
        if read.kept and read.missing:  # data.missing=keep: kept, marked absent
            self.absent["genomics"] = list(read.missing)
            self.drop_report["genomics"] = {
                "n_patients_dropped": 0,
                "patients": [],
                "n_patients_kept_without": len(read.missing),
                "patients_kept_without": list(read.missing),
            }
        else:
            self.drop_report["genomics"] = {"n_patients_dropped": len(read.missing), "patients": read.missing}
        return read.expr, cohort

    def _setup_imaging(self, cohort: Cohort) -> Cohort:
        """CT stacks + tables (`imaging:`), by survlab.data.modalities.readers.read_imaging."""
        if "ct" not in self.modalities or self.imaging_cfg is None:
            return cohort
        cohort, read = read_imaging(
            cohort,
            self.imaging_cfg,
            name=self.name,
            root=self.root,
            case_col=self.case_col,
            fold=self.fold,
            split_hash=getattr(self, "split_hash", None),
            keep=self.missing == "keep",
        )
        self.imaging, self.stacks_provenance = read.store, read.provenance
        self.drop_report["ct"] = {"n_patients_dropped": len(read.missing), "patients": read.missing}
        if read.absent_pet:  # data.missing=keep: kept without a PET row, marked absent
            self.absent["pet"] = list(read.absent_pet)
            self.drop_report["ct"].update(
                n_patients_kept_without_pet=len(read.absent_pet),
                patients_kept_without_pet=list(read.absent_pet),
            )
        return cohort

    # ------------------------------------------------------------------ missing modalities (data.missing)
    def _drop_from_split(
        self, split: FoldSplit, dropped: list[str], event_of: dict[str, bool] | None
    ) -> FoldSplit:
        if not dropped:
            return split
        log.warning(
            "data %s: %d patient(s) dropped for missing modalities: %s",
            self.name,
            len(dropped),
            _first_ids(dropped),
        )
        split = split.without(dropped)
        for part in ("train", "val", "test") if event_of is not None else ():
            ids = split.part(part)
            if not any(event_of[c] for c in ids):
                raise ValueError(
                    f"data={self.name}: after dropping {len(dropped)} patient(s) without required modalities, "
                    f"fold {self.fold} {part} part ({len(ids)} patients) has NO events; fix the missing files or "
                    f"use fewer folds / another splits.seed"
                )
        return split

    def _dataset(self, part: str, train: bool | None = None) -> PatientDataset:
        return PatientDataset(
            self.cohort.rows(self.split.part(part)),
            self.full_cohort.index_of(),
            self.fitted.endpoint_bins,
            self.sources,
            self.label_cols,
            train=part == "train" if train is None else train,
            max_patches=self.max_patches,
            max_patches_per_scale=self.max_patches_per_scale,
            eval_max_patches=self.eval_max_patches,
            seed=self.seed,
        )

    def _plan(self) -> PreprocessingPlan:
        """What this fold fits on its training patients (survlab.data.fitted.FoldPreprocessing.fit)."""
        g = self.gen_cfg
        return PreprocessingPlan(
            cohort=self.name,
            fold=int(self.fold),
            modalities=tuple(self.modalities),
            endpoints=tuple(e.name for e in self.endpoints),
            label_specs=dict(self.label_specs),
            slide_label_specs=dict(self.slide_label_specs),
            primary_label=self.primary_label,
            n_bins=int(self.n_bins),
            clinical_columns=tuple(self.clin_cols),
            clinical_categorical=tuple(self.clin_categorical),
            genomics={k: g[k] for k in ("select", "scaling", "log1p")} if g is not None else None,
        )

    def _dims(self) -> ModalityDims:
        src = self.sources
        wsi_dim = scale_dims = None
        slide_lists = [
            ss for ss in self.cohort.table["slide_ids"] if len(ss)
        ]  # keep: some patients have none
        if src.wsi is not None:
            wsi_dim = src.wsi.feature_dim or int(src.wsi.read_slide(slide_lists[0][0])[0].shape[1])
        if src.scales is not None:
            first = slide_lists[0][0]
            scale_dims = {
                s: st.feature_dim or int(st.read_slide(first)[0].shape[1]) for s, st in src.scales.items()
            }
        gen = self.fitted.gene_groups if src.genomics is not None else None
        enc = self.fitted.clinical_encoder if src.clinical is not None else None
        return ModalityDims(
            wsi_dim=wsi_dim,
            scale_dims=scale_dims,
            genomic_sizes=gen.sizes if gen else None,
            genomic_names=gen.names if gen else None,
            clinical_dim=enc.dim if enc else None,
            clinical_names=tuple(enc.feature_names) if enc else None,
            n_bins=self.n_bins,
            n_classes={c: len(k) for c, k in src.classes.items()},
            slide_n_classes={c: len(k) for c, k in src.slide_classes.items()},
            endpoints=tuple(e.name for e in self.endpoints),
            primary_label=self.primary_label,
            prompts=self._class_prompts() if "text" in self.modalities else {},
            imaging=self.imaging.dims if src.imaging is not None else None,
        )

    def _class_prompts(self) -> dict[str, dict[str, tuple[str, ...]]]:
        """Prompts of every `prompts` label (patient or slide label) in its class order; a missing class, or a
        prompts label the cohort does not declare, is a one-line error."""
        src, out = self.sources, {}
        for name, raw in self.raw_prompts.items():
            classes = src.slide_classes.get(name, src.classes.get(name))
            if classes is None:
                raise ValueError(
                    f"data={self.name}: prompts for {name!r}, which is neither a label "
                    f"{list(src.classes)} nor a slide label {list(src.slide_classes)}; key data.prompts "
                    f"by one of them"
                )
            out[name] = prompts_for_classes(raw, classes, name, resolve_prompts_file(self.prompt_files[name]))
        return out

    # ------------------------------------------------------------------ exposed after setup
    def _need_setup(self) -> None:
        if not self._ready:
            raise RuntimeError("CohortDataModule: call setup() first")

    @property
    def primary_label(self) -> str | None:
        """The label a classification objective without an explicit `label` trains on: splits.stratify_label, else
        the first declared label (None when the cohort has none)."""
        return self.stratify_label or next(iter(self.label_specs), None)

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
