"""`CohortDataModule`: cohort table -> persisted patient-level split -> fold-fitted preprocessing -> DataLoaders.

Constructor arguments map 1:1 to `conf/data/<cohort>.yaml` (plain types and dicts). After `setup()`:
`dims` (ModalityDims), `fitted` (the fold's FoldPreprocessing: bins, training outcomes, class orders, encoders,
scalers; survlab.data.fitted), `split_hash`, `oracle_risk`, `describe()`, and the
train/val/test(/predict = test) DataLoaders yielding padded `Batch`es.

Example:
    >>> dm = CohortDataModule(name="tiny", root="/data/tiny", wsi={"encoder": "synthetic"},
    ...                       modalities=("wsi",), fold=0)                                   # doctest: +SKIP
    >>> dm.prepare_data(); dm.setup("fit"); batch = next(iter(dm.train_dataloader()))        # doctest: +SKIP
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
from torch.utils.data import DataLoader

from survlab.data.batch import collate
from survlab.data.cohort.splits import (
    FoldSplit,
    SplitSet,
    describe_sizes,
    ensure_splits,
    group_column,
    part_sizes,
)
from survlab.data.cohort.splits_import import from_config as import_from_config
from survlab.data.cohort.table import Cohort, Endpoint, _first_ids, _header
from survlab.data.cohort.targets import parse_labels
from survlab.data.dataset import ModalitySources, PatientDataset
from survlab.data.dims import MODALITIES, ModalityDims
from survlab.data.fitted import FoldPreprocessing, PreprocessingPlan
from survlab.data.modalities.genomics import (
    check_coverage,
    expression_scale_problem,
    match_groups,
    read_expression,
    read_signatures,
    signature_coverage,
)
from survlab.data.modalities.imaging import ImagingStore, check_stack_provenance, parse_imaging
from survlab.data.modalities.resident import ResidentBags
from survlab.data.modalities.text import prompts_for_classes, read_prompts, resolve_prompts_file
from survlab.data.modalities.trident import trident_folder
from survlab.data.modalities.wsi import BagStore, DropReport, check_availability
from survlab.data.samplers import EpochLoader, EpochSampler, LengthOrderSampler
from survlab.utils.malloc import release_free_memory
from survlab.utils.memory import available_bytes

log = logging.getLogger(__name__)

#: most DataLoader workers `num_workers: auto` starts per training process
MAX_AUTO_WORKERS = 4


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask: a SLURM / cgroup allocation, not the whole node)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def choose_loader(
    num_workers: int | str, pin_memory: bool | str, devices: int = 1, cuda: bool | None = None
) -> dict[str, Any]:
    """The DataLoader settings for this machine: `num_workers: auto` -> none on 2 cores or fewer per training
    process (a worker competes with training for the same cores: slower, experiments/throughput), else
    cores / processes - 1, at most MAX_AUTO_WORKERS (Lightning's suggested bound, so it does not warn);
    `pin_memory: auto` -> pinned only when training runs on a CUDA device (`cuda`; None: whether torch sees one).
    Values the user set are kept. Workers never change the numbers: every random draw of a batch is seeded by
    (seed, epoch, patient) (survlab.data.dataset), not by the worker.

        >>> choose_loader("auto", "auto", cuda=False)["pin_memory"], choose_loader(2, True, cuda=False)["num_workers"]
        (False, 2)
    """
    cpus = usable_cpus()
    per_process = cpus // max(1, int(devices))
    chosen = []
    if num_workers == "auto":
        workers = 0 if per_process <= 2 else min(MAX_AUTO_WORKERS, per_process - 1)
        chosen.append("num_workers")
    else:
        workers = int(num_workers)
    if pin_memory == "auto":
        pin = bool(torch.cuda.is_available() if cuda is None else cuda)
        chosen.append("pin_memory")
    else:
        pin = bool(pin_memory)
    return {
        "num_workers": workers,
        "pin_memory": pin,
        "auto": chosen,
        "cpus": cpus,
        "processes": max(1, int(devices)),
        "cuda": bool(torch.cuda.is_available() if cuda is None else cuda),
    }


def _check_loader_option(key: str, value: Any, kind: type) -> int | bool | str:
    """`data.num_workers` (an integer >= 0 or auto) / `data.pin_memory` (true, false or auto), else a one-line error."""
    if value == "auto":
        return "auto"
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    allowed = "an integer >= 0" if kind is int else "true or false"
    raise ValueError(f"data.{key}={value!r}: use {allowed}, or auto (chosen from this machine's cores / GPU)")


# cache: auto fills the RAM cache only if the files take at most this share of the memory the process may use;
# cache: device refuses when its host staging copy needs more than this share
CACHE_MEMORY_SHARE, DEVICE_STAGING_SHARE = 0.5, 0.8
WSI_DEFAULTS: dict[str, Any] = {
    "features_dir": "features",
    "encoder": None,
    "format": "auto",
    "feature_dim": None,
    "scales": None,
    "cache": "auto",
    "cache_max_gb": 2.0,
    "cache_dtype": "float16",
    "packed": False,  # read bags from one flat file + offsets per store (survlab.data.modalities.packed), built on first use
    "packed_dir": None,  # where packed stores go (None: <root>-packed beside a cohort survlab generated)
    "packed_dtype": "float16",
    "layout": "clam",  # clam: <features_dir>/<encoder>/{h5,pt}_files/; trident: TRIDENT's job dir (`trident` below)
    "trident": None,  # {job_dir, encoder, mag, patch_size, overlap} (survlab.data.modalities.trident)
}
GENOMICS_DEFAULTS: dict[str, Any] = {
    "expression": "expression.csv",
    "signatures": None,
    "scaling": "standard",
    "log1p": False,
    "values_from": None,  # another expression table (e.g. PathGen's synthetic one) whose values replace the real ones
    "select": None,  # gene filter fitted on training patients, e.g. {method: variance, top_k: 500} (data.gene_filter)
}
SPLIT_DEFAULTS: dict[str, Any] = {
    "dir": None,
    "folds": 5,
    "val_fraction": 0.15,
    "seed": 0,
    "stratify_site": None,
    "stratify_label": None,
    "calibration_fraction": 0.0,
    "group": None,  # site-preserved folds: a column (e.g. site; TCGA barcodes give the site) kept in one fold
    "repeat": 0,  # repeated k-fold: r > 0 draws another seeded assignment (splits.repeat_seed); 0 = the original
    "import": None,  # {format: mcat | clam, dir}: a peer's splits_<k>.csv (survlab.data.cohort.splits_import)
}


def _plain(x: Any) -> Any:
    """DictConfig/ListConfig (Hydra) -> plain containers; other values unchanged."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(x, (DictConfig, ListConfig)):
            return OmegaConf.to_container(x, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return x


def _merge(defaults: dict[str, Any], given: dict[str, Any] | None, what: str) -> dict[str, Any] | None:
    if given is None:
        return None
    given = dict(_plain(given))
    unknown = set(given) - set(defaults)
    if unknown:
        raise ValueError(f"unknown {what} option(s) {sorted(unknown)}; allowed: {sorted(defaults)}")
    return {**defaults, **given}


def _memory_left() -> int | None:
    """Bytes this process may still fill (the machine's available memory, or the job's cgroup headroom if lower),
    after collecting an earlier in-process job's data module (a reference cycle may still hold its cache) and
    returning the heap blocks malloc reuse kept from it. None where unknown."""
    gc.collect()
    release_free_memory()
    return available_bytes()


def _under(root: Path, p: str | Path) -> Path:
    p = Path(os.path.expanduser(str(p)))
    return p if p.is_absolute() else root / p


ENDPOINT_KEYS = ("time", "censorship", "event")
SYNTHETIC_KINDS = ("survival", "classification", "pathgen", "petct")


def _synthetic_spec_class(kind: str) -> type:
    """The spec dataclass of a synthetic cohort kind (`synthetic.kind`: survival | classification | pathgen | petct)."""
    from survlab.data.sources.synthetic import ClassificationSpec, SyntheticSpec
    from survlab.data.sources.synthetic_pathgen import PathGenSpec
    from survlab.data.sources.synthetic_petct import PetCtSpec

    return {
        "survival": SyntheticSpec,
        "classification": ClassificationSpec,
        "pathgen": PathGenSpec,
        "petct": PetCtSpec,
    }[kind]


def _endpoints(
    endpoint: str,
    time_col: str | None,
    censorship_col: str | None,
    event_col: str | None,
    endpoints: dict[str, dict[str, str]] | None,
) -> tuple[Endpoint | None, tuple[Endpoint, ...]]:
    """(primary, secondary endpoints) of the data config. `endpoints` absent and `time_col: null` -> (None, ()):
    a cohort without survival. Without `endpoints` the primary is built from time_col/censorship_col as before."""
    endpoints = dict(endpoints or {})
    for name, spec in endpoints.items():
        spec = dict(spec or {})
        if (
            "time" not in spec
            or ("censorship" in spec) == ("event" in spec)
            or set(spec) - set(ENDPOINT_KEYS)
        ):
            raise ValueError(
                f"endpoints.{name}={spec}: give time and exactly one of censorship (1 = censored) / event (1 = event)"
            )
    if time_col is None and not endpoints:
        return None, ()
    if time_col is None and endpoint not in endpoints:
        endpoint = next(iter(endpoints))  # no default columns: the first listed endpoint is the primary
    primary = Endpoint.resolve(endpoint, time_col or "survival_months", censorship_col, event_col, endpoints)
    secondary = tuple(Endpoint.resolve(n, endpoints=endpoints) for n in endpoints if n != primary.name)
    return primary, secondary


class MissingModalityError(ValueError):
    """The model reads a modality this cohort does not provide (`modality`: the first missing one)."""

    def __init__(self, modality: str, message: str) -> None:
        super().__init__(message)
        self.modality = modality


class CohortDataModule(L.LightningDataModule):
    """One cohort, one outer fold. See module docstring; all preprocessing is fitted on the fold's TRAIN part."""

    def __init__(
        self,
        name: str = "synthetic",
        root: str = "data/synthetic",
        clinical_csv: str = "clinical.csv",
        case_col: str = "case_id",
        slide_col: str | None = "slide_id",
        time_col: str | None = "survival_months",
        censorship_col: str | None = "censorship",
        event_col: str | None = None,
        endpoint: str = "os",
        endpoints: dict[str, dict[str, str]] | None = None,
        wsi: dict[str, Any] | None = None,
        genomics: dict[str, Any] | None = None,
        clinical: dict[str, Any] | None = None,
        imaging: dict[str, Any] | None = None,
        subgroups: Sequence[str] = (),
        label_cols: Sequence[str] = (),
        labels: dict[str, dict[str, Any]] | None = None,
        slide_labels: dict[str, dict[str, Any]] | None = None,
        n_bins: int = 4,
        splits: dict[str, Any] | None = None,
        split_root: str | None = None,
        fold: int = 0,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int | str = 0,
        pin_memory: bool | str = False,
        persistent_workers: bool = False,
        max_patches: int | None = 4096,
        max_patches_per_scale: dict[str, int] | None = None,
        eval_max_patches: int | None = None,
        weighted_sampling: bool = False,
        bucketing: bool = False,
        bucket_batches: int = 8,
        allow_missing: bool = False,
        seed: int = 0,
        synthetic: dict[str, Any] | None = None,
        public: str | None = None,
        modalities: Sequence[str] | None = None,
        prompts: dict[str, str] | None = None,
        time_unit: str = "months",
    ) -> None:
        super().__init__()
        self.name, self.root = name, Path(os.path.expanduser(str(root)))
        self.clinical_csv = _under(self.root, clinical_csv)
        self.case_col, self.slide_col = case_col, slide_col
        self.endpoint, self.secondary = _endpoints(
            endpoint, time_col, censorship_col, event_col, _plain(endpoints)
        )
        self.has_survival = self.endpoint is not None
        self.wsi_cfg = _merge(WSI_DEFAULTS, wsi, "wsi")
        if self.wsi_cfg is not None and self.wsi_cfg["cache"] not in (
            True,
            False,
            "true",
            "false",
            "auto",
            "device",
        ):
            raise ValueError(
                f"data.wsi.cache must be auto (host RAM when the cohort fits cache_max_gb), true, false or device "
                f"(every bag held on the training device), got {self.wsi_cfg['cache']!r}"
            )
        self.gen_cfg = _merge(GENOMICS_DEFAULTS, genomics, "genomics")
        clinical = _plain(clinical)
        self.clin_cols: list[str] = list((clinical or {}).get("columns") or [])
        self.clin_categorical: list[str] = list((clinical or {}).get("categorical") or [])
        self.clin_table: str | None = (clinical or {}).get(
            "table"
        )  # covariates in their own CSV (data.covariates)
        self.imaging_cfg = parse_imaging(
            _plain(imaging)
        )  # CT stacks + PET / radiomics (survlab.data.modalities.imaging)
        self.subgroups = [str(c) for c in (_plain(subgroups) or [])]  # columns kept for per-group metrics
        self.imaging: ImagingStore | None = None
        self.label_specs = parse_labels(_plain(labels), list(_plain(label_cols) or []))
        self.slide_label_specs = parse_labels(_plain(slide_labels), (), "slide_labels")
        self.label_cols = list(self.label_specs)  # label (head) names
        self.n_bins, self.fold, self.seed = int(n_bins), int(fold), int(seed)
        self.time_unit = str(time_unit)  # unit of the survival times (KM x axis), e.g. months, days
        self.split_cfg = _merge(SPLIT_DEFAULTS, splits or {}, "splits")
        self.stratify_label = self._stratify_label()
        self.split_root = (
            split_root  # where split dirs go (None: <root>/splits, for cohorts survlab wrote itself)
        )
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size or batch_size)
        # `auto`: chosen from the machine when the first loader is built (choose_loader; the trainer's devices known)
        self.loader_options = {
            "num_workers": _check_loader_option("num_workers", num_workers, int),
            "pin_memory": _check_loader_option("pin_memory", pin_memory, bool),
            "persistent_workers": bool(persistent_workers),
        }
        self.loader_choice: dict[str, Any] | None = None
        self.max_patches, self.eval_max_patches = max_patches, eval_max_patches
        self.max_patches_per_scale = dict(_plain(max_patches_per_scale) or {})
        self.weighted_sampling, self.allow_missing = bool(weighted_sampling), bool(allow_missing)
        self.bucketing, self.bucket_batches = bool(bucketing), int(bucket_batches)
        if self.weighted_sampling and not self.has_survival and self.primary_label is None:
            raise ValueError(
                f"data={self.name}: weighted_sampling=true needs a survival endpoint or a label to balance; "
                "declare data.labels or set data.weighted_sampling=false"
            )
        self.synthetic, self.public = _plain(synthetic), public
        self._check_generated()
        # text prompts: label name -> prompts file (survlab.data.modalities.text), format-checked now, classes in setup()
        self.prompt_files = {str(k): str(v) for k, v in (_plain(prompts) or {}).items()}
        self.raw_prompts = {name: read_prompts(f) for name, f in self.prompt_files.items()}
        self.modalities = (
            tuple(_plain(modalities)) if modalities is not None else tuple(sorted(self.provides))
        )
        self._check_modalities()
        self._ready = False
        self.dims: ModalityDims | None = None
        self.datasets: dict[str, PatientDataset] = {}
        self.drop_report: dict[str, Any] = {}

    # ------------------------------------------------------------------ modalities
    @property
    def provides(self) -> set[str]:
        """Modalities this data config can deliver."""
        have = set()
        if self.wsi_cfg is not None:
            have.add("wsi")
            if self.wsi_cfg["scales"]:
                have.add("scales")
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

    def _check_generated(self) -> None:
        """`synthetic:` and `public:` exclude each other; `synthetic:` keys must be SyntheticSpec fields."""
        if self.synthetic is not None and self.public is not None:
            raise ValueError(f"data={self.name}: set either synthetic: or public:, not both")
        if self.synthetic is not None:
            from dataclasses import fields

            kind = self.synthetic.get("kind", "survival")
            if kind not in SYNTHETIC_KINDS:
                raise ValueError(
                    f"data={self.name}: synthetic.kind={kind!r}; allowed: {list(SYNTHETIC_KINDS)}"
                )
            allowed = sorted(["kind", *(f.name for f in fields(_synthetic_spec_class(kind)))])
            unknown = sorted(set(self.synthetic) - set(allowed))
            if unknown:
                raise ValueError(
                    f"data={self.name}: unknown synthetic option(s) {unknown}; allowed: {allowed}"
                )

    # ------------------------------------------------------------------ files
    def prepare_data(self) -> None:
        """Materialise synthetic / public cohorts once (cached); check that real cohorts exist."""
        if self.synthetic is not None:
            from survlab.data.sources.synthetic import generate_classification_cohort, generate_cohort

            kind = self.synthetic.get("kind", "survival")
            spec = {
                k: tuple(v) if isinstance(v, list) else v for k, v in self.synthetic.items() if k != "kind"
            }
            from survlab.data.sources.synthetic_pathgen import generate_pathgen_cohort
            from survlab.data.sources.synthetic_petct import generate_petct_cohort

            generate = {
                "survival": generate_cohort,
                "classification": generate_classification_cohort,
                "pathgen": generate_pathgen_cohort,
                "petct": generate_petct_cohort,
            }[kind]
            generate(self.root, _synthetic_spec_class(kind)(**spec))
        elif self.public is not None:
            if str(self.public).lower() != "gse7390":
                raise ValueError(f"unknown public cohort {self.public!r}; available: gse7390")
            from survlab.data.sources.public import materialize_gse7390

            materialize_gse7390(self.root)
        if not self.clinical_csv.is_file():
            cols = [self.case_col, *([self.slide_col] if self.slide_col else [])]
            cols += [c for e in self.endpoints for c in e.outcome_cols]
            cols += [sp.column for sp in [*self.label_specs.values(), *self.slide_label_specs.values()]]
            kind = "MCAT/SurvPath" if self.has_survival else "CLAM dataset_csv-style"
            raise FileNotFoundError(
                f"data={self.name}: expected {kind} clinical CSV at {self.clinical_csv} (columns "
                f"{', '.join(dict.fromkeys(cols))}); see README 'Real data layout'"
            )

    @property
    def split_dir(self) -> Path:
        cfg = self.split_cfg
        if cfg["dir"]:
            return _under(self.root, cfg["dir"])
        site = f"_site-{cfg['stratify_site']}" if cfg["stratify_site"] else ""
        base = Path(os.path.expanduser(str(self.split_root))) if self.split_root else self.root / "splits"
        if self.has_survival:  # unchanged names for survival cohorts without the new options
            head = self.endpoint.name + (f"_strat-{self.stratify_label}" if self.stratify_label else "")
        else:
            head = f"label-{self.stratify_label}" if self.stratify_label else "nolabel"
        cal = f"_cal{cfg['calibration_fraction']:g}" if cfg["calibration_fraction"] else ""
        rep = f"_rep{int(cfg['repeat'])}" if cfg["repeat"] else ""  # repeat 0: the dir it always was
        grp = (
            f"_group-{cfg['group']}" if cfg.get("group") else ""
        )  # likewise: no group, the dir it always was
        return base / f"{head}_k{cfg['folds']}_seed{cfg['seed']}{site}{grp}{cal}{rep}"

    def _stratify_label(self) -> str | None:
        """Label name the splits are stratified by: `splits.stratify_label`, else the first label of a cohort
        without survival, else None (event x time)."""
        name = self.split_cfg["stratify_label"]
        if name is not None and name not in self.label_specs:
            raise ValueError(
                f"data={self.name}: splits.stratify_label={name!r} is not a label; labels: {list(self.label_specs)}"
            )
        if name is None and not self.has_survival and self.label_specs:
            name = next(iter(self.label_specs))
        return name

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """Every survival endpoint (the primary first); empty when the cohort has no survival."""
        return ((self.endpoint,) if self.endpoint else ()) + self.secondary

    # ------------------------------------------------------------------ setup
    def read_cohort_table(self, findings: list | None = None, split_columns: bool = True) -> Cohort:
        """The cohort table (`clinical_csv`, checked by `Cohort.from_csv`) with the columns the config uses — labels,
        clinical covariates (joined by case_id from `clinical.table` when kept apart), subgroups and, with
        `split_columns`, the site column the split stratifies on. `findings`: collect problems instead of raising
        the first (`survlab check`)."""
        site = self.split_cfg["stratify_site"] if split_columns and self.split_cfg else None
        group = self.split_cfg.get("group") if split_columns and self.split_cfg else None
        if group and (self.split_cfg.get("stratify_site") or self.split_cfg.get("import")):
            raise ValueError(
                f"data={self.name}: splits.group={group} keeps every {group} in one fold; splits.stratify_site spreads "
                "a site over all folds and splits.import takes a peer's folds: unset those, or splits.group"
            )
        if group and self.clinical_csv.is_file() and group not in _header(self.clinical_csv):
            group = None  # not a column: splits.group_column derives it (TCGA barcodes) or names the problem
        keep = list(
            dict.fromkeys(
                [
                    *(sp.column for sp in self.label_specs.values()),
                    *([] if self.clin_table else self.clin_cols),
                    *([site] if site else []),
                    *([group] if group else []),
                    *self.subgroups,
                ]
            )
        )
        full = Cohort.from_csv(
            self.clinical_csv,
            self.case_col,
            self.slide_col,
            self.endpoint,
            keep,
            survival=self.has_survival,
            secondary=self.secondary,
            slide_keep_cols=[sp.column for sp in self.slide_label_specs.values()],
            findings=findings,
        )
        if self.clin_table:  # covariates kept apart from the outcomes: joined by case_id
            from survlab.data.cohort.covariates import join_covariates

            full = join_covariates(full, self.covariates_csv, self.clin_cols, self.case_col)
        return full

    def used_columns(self) -> set[str]:
        """Columns of `clinical_csv` this config reads: case / slide ids, every endpoint's time and censorship /
        event columns, labels, slide labels, clinical covariates (unless kept in `clinical.table`), subgroups and the
        site the split stratifies on."""
        endpoints = [e for e in (self.endpoint, *self.secondary) if e is not None]
        return {
            c
            for c in (
                self.case_col,
                self.slide_col,
                *(x for e in endpoints for x in (e.time_col, e.censorship_col, e.event_col)),
                *(sp.column for sp in self.label_specs.values()),
                *(sp.column for sp in self.slide_label_specs.values()),
                *([] if self.clin_table else self.clin_cols),
                *self.subgroups,
                (self.split_cfg or {}).get("stratify_site"),
                (self.split_cfg or {}).get("group"),  # site-preserved folds read their group column
            )
            if c
        }

    def unused_columns_line(self) -> str | None:
        """'<clinical.csv>: N column(s) not used by data=<name>: age, stage, ...; add covariates under
        data.clinical.columns, ...' or None when every column is read (or the file cannot be read)."""
        try:
            header = [str(c).strip() for c in pd.read_csv(self.clinical_csv, nrows=0).columns]
        except (OSError, ValueError):
            return None
        unused = [c for c in header if c not in self.used_columns()]
        if not unused:
            return None
        return (
            f"{self.clinical_csv}: {len(unused)} column(s) not used by data={self.name}: {', '.join(unused[:12])}"
            f"{' ...' if len(unused) > 12 else ''}; to use them add covariates under data.clinical.columns "
            f"(+ clinical.categorical), labels under data.labels, per-group metrics under data.subgroups"
        )

    @property
    def covariates_csv(self) -> Path | None:
        """`clinical.table` resolved under the cohort root (None when covariates live in `clinical_csv`)."""
        return _under(self.root, self.clin_table) if self.clin_table else None

    def setup(self, stage: str | None = None) -> None:
        """Build cohort, split, fitted preprocessing and datasets (idempotent)."""
        if self._ready:
            return
        self.prepare_data()  # cheap when cached; makes setup() usable without a Trainer
        full = self.read_cohort_table()
        cfg = self.split_cfg
        split_set = self._split_set(full)
        event_of = (
            dict(zip(full.table["case_id"], full.table["event"], strict=False)) if self.has_survival else None
        )
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
        if expr is not None and self.gen_cfg["values_from"]:
            # scaler fitted on the REAL training expression above; values from the other table
            from survlab.data.modalities.genomics import substitute_expression

            expr = substitute_expression(
                self.fitted.gene_groups,
                _under(self.root, self.gen_cfg["values_from"]),
                cohort.case_ids,
                self.case_col,
            )
        self.fitted.apply(
            cohort, sources, slide_label_specs=self.slide_label_specs, expr=expr, imaging=self.imaging
        )
        self.sources = sources
        parts = ("train", "val", "test") + (("calibration",) if cfg["calibration_fraction"] else ())
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

    def _split_set(self, full: Cohort) -> SplitSet:
        """The persisted split of the cohort (imported, or written once by `ensure_splits` and reused)."""
        cfg = self.split_cfg
        return self._imported_splits(full) or ensure_splits(
            full.table,
            self.split_dir,
            cfg["folds"],
            cfg["val_fraction"],
            cfg["seed"],
            cfg["stratify_site"],
            self.label_specs[self.stratify_label].column if self.stratify_label else None,
            cfg["calibration_fraction"],
            self.has_survival,
            int(cfg["repeat"]),
            cfg.get("group"),
        )

    def fold_split(self) -> FoldSplit:
        """Fold `fold` of the persisted split over every patient of the cohort table (before any patient is dropped
        for a missing modality): what `setup` uses, without reading any modality (e.g. for a segmentor trained on
        the same folds, survlab.data.segmentation)."""
        full = self.read_cohort_table()
        event_of = (
            dict(zip(full.table["case_id"], full.table["event"], strict=False)) if self.has_survival else None
        )
        return self._split_set(full).fold(self.fold, full.case_ids, event_of)

    def _imported_splits(self, full: Cohort) -> SplitSet | None:
        """The SplitSet of `splits.import` (a peer's split files written as survlab splits), else None."""
        spec, cfg = self.split_cfg["import"], self.split_cfg
        if not spec:
            return None
        if cfg["stratify_site"] or cfg["calibration_fraction"] or cfg["repeat"]:
            raise ValueError(
                f"data={self.name}: splits.import takes the peer's assignment; unset splits.stratify_site, "
                "splits.calibration_fraction and splits.repeat"
            )
        base = Path(os.path.expanduser(str(self.split_root))) if self.split_root else self.root / "splits"
        base = _under(self.root, cfg["dir"]) if cfg["dir"] else base
        return import_from_config(
            dict(spec), full.table, base, self.root, cfg["val_fraction"], cfg["seed"], self.has_survival
        )

    def _stores(self) -> tuple[BagStore | None, dict[str, BagStore] | None]:
        w = self.wsi_cfg
        if w is None:
            return None, None
        base = _under(self.root, w["features_dir"])
        common = dict(
            encoder=w["encoder"],
            format=w["format"],
            cache=False,
            cache_dtype=w["cache_dtype"],
            cache_max_bytes=int(float(w["cache_max_gb"]) * 1024**3),
        )
        dim = w["feature_dim"]
        if w["layout"] != "clam":
            return self._trident_store(common, dim), None
        wsi = (
            BagStore(base, feature_dim=dim if not isinstance(dim, dict) else None, **common)
            if "wsi" in self.modalities
            else None
        )
        scales = None
        if "scales" in self.modalities:
            per = dim if isinstance(dim, dict) else {s: dim for s in w["scales"]}
            scales = {s: BagStore(base, feature_dim=per.get(s), scale=s, **common) for s in w["scales"]}
        return wsi, scales

    def _trident_store(self, common: dict[str, Any], dim: Any) -> BagStore | None:
        """The BagStore of `wsi.layout: trident` (TRIDENT's features_<encoder>/ folder, resolved with checks)."""
        w = self.wsi_cfg
        if w["layout"] != "trident":
            raise ValueError(f"data={self.name}: wsi.layout must be clam or trident, got {w['layout']!r}")
        if w["scales"] or "scales" in self.modalities:
            raise ValueError(
                f"data={self.name}: wsi.layout=trident reads one patching; unset data.wsi.scales"
            )
        if "wsi" not in self.modalities:
            return None
        folder, store_name = trident_folder(dict(w["trident"] or {}), self.root)
        fmt = "pt" if common["format"] == "pt" else "h5"
        return BagStore(
            folder, feature_dim=dim, folder=folder, **{**common, "encoder": store_name, "format": fmt}
        )

    def _setup_wsi(self, cohort: Cohort, sources: ModalitySources) -> Cohort:
        wsi, scales = self._stores()
        stores = [s for s in [wsi, *(scales or {}).values()] if s is not None]
        if not stores:
            return cohort
        if not any(cohort.table["slide_ids"].map(len)):
            raise ValueError(
                f"data={self.name}: the network needs WSI bags but {self.clinical_csv} lists no slide_id "
                f"(table-only cohort); choose a genomics/clinical model or a cohort with slides"
            )
        cohort, report = check_availability(cohort, stores, self.allow_missing, partial_ok=scales is not None)
        self.drop_report["wsi"] = report.to_dict()
        self.wsi_report: DropReport = report
        self._check_bags(cohort, stores)
        sources.wsi, sources.scales = wsi, scales
        return cohort

    def _check_bags(self, cohort: Cohort, stores: list[BagStore]) -> None:
        """Every slide file of every patient (all splits) before training: headers always (shape, dtype, one dim,
        coords, h5/pt twins agree), values (NaN/Inf) too when the bags fit the RAM cache, which is filled here."""
        start = time.perf_counter()
        patients = cohort.table["slide_ids"].tolist()
        slides = [s for ss in patients for s in ss]
        if self.wsi_cfg["packed"]:
            sizes = self._use_packed(stores, slides)
            checked = f"{len(slides)} slide(s) x {len(stores)} store(s): packed store(s) ready"
        else:
            headers = [st.check_headers(slides) for st in stores]
            sizes = [{s: h.n_patches for s, h in hs.items()} for hs in headers]
            checked = f"{len(slides)} slide(s) x {len(stores)} store(s): headers"
        self.slide_patches: dict[str, int] = sizes[
            0
        ]  # patches per slide of the first store (length bucketing)
        # patches per slide of every store: "wsi" or the scale name -> slide -> N (the bench's bandwidth floor)
        self.store_patches: dict[str, dict[str, int]] = {
            st.scale or "wsi": n for st, n in zip(stores, sizes, strict=True)
        }
        if self.wsi_cfg["cache"] == "device":
            self._check_staging_memory(stores, sizes)
            for st, per_slide in zip(stores, sizes, strict=True):
                st.cache_enabled = False
                st.resident = ResidentBags.build(st, patients, per_slide)
            total = sum(st.resident.nbytes for st in stores if st.resident is not None)
            checked += " + values (device-resident store built)"
            log.info(
                "WSI bags resident: %.1f MB (%s), copied to the training device on first use",
                total / 1e6,
                self.wsi_cfg["cache_dtype"],
            )
        elif self.wsi_cfg["cache"] in (True, "true", "auto"):
            total = (
                sum(st.packed.nbytes for st in stores)
                if self.wsi_cfg["packed"]
                else sum(h.path.stat().st_size for hs in headers for h in hs.values())
            )
            cap = stores[0].cache_max_bytes
            forced = self.wsi_cfg["cache"] is True or self.wsi_cfg["cache"] == "true"
            free = _memory_left()
            fits = free is None or total <= CACHE_MEMORY_SHARE * free
            enable = forced or (total <= cap and fits)
            for st in stores:  # auto: the same (cache-dtype) values whether or not the cache could be filled
                st.round_values = True
            if not fits:
                (log.warning if forced else log.info)(
                    "WSI cache %s: the feature files (%.1f GB) exceed %d%% of the memory this process may still "
                    "use (%.1f GB: MemAvailable or the job's cgroup limit)%s",
                    "on as configured (cache=true), may be killed for memory" if forced else "off",
                    total / 1e9,
                    round(100 * CACHE_MEMORY_SHARE),
                    (free or 0) / 1e9,
                    ""
                    if forced
                    else "; bags are read from disk each step (data.wsi.packed=true reads fastest)",
                )
            for st in stores:
                st.cache_enabled = enable
                st.fill_cache(patients)
            checked += " + values (RAM cache filled)" if enable else " (values on first read: cache off)"
            log.info(
                "WSI cache %s (%.1f MB of feature files, cap %.1f MB)",
                "on" if enable else "off",
                total / 1e6,
                cap / 1e6,
            )
        log.info("checked %s in %.2fs", checked, time.perf_counter() - start)

    def _check_staging_memory(self, stores: list[BagStore], sizes: list[dict[str, int]]) -> None:
        """cache=device reads every bag into host memory once before the copy to the device: refuse (one line)
        when that staging copy would not fit the memory this process may still use."""
        need = 0
        for st, per_slide in zip(stores, sizes, strict=True):
            dim = st.feature_dim or (st.packed.dim if st.packed is not None else 0)
            need += sum(per_slide.values()) * int(dim) * torch.empty((), dtype=st.cache_dtype).element_size()
        free = _memory_left()
        if free is not None and need > DEVICE_STAGING_SHARE * free:
            raise ValueError(
                f"data={self.name}: data.wsi.cache=device stages the bags ({need / 1e9:.1f} GB, "
                f"{self.wsi_cfg['cache_dtype']}) in host memory before copying them to the device, but this process "
                f"may use {free / 1e9:.1f} GB; use data.wsi.cache=auto, or data.wsi.packed=true data.wsi.cache=false"
            )

    def _packed_dir(self, store: BagStore) -> Path:
        """Folder of a store's packed file: wsi.packed_dir/<encoder>/<scale | single> (never inside a user's data)."""
        base = self.wsi_cfg["packed_dir"]
        if base is None:
            if not (self.synthetic or self.public):
                raise ValueError(
                    f"data={self.name}: wsi.packed=true needs wsi.packed_dir (a folder survlab may write, outside "
                    f"your data), e.g. data.wsi.packed_dir=/scratch/survlab/packed/{self.name}"
                )
            base = self.root.with_name(
                self.root.name + "-packed"
            )  # beside, so the cohort folder stays as written
        # a single-scale store in its own subfolder: `<encoder>/` itself would contain the multi-scale stores
        # `<encoder>/<scale>/` of the same encoder (a rebuild of one would replace the other)
        return Path(os.path.expanduser(str(base))) / (store.encoder or "features") / (store.scale or "single")

    def _use_packed(self, stores: list[BagStore], slides: list[str]) -> list[dict[str, int]]:
        """Switch every store to its packed file (reused when fresh; built after the header checks otherwise).
        -> patches per slide, per store."""
        sizes = []
        for st in stores:
            folder = self._packed_dir(st)
            if not st.reuse_packed(folder, slides, self.wsi_cfg["packed_dtype"]):
                st.check_headers(slides)
                st.use_packed(folder, slides, self.wsi_cfg["packed_dtype"], cohort=self.name)
            sizes.append({s: st.n_patches(s) for s in slides})
        return sizes

    def _read_genomics(self, cohort: Cohort) -> tuple[pd.DataFrame | None, Cohort]:
        """Read + check the expression table; drops (allow_missing) or errors on uncovered patients."""
        if "genomics" not in self.modalities:
            return None, cohort
        path = _under(self.root, self.gen_cfg["expression"])
        expr = read_expression(path, self.case_col)
        sig = self.gen_cfg["signatures"]
        sig_path = _under(self.root, sig) if sig else None
        self.matched_gene_groups = match_groups(  # before the fold's gene filter (FoldPreprocessing.fit)
            expr.columns, read_signatures(sig_path) if sig_path else None, str(sig_path or path)
        )
        log.info("genomics: %s", signature_coverage(self.matched_gene_groups, sig_path, path))
        if scale := expression_scale_problem(expr, bool(self.gen_cfg["log1p"]), path):
            log.warning("genomics: %s", scale)
        missing = check_coverage(expr, cohort.case_ids, path, self.allow_missing)
        self.drop_report["genomics"] = {"n_patients_dropped": len(missing), "patients": missing}
        return expr, cohort.drop(missing)

    def _setup_imaging(self, cohort: Cohort) -> Cohort:
        """CT stacks + tables (`imaging:`): drop (imaging.missing=drop, counted) or reject patients without them,
        then decode / cut every remaining patient's stacks once (cached) before training."""
        if "ct" not in self.modalities or self.imaging_cfg is None:
            return cohort
        from survlab.data.cohort.checks import DataFileError

        self.imaging = ImagingStore(self.root, {**self.imaging_cfg}, self.case_col)
        self.stacks_provenance = check_stack_provenance(
            self.root, self.name, self.fold, getattr(self, "split_hash", None)
        )  # None: an external cohort (not split; its patients are in no training part)
        missing = self.imaging.missing(cohort.case_ids)
        if missing and self.imaging_cfg["missing"] == "error":
            first = next(iter(missing))
            raise DataFileError(
                f"data={self.name}: {len(missing)} patient(s) lack imaging data ({_first_ids(list(missing))}; "
                f"e.g. {first} lacks {missing[first]}); add the files or set data.imaging.missing=drop"
            )
        self.drop_report["ct"] = {"n_patients_dropped": len(missing), "patients": sorted(missing)}
        cohort = cohort.drop(list(missing))
        self.imaging.prepare(cohort.case_ids)
        return cohort

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

    def _dims(self) -> ModalityDims:
        src = self.sources
        wsi_dim = scale_dims = None
        if src.wsi is not None:
            wsi_dim = src.wsi.feature_dim or int(
                src.wsi.read_slide(self.cohort.table["slide_ids"].iloc[0][0])[0].shape[1]
            )
        if src.scales is not None:
            first = self.cohort.table["slide_ids"].iloc[0][0]
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
            prep["genomics"] = {
                "scaling": fitted.gene_scaler.method,
                "log1p": fitted.gene_scaler.log1p,
                "groups": fitted.gene_groups.report(),
            }
            if fitted.gene_filter_report:
                prep["genomics"]["select"] = fitted.gene_filter_report
        if self.sources.clinical is not None:
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
            "preprocessing": prep,
            # DataLoader workers / pinning, and which of them `auto` chose from this machine (choose_loader)
            "loader": {k: v for k, v in self._loader_settings().items()},
        }

    # ------------------------------------------------------------------ loaders
    def _current_epoch(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.current_epoch) if trainer is not None else 0

    def _batches_done(self) -> int:
        """Training batches of the current epoch the trainer has already finished (> 0 only in an epoch resumed
        from a checkpoint written inside it); 0 outside fitting."""
        trainer = getattr(self, "trainer", None)
        if trainer is None or not getattr(trainer, "training", False):
            return 0
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.completed)

    def _sampling_weights(self, ds: PatientDataset) -> list[float]:
        """Inverse-frequency draw weights [len(ds)] for `weighted_sampling` (drawn with replacement): over (time bin x
        censorship) for a survival cohort; over the classes of the primary label otherwise (CLAM's class-balanced
        --weighted_sample; patients missing that label form a group of their own)."""
        if self.has_survival:
            keys: list[Any] = list(zip(ds.time_bins.tolist(), ds.rows["event"].tolist(), strict=True))
        else:
            keys = [ds.sources.labels[self.primary_label][case] for case in ds.case_ids]
        counts = Counter(keys)
        return [1.0 / counts[k] for k in keys]

    def _bag_lengths(self, ds: PatientDataset, train: bool) -> list[int] | None:
        """Patches each patient's bag will have in a batch (after the training / evaluation cap), for bucketing;
        None when bucketing is off or the cohort has no bags."""
        sizes = getattr(self, "slide_patches", None)
        if not self.bucketing or not sizes:
            return None
        cap = self.max_patches if train else self.eval_max_patches
        full = [sum(sizes[s] for s in slides) for slides in ds.rows["slide_ids"]]
        return [min(n, cap) if cap else n for n in full]

    def _loader(self, part: str, batch_size: int, train: bool) -> DataLoader:
        ds = self.datasets[part]
        sampler = None
        lengths = self._bag_lengths(ds, train)
        if train:
            weights = self._sampling_weights(ds) if self.weighted_sampling else None
            # draws are a function of (seed, epoch) only: a resumed run repeats the uninterrupted one exactly
            sampler = EpochSampler(
                len(ds),
                self.seed,
                weights,
                epoch_fn=self._current_epoch,
                lengths=lengths,
                batch_size=batch_size,
                bucket_batches=self.bucket_batches,
            )
        elif lengths is not None:
            sampler = LengthOrderSampler(lengths)
        # a last batch of 1 breaks BatchNorm and makes the Cox loss zero: drop it only then
        drop_last = train and len(ds) > batch_size and len(ds) % batch_size == 1
        # training: a loader that draws at the first batch (not when Lightning creates its iterator, which a resumed
        # run does before restoring the epoch), so a resumed run draws what the uninterrupted one did, with workers
        extra: dict[str, Any] = {"batches_done": self._batches_done} if train else {}
        return (EpochLoader if train else DataLoader)(
            ds,
            batch_size=batch_size,
            shuffle=False,
            sampler=sampler,
            drop_last=drop_last,
            collate_fn=collate,
            **self._worker_kwargs(persistent=True),
            # worker base seeds come from this generator, not the global RNG (which seeds dropout per epoch)
            generator=torch.Generator().manual_seed(self.seed),
            **extra,
        )

    @property
    def num_workers(self) -> int:
        """DataLoader workers of this run (`auto` resolved for this machine, survlab.data.datamodule.choose_loader)."""
        return int(self._loader_settings()["num_workers"])

    @property
    def pin_memory(self) -> bool:
        return bool(self._loader_settings()["pin_memory"])

    def _loader_settings(self) -> dict[str, Any]:
        """The loader choice, made once per run (logged, and recorded in protocol.json under cohort.loader)."""
        if self.loader_choice is None:
            trainer = getattr(self, "trainer", None)
            devices = int(getattr(trainer, "num_devices", 1) or 1) if trainer is not None else 1
            cuda = type(trainer.accelerator).__name__ == "CUDAAccelerator" if trainer is not None else None
            opts = self.loader_options
            choice = choose_loader(opts["num_workers"], opts["pin_memory"], devices, cuda)
            choice["persistent_workers"] = bool(opts["persistent_workers"]) and choice["num_workers"] > 0
            self.loader_choice = choice
            if choice["auto"]:
                log.info(
                    "data loader: num_workers=%d, pin_memory=%s (auto: %d usable CPU cores, %d training process(es), "
                    "%s; set data.num_workers / data.pin_memory to override)",
                    choice["num_workers"],
                    str(choice["pin_memory"]).lower(),
                    choice["cpus"],
                    choice["processes"],
                    "CUDA" if choice["cuda"] else "no CUDA device",
                )
        return self.loader_choice

    def _worker_kwargs(self, persistent: bool) -> dict[str, Any]:
        choice = self._loader_settings()
        kwargs = {"num_workers": choice["num_workers"], "pin_memory": choice["pin_memory"]}
        if persistent:
            kwargs["persistent_workers"] = choice["persistent_workers"]
        return kwargs

    def train_dataloader(self) -> DataLoader:
        self._need_setup()
        return self._loader("train", self.batch_size, train=True)

    def train_eval_dataloader(self) -> DataLoader:
        """The TRAINING patients in evaluation mode (full bags or the fixed eval subset, no shuffling): for
        quantities fitted on training predictions, e.g. the Breslow baseline hazard of Cox models."""
        self._need_setup()
        ds = self._dataset("train", train=False)
        lengths = self._bag_lengths(ds, train=False)
        return DataLoader(
            ds,
            batch_size=self.eval_batch_size,
            shuffle=False,
            collate_fn=collate,
            sampler=None if lengths is None else LengthOrderSampler(lengths),
            **self._worker_kwargs(persistent=False),
        )

    def calibration_dataloader(self) -> DataLoader:
        """The fold's calibration patients (carved from its training part) in evaluation mode."""
        self._need_setup()
        if "calibration" not in self.datasets:
            raise ValueError(
                f"data={self.name}: no calibration part; set data.splits.calibration_fraction > 0 (e.g. 0.2)"
            )
        return self._loader("calibration", self.eval_batch_size, train=False)

    def val_dataloader(self) -> DataLoader:
        self._need_setup()
        return self._loader("val", self.eval_batch_size, train=False)

    def test_dataloader(self) -> DataLoader:
        self._need_setup()
        return self._loader("test", self.eval_batch_size, train=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()
