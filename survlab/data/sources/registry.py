"""The cohorts survlab writes itself: generated (`data.synthetic.kind`) and shipped public (`data.public`) ones.

The data module (prepare_data), `survlab synth` and the public-cohort module all look a cohort up here; a new
generator or public cohort is one entry below. Modules are imported on first use (generators pull in their own
dependencies).

    >>> sorted(SYNTHETIC), sorted(PUBLIC)
    (['classification', 'pathgen', 'petct', 'survival'], ['gse7390'])
    >>> synthetic_spec({"kind": "survival", "n_patients": 12, "patches_per_slide": [5, 9]}, "x").patches_per_slide
    (5, 9)
    >>> synthetic_spec({"kind": "survival", "n_patient": 12}, "x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: data=x: unknown synthetic option(s) ['n_patient']; allowed: ['cross_scale_interaction', ...]
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Entry:
    """A cohort writer: `function(root, *args) -> root` in `module` (and the spec dataclass it takes, if any)."""

    module: str
    function: str
    spec: str | None = None

    def load(self, name: str) -> Any:
        return getattr(importlib.import_module(self.module), name)


#: data.synthetic.kind -> generator (spec dataclass + function writing the cohort folder)
SYNTHETIC: dict[str, Entry] = {
    "survival": Entry(
        "survlab.data.sources.synthetic", "generate_cohort", "SyntheticSpec"
    ),  # the spec: synthetic_spec
    "classification": Entry(
        "survlab.data.sources.synthetic_classification",
        "generate_classification_cohort",
        "ClassificationSpec",
    ),
    "pathgen": Entry("survlab.data.sources.synthetic_pathgen", "generate_pathgen_cohort", "PathGenSpec"),
    "petct": Entry("survlab.data.sources.synthetic_petct", "generate_petct_cohort", "PetCtSpec"),
}
#: data.public -> function writing the shipped cohort's files
PUBLIC: dict[str, Entry] = {
    "gse7390": Entry("survlab.data.sources.public", "materialize_gse7390"),
}


def synthetic_entry(synthetic: dict[str, Any], data_name: str) -> Entry:
    """The generator of `synthetic.kind` (default survival); an unknown kind is a one-line error."""
    kind = synthetic.get("kind", "survival")
    if kind not in SYNTHETIC:
        raise ValueError(f"data={data_name}: synthetic.kind={kind!r}; allowed: {sorted(SYNTHETIC)}")
    return SYNTHETIC[kind]


def spec_class(synthetic: dict[str, Any], data_name: str) -> type:
    """The spec dataclass of the generator `synthetic` (a data config's block) names."""
    entry = synthetic_entry(synthetic, data_name)
    return entry.load(str(entry.spec))


def check_synthetic(synthetic: dict[str, Any], data_name: str) -> None:
    """`synthetic:` names a known kind and only its spec's fields (one-line error otherwise)."""
    allowed = sorted(["kind", *(f.name for f in fields(spec_class(synthetic, data_name)))])
    unknown = sorted(set(synthetic) - set(allowed))
    if unknown:
        raise ValueError(f"data={data_name}: unknown synthetic option(s) {unknown}; allowed: {allowed}")


def synthetic_spec(synthetic: dict[str, Any], data_name: str) -> Any:
    """The generator spec (defaults filled in; lists as tuples) that `synthetic:` (`kind` + spec fields) describes."""
    check_synthetic(synthetic, data_name)
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in synthetic.items() if k != "kind"}
    return spec_class(synthetic, data_name)(**given)


def generate(root: str | Path, synthetic: dict[str, Any], data_name: str) -> Path:
    """Write the generated cohort `synthetic:` describes to `root` (cached: a folder already written is reused)."""
    spec = synthetic_spec(synthetic, data_name)
    entry = synthetic_entry(synthetic, data_name)
    return Path(entry.load(entry.function)(Path(root), spec))


def check_public(name: str, data_name: str | None = None) -> None:
    """`data.public` names a shipped cohort (one-line error listing them otherwise)."""
    if str(name).lower() not in PUBLIC:
        where = f"data={data_name}: " if data_name else ""
        raise ValueError(f"{where}unknown public cohort {name!r}; available: {', '.join(sorted(PUBLIC))}")


def materialize_public(name: str, root: str | Path) -> Path:
    """Write the shipped public cohort `name` to `root` (cached)."""
    check_public(name)
    entry = PUBLIC[str(name).lower()]
    return Path(entry.load(entry.function)(Path(root)))


def materialize(
    root: str | Path, synthetic: dict[str, Any] | None, public: str | None, data_name: str
) -> None:
    """Write the cohort a data config generates (`synthetic:`) or ships (`public:`) to `root`; nothing for a cohort
    of the user's own. Both at once is a one-line error."""
    if synthetic is not None and public is not None:
        raise ValueError(f"data={data_name}: set either synthetic: or public:, not both")
    if synthetic is not None:
        generate(root, synthetic, data_name)
    elif public is not None:
        materialize_public(public, root)
