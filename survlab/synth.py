"""`survlab synth data=<synthetic cohort> out=DIR`: write a synthetic cohort in the REAL file layout to a folder you
name, and print that layout and a data config that reads it like any real cohort of yours.

    survlab synth data=synthetic out=/tmp/cohort                             # 240 patients: WSI + genes + clinical
    survlab synth data=synthetic out=/tmp/small data.synthetic.n_patients=60 data.synthetic.seed=3
    survlab synth data=synthetic_classification out=/tmp/cls config=conf/data/my_cls.yaml
    survlab synth data=synthetic_petct out=/tmp/petct --config-dir /lab/conf

Arguments: `out=DIR` (required; absent, empty, or a cohort survlab wrote: nothing else is ever overwritten),
`name=NAME` (the printed config's cohort name; default: the folder's name), `config=FILE` (also write the data config
there; an existing file is never overwritten), and any Hydra overrides of the data config (`data.synthetic.<field>`:
the generator's spec, e.g. n_patients, feature_dim, seed). The printed config has no `synthetic:` block, so training
on it reads the files exactly as it would read your own; its split files go under paths.splits_dir, not into DIR.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

#: synthetic.kind -> (module, spec class, generator function) of the data layer's generators
GENERATORS: dict[str, tuple[str, str, str]] = {
    "survival": ("survlab.data.synthetic", "SyntheticSpec", "generate_cohort"),
    "classification": ("survlab.data.synthetic", "ClassificationSpec", "generate_classification_cohort"),
    "pathgen": ("survlab.data.synthetic_pathgen", "PathGenSpec", "generate_pathgen_cohort"),
    "petct": ("survlab.data.synthetic_petct", "PetCtSpec", "generate_petct_cohort"),
}
_KEYS = ("out", "name", "config")


def compose_data(overrides: Sequence[str], config_dirs: Sequence[str] = ()) -> Any:
    """The composed `data` node of `config` with `overrides` (package configs + the user search path + the
    `config_dirs` given with --config-dir), interpolations left as written."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import MissingConfigException

    from survlab.utils.confdirs import PACKAGE_CONF_DIR, searchpath_overrides

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(PACKAGE_CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=[*overrides, *searchpath_overrides(list(config_dirs))])
    except MissingConfigException as exc:
        raise ValueError(
            f"{str(exc).splitlines()[0]}; configs of yours are found through SURVLAB_CONFIG_PATH, ./conf "
            "or --config-dir DIR (README 'Your own configs')"
        ) from None
    finally:
        GlobalHydra.instance().clear()
    return cfg.data


def generate(out: Path, synthetic: dict[str, Any], data_name: str) -> Path:
    """Write the cohort `synthetic:` (a data config's block: `kind` + spec fields) describes to `out` (cached)."""
    kind = synthetic.get("kind", "survival")
    if kind not in GENERATORS:
        raise ValueError(f"data={data_name}: synthetic.kind={kind!r}; allowed: {sorted(GENERATORS)}")
    module, spec_name, func_name = GENERATORS[kind]
    mod = importlib.import_module(module)
    spec_cls = getattr(mod, spec_name)
    allowed = {f.name for f in fields(spec_cls)}
    unknown = sorted(set(synthetic) - allowed - {"kind"})
    if unknown:
        raise ValueError(
            f"data={data_name}: unknown synthetic option(s) {unknown}; allowed: {sorted(allowed)}"
        )
    spec = spec_cls(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in synthetic.items() if k != "kind"}
    )
    return getattr(mod, func_name)(out, spec)


def data_config(data: Any, root: Path, name: str) -> dict[str, Any]:
    """The data config that reads the written cohort as a real one: `root` = the folder, no `synthetic:` block,
    split files under `${paths.splits_dir}/<name>` (nothing is written into the cohort folder)."""
    from omegaconf import OmegaConf

    cfg: dict[str, Any] = {str(k): v for k, v in OmegaConf.to_container(data, resolve=False).items()}  # type: ignore[union-attr]
    cfg.pop("synthetic", None)
    cfg.update(name=name, root=str(root))
    wsi, dim = cfg.get("wsi"), synthetic_dim(data)
    if isinstance(wsi, dict) and dim is not None:  # the generated features' width, whatever the config said
        wsi["feature_dim"] = dim
    if not cfg.get("split_root"):
        cfg["split_root"] = "${paths.splits_dir}/${.name}"
    return cfg


def synthetic_dim(data: Any) -> int | None:
    """`synthetic.feature_dim` of a data node (the width of the written patch features), or None."""
    dim = (data.get("synthetic") or {}).get("feature_dim")
    return int(dim) if dim is not None else None


