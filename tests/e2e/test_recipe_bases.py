"""Recipes share their settings through bases (conf/experiment/_<family>.yaml), not copies: a cohort recipe is its
base applied to its cohort, so its composed config (and the job identity a finished sweep is recognised by) is the
base's settings plus the cohort's data config — nothing else, and no recipe repeats another's settings."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from survlab.utils import job_identity
from tests.helpers.runs import CONF_DIR, compose_config

EXPERIMENTS = CONF_DIR / "experiment"
RECIPES = sorted(p for p in EXPERIMENTS.glob("*.yaml") if not p.stem.startswith("_"))
MAX_SHARED_SETTINGS = 6  # setting lines two recipes may have in common before they count as copies


def _defaults(path: Path) -> list[str]:
    """The entries of a config file's `defaults:` list, as written (e.g. '_ggmf_tcga', 'override /data: tcga_brca')."""
    lines = path.read_text().splitlines()
    if "defaults:" not in lines:
        return []
    out = []
    for line in lines[lines.index("defaults:") + 1 :]:
        if not line.startswith("  - "):
            break
        out.append(line[4:].split("#")[0].strip())
    return out


def _settings(path: Path) -> set[str]:
    """The `key: value` lines of a recipe (indentation kept, comments and the defaults list dropped)."""
    out = set()
    for line in path.read_text().splitlines():
        text = line.split("#")[0].rstrip()
        if text.strip() and not text.endswith(":") and not text.lstrip().startswith("- "):
            out.add(text)
    return out


# base name -> the recipes listing it (a family of cohort recipes)
FAMILIES = {
    base: [r for r in RECIPES if base in _defaults(r)]
    for base in sorted(p.stem for p in EXPERIMENTS.glob("_*.yaml"))
}
COHORT_RECIPES = [(base, r) for base, rs in FAMILIES.items() for r in rs]


def _data_override(recipe: Path) -> str:
    (data,) = [
        re.sub(r"^override /data:\s*", "", d) for d in _defaults(recipe) if d.startswith("override /data:")
    ]
    return data


def _identity(tmp: Path, overrides: list[str]) -> dict:
    cfg = compose_config(
        tmp / "out", [f"paths.data_dir={tmp / 'data'}", f"paths.log_dir={tmp / 'logs'}", *overrides]
    )
    return job_identity.identity_of(cfg)


def test_every_family_of_cohort_recipes_uses_its_base() -> None:
    for prefix, base in [
        ("crossfusion_tcga_", "_crossfusion_tcga"),
        ("ggmf_tcga_", "_ggmf_tcga"),
        ("mcat_tcga_", "_mcat_tcga"),
        ("clam_sb_", "_clam_sb"),
        ("pathgen_pipeline_tcga_", "_pathgen_pipeline_tcga"),
    ]:
        members = [r.stem for r in RECIPES if r.stem.startswith(prefix)]
        assert len(members) >= 2 and sorted(members) == sorted(r.stem for r in FAMILIES[base]), base
    # a cohort recipe only picks its cohort: its defaults are the base, the data config and _self_
    for base, recipe in COHORT_RECIPES:
        assert _defaults(recipe)[0] == base and _defaults(recipe)[-1] == "_self_", recipe.name


def test_no_recipe_copies_another_recipes_settings() -> None:
    shared = {(a.stem, b.stem): _settings(a) & _settings(b) for a, b in itertools.combinations(RECIPES, 2)}
    copies = {pair: sorted(lines) for pair, lines in shared.items() if len(lines) > MAX_SHARED_SETTINGS}
    assert not copies, (
        f"recipes repeating each other's settings (move them into a _<family>.yaml base): {copies}"
    )


@pytest.mark.parametrize("base", ["_crossfusion_tcga", "_ggmf_tcga", "_mcat_tcga", "_pathgen_pipeline_tcga"])
def test_a_cohort_recipe_is_its_base_applied_to_its_cohort(base: str, tmp_path: Path) -> None:
    """The recipe's job identity equals the base's with the cohort chosen on the command line (the recipe adds
    nothing else), and two cohorts of a family differ only in `data.*` — as the former copies did."""
    first, second = FAMILIES[base][:2]
    ident = {r.stem: _identity(tmp_path, [f"experiment={r.stem}"]) for r in (first, second)}
    assert ident[first.stem] == _identity(tmp_path, [f"experiment={base}", f"data={_data_override(first)}"])
    diff = job_identity.identity_diff(ident[first.stem], ident[second.stem], k=1000)
    changed = {part.split(":")[0] for part in diff.split("; ")}
    assert changed and all(key.startswith("data.") for key in changed), diff
    assert ident[first.stem]["data"]["name"] != ident[second.stem]["data"]["name"]
