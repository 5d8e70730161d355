"""`survlab synth data=<synthetic cohort> out=DIR`: write a synthetic cohort in the REAL file layout to a folder you
name, and print that layout and a data config that reads it like any real cohort of yours.

    survlab synth data=synthetic out=/tmp/cohort                             # 240 patients: WSI + genes + clinical
    survlab synth data=synthetic out=/tmp/small data.synthetic.n_patients=60 data.synthetic.seed=3
    survlab synth data=synthetic_classification out=/tmp/cls config=conf/data/my_cls.yaml
    survlab synth data=synthetic_petct out=/tmp/petct --config-dir /lab/conf

Arguments: `out=DIR` (required; absent, empty, or a cohort survlab wrote: nothing else is ever overwritten),
`name=NAME` (the printed config's cohort name; default: the folder's name), `config=FILE` (also write the data config
there; an existing file is never overwritten), and any Hydra overrides of the data config (`data.synthetic.<field>`:
the generator's spec, e.g. n_patients, feature_dim, seed, `+data.synthetic.radiomics_dim=8`). The printed config has
no `synthetic:` block, so training on it reads the files exactly as it would read your own; its split files go under
paths.splits_dir, not into DIR. Its file fields follow the options given (feature width and format, radiomics width,
clinical noise columns), and before it is printed the written cohort is read with it as `survlab check` would: a
config that does not read what was written is refused, never handed out.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from survlab.data.sources import registry

_KEYS = ("out", "name", "config")


def compose_data(overrides: Sequence[str], config_dirs: Sequence[str] = ()) -> Any:
    """The composed `data` node of `config` with `overrides` (package configs + the user search path + the
    `config_dirs` given with --config-dir), interpolations left as written."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import MissingConfigException

    from survlab.config.search_path import PACKAGE_CONF_DIR, searchpath_overrides

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


def make_spec(synthetic: dict[str, Any], data_name: str) -> Any:
    """The generator spec (dataclass, defaults filled in) that `synthetic:` (`kind` + spec fields) describes."""
    return registry.synthetic_spec(synthetic, data_name)


def generate(out: Path, synthetic: dict[str, Any], data_name: str) -> Path:
    """Write the cohort `synthetic:` (a data config's block: `kind` + spec fields) describes to `out` (cached)."""
    return registry.generate(out, synthetic, data_name)


def _set(cfg: dict[str, Any], path: str, value: Any) -> bool:
    """cfg[a][b] = value for path 'a.b' when the block `a` exists (a config without it does not read that file)."""
    *parents, key = path.split(".")
    node: Any = cfg
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return False
    node[key] = value
    return True


def match_spec(cfg: dict[str, Any], spec: Any) -> None:
    """Make the data config `cfg` read what the generator `spec` writes (in place): patch feature width and file
    format, radiomics width, the clinical noise columns. Every generator option that changes the written files'
    shape or names is here; the written cohort is then checked with the config (`survlab check`) anyway."""
    names = {f.name for f in fields(spec)}
    if "feature_dim" in names:
        _set(cfg, "wsi.feature_dim", int(spec.feature_dim))
    if "formats" in names and isinstance(cfg.get("wsi"), dict):
        if cfg["wsi"].get("format", "auto") not in (*spec.formats, "auto"):
            cfg["wsi"]["format"] = "h5" if "h5" in spec.formats else spec.formats[0]
    if "radiomics_dim" in names:
        _set(cfg, "imaging.radiomics_dim", int(spec.radiomics_dim))
    if "n_clinical_noise" in names and isinstance(cfg.get("clinical"), dict):
        written = [f"noise_num_{j}" if j % 2 == 0 else f"noise_cat_{j}" for j in range(spec.n_clinical_noise)]
        clinical = cfg["clinical"]
        noise = re.compile(r"^noise_(num|cat)_\d+$")
        clinical["columns"] = [c for c in clinical.get("columns", []) if not noise.match(str(c))] + written
        if "categorical" in clinical:
            clinical["categorical"] = [c for c in clinical["categorical"] if not noise.match(str(c))] + [
                c for c in written if c.startswith("noise_cat_")
            ]


def data_config(data: Any, root: Path, name: str) -> dict[str, Any]:
    """The data config that reads the written cohort as a real one: `root` = the folder, no `synthetic:` block,
    split files under `${paths.splits_dir}/<name>` (nothing is written into the cohort folder); the fields that
    describe the files follow the generator's spec (`match_spec`), whatever the config said."""
    from omegaconf import OmegaConf

    cfg: dict[str, Any] = {str(k): v for k, v in OmegaConf.to_container(data, resolve=False).items()}  # type: ignore[union-attr]
    synthetic = cfg.pop("synthetic", None)
    cfg.update(name=name, root=str(root))
    if isinstance(synthetic, dict):
        resolved = dict(OmegaConf.to_container(data.synthetic, resolve=True))  # type: ignore[arg-type]
        match_spec(cfg, make_spec(resolved, name))
    if not cfg.get("split_root"):
        cfg["split_root"] = "${paths.splits_dir}/${.name}"
    return cfg


def check_reads(cfg: dict[str, Any], name: str) -> None:
    """Read the written cohort with the data config `cfg` exactly as `survlab check` would (nothing is written);
    raise ValueError listing every problem, so a config that does not read what synth wrote is never handed out."""
    import tempfile

    import yaml

    from survlab.cli.check import compose_data as compose_module
    from survlab.config.search_path import searchpath_overrides
    from survlab.data.audit import audit_cohort

    with tempfile.TemporaryDirectory(prefix="survlab_synth_") as tmp:
        (Path(tmp) / "data").mkdir()
        (Path(tmp) / "data" / f"{name}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        dm = compose_module([f"data={name}", *searchpath_overrides([tmp])])
        result = audit_cohort(dm)
    if result.findings:
        problems = "; ".join(f"[{f.check}] {f.message}" for f in result.findings)
        raise ValueError(
            f"survlab synth: the data config for {cfg.get('root')} does not read what was written ({problems}); "
            "survlab check would refuse it: change the data.synthetic options (or the data config's)"
        )


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
    config = data_config(data, root, name)
    check_reads(config, name)
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=110)
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
