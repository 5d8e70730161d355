"""`CohortDataModule`: cohort table -> persisted patient-level split -> fold-fitted preprocessing -> DataLoaders.

The data module is the orchestration; each job lives in its own module:
- the options and their defaults: survlab.data.options (DataOptions, WsiOptions, GenomicsOptions, SplitOptions);
- the cohort table, endpoints, labels and persisted split: survlab.data.cohort.spec (CohortSpec);
- generated / public cohorts: survlab.data.sources.registry;
- the modalities read once before fitting (bags, expression, CT / PET): survlab.data.modalities.readers, with the
  feature stores and their cache policy in survlab.data.modalities.stores (the builder `survlab check` uses too);
- workers, samplers and loaders: survlab.data.loaders.
- the data module's own parts (mixins): reading the modalities and counting targets in setup()
  (survlab.data.datamodule_setup), the fold's datasets / plan / input sizes / class prompts
  (survlab.data.datamodule_parts), the protocol card's facts (survlab.data.datamodule_card) and patients missing a
  modality (survlab.data.absence).

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

from survlab.data.absence import (  # noqa: F401 - AbsentModalityError / PRESENCE / availability_pattern: their import path
    PRESENCE,
    Absence,
    AbsentModalityError,
    availability_pattern,
)
from survlab.data.cohort.counts import describe_counts
from survlab.data.cohort.spec import CohortSpec
from survlab.data.cohort.split_groups import group_column
from survlab.data.cohort.split_sizes import describe_sizes, part_sizes
from survlab.data.datamodule_card import DataCard
from survlab.data.datamodule_parts import FoldParts
from survlab.data.datamodule_setup import SetupSteps
from survlab.data.dataset import ModalitySources, PatientDataset
from survlab.data.dims import MODALITIES, ModalityDims
from survlab.data.fitted import FoldPreprocessing
from survlab.data.loaders import (  # noqa: F401 - choose_loader / usable_cpus: their old import path
    PartLoaders,
    check_loader_option,
    choose_loader,
    usable_cpus,
)
from survlab.data.modalities.imaging import ImagingStore, parse_imaging
from survlab.data.modalities.stores import check_cache_option
from survlab.data.modalities.text import read_prompts
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


class CohortDataModule(
    SetupSteps, FoldParts, DataCard, CohortSpec, PartLoaders, Absence, L.LightningDataModule
):
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

    # ------------------------------------------------------------------ exposed after setup
    def _need_setup(self) -> None:
        if not self._ready:
            raise RuntimeError("CohortDataModule: call setup() first")

    @property
    def primary_label(self) -> str | None:
        """The label a classification objective without an explicit `label` trains on: splits.stratify_label, else
        the first declared label (None when the cohort has none)."""
        return self.stratify_label or next(iter(self.label_specs), None)