def describe_layout(root: Path, max_names: int = 8) -> list[str]:
    """One line per kind of folder of `root`: its files, or their count and extensions when there are many.
    Sibling folders beyond `max_names` (one per case, e.g. images/<case>/lesion) are shown once as `<N folders>`."""
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    subdirs: dict[Path, set[str]] = {}
    for f in files:
        for d in [f.parent, *f.parent.parents]:
            if d != Path("."):
                subdirs.setdefault(d.parent, set()).add(d.name)

    def template(d: Path) -> str:
        parts, cur = [], Path(".")
        for name in d.parts:
            many = len(subdirs.get(cur, ())) > max_names
            parts.append(f"<{len(subdirs[cur])} folders>" if many else name)
            cur = cur / name
        return "/".join(parts)

    groups: dict[str, list[Path]] = {}
    for f in files:
        groups.setdefault(template(f.parent) if f.parent != Path(".") else ".", []).append(f)
    lines = []
    for t, members in sorted(groups.items()):
        prefix = "" if t == "." else f"{t}/"
        if len(members) <= max_names:
            lines += [f"  {prefix}{m.name}" for m in members]
        else:
            exts = Counter("".join(m.suffixes) or "(none)" for m in members)
            kinds = ", ".join(f"{c} *{e}" for e, c in sorted(exts.items()))
            lines.append(f"  {prefix}  {len(members)} files ({kinds}), e.g. {members[0]}")
    return lines


def _split_args(args: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """(`out=` / `name=` / `config=` values, the Hydra overrides)."""
    own: dict[str, str] = {}
    overrides: list[str] = []
    for a in args:
        key = a.split("=", 1)[0]
        if key in _KEYS and "=" in a:
            own[key] = a.split("=", 1)[1]
        else:
            overrides.append(a)
    return own, overrides


def main(argv: list[str] | None = None) -> int:
    """`survlab synth data=<synthetic cohort> out=DIR [name=NAME] [config=FILE] [data.synthetic.<field>=...]`."""
    import yaml

    ap = argparse.ArgumentParser(
        prog="survlab synth", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "args",
        nargs="*",
        help="out=DIR [name=NAME] [config=FILE] and Hydra overrides (data=..., data.synthetic.n_patients=...)",
    )
    ap.add_argument(
        "--config-dir", "-cd", action="append", default=[], help="an extra config folder (like survlab train)"
    )
    a = ap.parse_args(sys.argv[1:] if argv is None else argv)
    own, overrides = _split_args(a.args)
    if not own.get("out"):
        raise ValueError(
            "survlab synth: give the folder to write, e.g. survlab synth data=synthetic out=/tmp/cohort"
        )
    out = Path(own["out"]).expanduser().resolve()
    name = own.get("name") or re.sub(r"\W", "_", out.name)
    target = Path(own["config"]).expanduser() if own.get("config") else None
    if target is not None and target.exists():
        raise ValueError(
            f"survlab synth: config={target} exists; survlab never overwrites it: pick a new file name"
        )

    from omegaconf import OmegaConf

    data = compose_data(overrides, a.config_dir)
    if not data.get("synthetic"):
        raise ValueError(
            f"survlab synth: data={data.get('name')} has no `synthetic:` block (not a generated cohort); "
            "use a synthetic one, e.g. data=synthetic, synthetic_classification, synthetic_petct"
        )
    synthetic: dict[str, Any] = dict(OmegaConf.to_container(data.synthetic, resolve=True))  # type: ignore[arg-type]
    start = time.perf_counter()
    root = generate(out, synthetic, str(data.get("name")))
    seconds = time.perf_counter() - start

    summary = ""
    if (root / "oracle.json").is_file():
        oracle = json.loads((root / "oracle.json").read_text())
        shown = {k: v for k, v in oracle.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        summary = "; ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in sorted(shown.items())
        )
    print(
        f"{synthetic.get('kind', 'survival')} cohort data={data.get('name')} in {root} (ready in {seconds:.1f}s)"
        + (f": {summary}" if summary else "")
    )
    print("layout:")
    print("\n".join(describe_layout(root)))
    text = yaml.safe_dump(data_config(data, root, name), sort_keys=False, default_flow_style=None, width=110)
    header = f"# data config written by: survlab synth {' '.join(a.args)}\n"
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(header + text)
        conf_root = target.parent.parent if target.parent.name == "data" else target.parent
        print(
            f"\ndata config written to {target}; train on it with:\n"
            f"  SURVLAB_CONFIG_PATH={conf_root} survlab train data={target.stem}"
        )
    else:
        print(
            f"\ndata config (save as <your conf folder>/data/{name}.yaml, then: "
            f"SURVLAB_CONFIG_PATH=<your conf folder> survlab train data={name}):\n"
        )
        print(header + text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
