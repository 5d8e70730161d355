"""The data config's options as dataclasses: the one place their Python defaults live.

`DataOptions` holds the keys of a `conf/data/<cohort>.yaml` (the keyword arguments of `CohortDataModule`);
`WsiOptions`, `TridentOptions`, `GenomicsOptions` and `SplitOptions` hold the keys of its `wsi:`, `wsi.trident:`,
`genomics:` and `splits:` blocks. A key a YAML leaves out takes the default written here; a default the shipped
bases (`conf/data/_*.yaml`) state must not contradict it (tests/data/test_options.py walks every YAML).

    >>> option_dict(WsiOptions, {"encoder": "uni"}, "wsi")["cache_max_gb"]
    8.0
    >>> option_dict(SplitOptions, {"fold": 1}, "splits")
    Traceback (most recent call last):
    ...
    ValueError: unknown splits option(s) ['fold']; allowed: ['calibration_fraction', 'dir', 'folds', 'group', 'import', 'repeat', 'seed', 'stratify_label', 'stratify_site', 'val_fraction']
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload


def plain(x: Any) -> Any:
    """DictConfig/ListConfig (Hydra) -> plain containers; other values unchanged."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(x, (DictConfig, ListConfig)):
            return OmegaConf.to_container(x, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return x


def under(root: Path, p: str | Path) -> Path:
    """`p` (~ expanded) when absolute, else `root / p` (a file or folder a data config names under its root)."""
    p = Path(os.path.expanduser(str(p)))
    return p if p.is_absolute() else root / p


@dataclass
class TridentOptions:
    """`data.wsi.trident` (layout=trident): which patching of a TRIDENT job dir holds the features
    (survlab.data.modalities.trident). None = any (enough when the job holds one)."""

    job_dir: str | None = None  # TRIDENT's --job_dir (relative to the cohort folder, or absolute)
    encoder: str | None = None  # TRIDENT's --patch_encoder, e.g. uni_v1
    mag: float | None = None
    patch_size: int | None = None
    overlap: int | None = 0


@dataclass
class WsiOptions:
    """`data.wsi`: where the slides' patch features are and how they are held in memory."""

    features_dir: str = "features"
    encoder: str | None = None  # no default: the cohort names its feature extractor
    format: str = "auto"  # auto | h5 | pt
    feature_dim: int | dict[str, int] | None = None  # None: read from the first bag
    scales: list[str] | None = None
    cache: bool | str = "auto"  # auto (RAM when the cohort fits cache_max_gb) | true | false | device
    cache_max_gb: float = 8.0
    cache_dtype: str = "float16"
    packed: bool = False  # bags from one flat file + offsets per store (survlab.data.modalities.packed)
    packed_dir: str | None = None  # where packed stores go (None: <root>-packed beside a generated cohort)
    packed_dtype: str = "float16"
    layout: str = (
        "clam"  # clam: <features_dir>/<encoder>/{h5,pt}_files/; trident: TRIDENT's job dir (`trident`)
    )
    trident: dict[str, Any] | None = None  # TridentOptions keys


@dataclass
class GenomicsOptions:
    """`data.genomics`: the expression table, its gene groups and its fold-fitted scaling."""

    expression: str = "expression.csv"
    signatures: str | None = None  # None: one group of every gene
    scaling: str = "standard"  # standard | minmax | none
    log1p: bool = False
    values_from: str | None = None  # another expression table whose values replace the real ones (PathGen)
    select: dict[str, Any] | None = None  # gene filter fitted on training patients (modalities.gene_filter)


@dataclass
class SplitOptions:
    """`data.splits`: the persisted patient-level folds (survlab.data.cohort.splits)."""

    dir: str | None = None
    folds: int = 5
    val_fraction: float = 0.15
    seed: int = 0
    stratify_site: str | None = None
    stratify_label: str | None = None
    calibration_fraction: float = 0.0
    group: str | None = None  # site-preserved folds: a column (e.g. site) kept in one fold
    repeat: int = 0  # repeated k-fold: r > 0 draws another seeded assignment; 0 = the original
    import_: dict[str, Any] | None = field(
        default=None, metadata={"key": "import"}
    )  # {format: mcat | clam, dir}


@dataclass
class DataOptions:
    """The keys of a `conf/data/<cohort>.yaml` (CohortDataModule's keyword arguments; users write them in YAML)."""

    name: str = "synthetic"
    root: str = "data/synthetic"
    clinical_csv: str = "clinical.csv"
    case_col: str = "case_id"
    slide_col: str | None = "slide_id"
    time_col: str | None = "survival_months"
    censorship_col: str | None = "censorship"
    event_col: str | None = None
    endpoint: str = "os"
    endpoints: dict[str, dict[str, str]] | None = None
    wsi: dict[str, Any] | None = None  # WsiOptions keys; None: no slides
    genomics: dict[str, Any] | None = None  # GenomicsOptions keys; None: no expression table
    clinical: dict[str, Any] | None = None  # {columns, categorical, table}
    imaging: dict[str, Any] | None = None  # survlab.data.modalities.imaging.parse_imaging
    subgroups: Sequence[str] = ()
    label_cols: Sequence[str] = ()
    labels: dict[str, dict[str, Any]] | None = None
    slide_labels: dict[str, dict[str, Any]] | None = None
    n_bins: int = 4
    splits: dict[str, Any] | None = None  # SplitOptions keys
    split_root: str | None = None  # where split dirs go (None: <root>/splits, for cohorts survlab wrote)
    fold: int = 0
    batch_size: int = 8
    eval_batch_size: int | None = None  # None: batch_size
    num_workers: int | str = 0  # or auto (survlab.data.loaders.choose_loader)
    pin_memory: bool | str = False  # or auto
    persistent_workers: bool = False
    max_patches: int | None = 4096
    max_patches_per_scale: dict[str, int] | None = None
    eval_max_patches: int | None = None
    weighted_sampling: bool = False
    bucketing: bool = False
    bucket_batches: int = 8
    allow_missing: bool = False  # the old spelling of missing=drop
    missing: str = "error"  # error | drop | keep: patients lacking a modality (survlab.data.options.MISSING)
    seed: int = 0
    synthetic: dict[str, Any] | None = None  # a generated cohort's spec (survlab.data.sources.registry)
    public: str | None = None  # a shipped public cohort's name (survlab.data.sources.registry)
    modalities: Sequence[str] | None = None  # None: every modality the config provides
    accepts_absent: Sequence[str] | None = None  # modalities the network takes absent (None: not checked)
    prompts: dict[str, str] | None = None  # label -> prompts file (survlab.data.modalities.text)
    time_unit: str = "months"


#: `data.missing`: error (a patient lacking a modality the model reads is a one-line error), drop (such patients
#: are left out, counted; the old `allow_missing: true`), keep (kept, marked absent in `PatientItem.present`)
MISSING: tuple[str, ...] = ("error", "drop", "keep")


def missing_mode(missing: str, allow_missing: bool, cohort: str) -> str:
    """`data.missing` with the old spelling `allow_missing: true` (= drop) folded in; an unknown value, or
    allow_missing=true with missing=error/keep, is a one-line ValueError.

        >>> missing_mode("error", True, "tcga_luad")
        'drop'
    """
    missing = str(missing)
    if missing not in MISSING:
        raise ValueError(f"data={cohort}: data.missing={missing!r} is not one of {list(MISSING)}")
    if allow_missing and missing == "keep":
        raise ValueError(
            f"data={cohort}: allow_missing=true (drop) contradicts data.missing=keep; remove allow_missing "
            f"(data.missing=keep keeps the patients)"
        )
    return "drop" if allow_missing else missing


def keys(cls: type) -> dict[str, dataclasses.Field]:
    """Config key -> field of an options dataclass (`import_` is spelled `import` in YAML)."""
    return {f.metadata.get("key", f.name): f for f in dataclasses.fields(cls)}


def defaults(cls: type) -> dict[str, Any]:
    """Config key -> default of every field of an options dataclass."""
    return {k: f.default for k, f in keys(cls).items()}


@overload
def option_dict(cls: type, given: None, what: str) -> None: ...
@overload
def option_dict(cls: type, given: dict[str, Any], what: str) -> dict[str, Any]: ...
def option_dict(cls: type, given: dict[str, Any] | None, what: str) -> dict[str, Any] | None:
    """`given` (a YAML block, None = absent) over `cls`'s defaults as a dict keyed like the YAML; an unknown key is a
    one-line error listing the allowed ones."""
    if given is None:
        return None
    given = dict(plain(given))
    allowed = defaults(cls)
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {what} option(s) {unknown}; allowed: {sorted(allowed)}")
    return {**allowed, **given}


def signature_of(cls: type) -> inspect.Signature:
    """The keyword-only signature `self, *, <field>=<default>...` of an options dataclass (a constructor taking
    `**options` shows it to `inspect`, so survlab's config check lists the allowed keys)."""
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [
        inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
        for k, f in keys(cls).items()
    ]
    return inspect.Signature(params, return_annotation=None)


def data_options(options: dict[str, Any]) -> DataOptions:
    """A data config's keys -> DataOptions; an unknown key is a one-line error listing the allowed ones."""
    allowed = keys(DataOptions)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown data option(s) {unknown}; allowed: {sorted(allowed)}")
    return DataOptions(**options)
