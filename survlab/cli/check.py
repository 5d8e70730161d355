"""Check a cohort before a sweep: read it whole once and list EVERY problem, one line per problem group.

    survlab check data=my_cohort                     # a cohort config of your own (./conf/data, SURVLAB_CONFIG_PATH)
    survlab check --config-dir /lab/conf data=my_cohort   # or from a folder given for this one command
    survlab check data=tcga_luad data.root=/data/luad data.wsi.encoder=uni data.wsi.feature_dim=1536

Takes the same Hydra overrides as a run (`data.*` matter; nothing is trained, nothing is written). Each line names the
file, the check, how many cases / slides and the first of them, and the fix. Exit 0 when clean (a summary: patients,
slides, events, modalities, per-modality coverage), 1 when there is a problem.
Notes list what training copes with (imputed cells, small folds, an expression scale that does not fit log1p);
`what the config reads:` names the clinical columns left unread and the signatures file with its gene coverage.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from survlab.config.search_path import PACKAGE_CONF_DIR as CONF_DIR


def compose_data(overrides: list[str], info: dict[str, Any] | None = None) -> Any:
    """The run config's `data` node composed with `overrides` -> a CohortDataModule (not set up; every modality the
    config provides, so all of them are checked). `info`, when given, receives the run's `selection` rule."""
    import hydra
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        if info is not None:
            info["selection"] = str(cfg.get("selection", "best_val"))
        return hydra.utils.instantiate(cfg.data, modalities=None, _recursive_=False)
    finally:
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None


class _Progress:
    """'checking <folder>: 1200/5000 files' on stderr, at most every `every` seconds, for > `min_total` files."""

    def __init__(self, every: float = 5.0, min_total: int = 200) -> None:
        self.every, self.min_total, self.last = every, min_total, time.monotonic()

    def __call__(self, done: int, total: int, what: str) -> None:
        now = time.monotonic()
        if total > self.min_total and (now - self.last >= self.every or done == total):
            print(f"checking {what}: {done}/{total}", file=sys.stderr, flush=True)
            self.last = now


def _line(finding: Any) -> str:
    n = len(finding.cases)
    return f"  [{finding.check}]{f' {n}x' if n else ''} {finding.message}"


def render(result: Any, name: str) -> list[str]:
    """Console lines of an AuditResult: the problem groups (one line each), notes, what the config reads (signatures
    and gene coverage, unused clinical columns), and the summary."""
    s = result.summary
    lines = []
    if result.findings:
        lines.append(
            f"survlab check data={name}: {len(result.findings)} problem group(s), fix them before training:"
        )
        lines += [_line(f) for f in result.findings]
    if result.notes:
        lines.append(f"notes ({len(result.notes)}; training handles these):")
        lines += [_line(f) for f in result.notes]
    if result.info:
        lines.append("what the config reads:")
        lines += [f"  {line}" for line in result.info]
    head = [f"{s['patients']} patients"] if "patients" in s else []
    head += [f"{s['slides']} slides"] if s.get("slides") else []
    head += [f"{s['events']} events"] if "events" in s else []
    cover = ", ".join(f"{m} {c}" for m, c in s.get("coverage", {}).items())
    summary = (
        f"data={name}: {', '.join(head) or 'no patients read'}; modalities: "
        f"{', '.join(s.get('modalities', [])) or 'none'}" + (f"; coverage: {cover}" if cover else "")
    )
    lines.append(("OK " if result.ok else "") + summary)
    return lines


def main(argv: list[str] | None = None) -> int:
    """`survlab check <hydra overrides>` -> 0 clean, 1 problems (or a bad config: one line, no traceback)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        print(__doc__)
        return 0
    from survlab.config.search_path import searchpath_overrides, split_config_dirs
    from survlab.utils.jobs import error_line

    try:
        config_dirs, overrides = split_config_dirs(args)
        info: dict[str, Any] = {}
        dm = compose_data([*overrides, *searchpath_overrides(config_dirs)], info)
        if dm.synthetic is not None or dm.public is not None:
            dm.prepare_data()  # a cohort survlab generates: materialise it (cached) before checking
        from survlab.data.audit import audit_cohort

        result = audit_cohort(dm, _Progress(), info.get("selection", "best_val"))
    except Exception as exc:  # noqa: BLE001 - a bad config / override: one line on the console, like survlab.run
        print(f"survlab check: error: {error_line(exc)}", file=sys.stderr)
        return 1
    print("\n".join(render(result, dm.name)))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
