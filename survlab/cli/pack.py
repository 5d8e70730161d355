"""Build (or check) a cohort's packed feature store once, before a sweep: `survlab pack data=<cohort>`.

    survlab pack data=tcga_luad                      # build / reuse <paths.log_dir>/packed/tcga_luad/...
    survlab pack data=tcga_luad --verify             # + re-read every source file, compare bit for bit
    survlab pack data=tcga_luad data.wsi.packed_dir=/scratch/packed/luad

Then train with `data.wsi.packed=true` (same packed_dir): every job of the sweep reads the one file. A job also
builds the store itself when it is missing or stale, so this command is an optimisation, not a requirement.
Every scale of a multi-scale cohort (`data.wsi.scales`) gets its own store.
"""

from __future__ import annotations

import sys
import time

from survlab.config.search_path import PACKAGE_CONF_DIR as CONF_DIR  # noqa: E402


def pack(overrides: list[str], verify: bool = False) -> list[dict[str, object]]:
    """Compose `config` with `overrides`, set the data module up with `wsi.packed=true`, return one summary per
    store (folder, slides, patches, GB, and the slides that differ from their source when `verify`)."""
    import hydra
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from survlab.data.modalities.packed import verify as verify_store

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(
                "config", overrides=[*overrides, "++data.wsi.packed=true"], return_hydra_config=True
            )
        HydraConfig.instance().set_config(cfg)
        scales = bool((cfg.data.get("wsi") or {}).get("scales"))
        dm = hydra.utils.instantiate(
            cfg.data, modalities=("scales",) if scales else ("wsi",), _recursive_=False
        )
        start = time.perf_counter()
        dm.prepare_data()
        dm.setup("fit")
        stores = [dm.datasets["train"].sources.wsi, *(dm.datasets["train"].sources.scales or {}).values()]
        out = []
        for st in [s for s in stores if s is not None]:
            p = st.packed
            row: dict[str, object] = {
                "folder": str(p.folder),
                "slides": len(p.slides),
                "patches": p.total,
                "gb": round(p.nbytes / 1e9, 3),
                "dtype": p.dtype,
                "seconds": round(time.perf_counter() - start, 1),
            }
            if verify:
                row["differ"] = verify_store(p, st.read_slide)
            out.append(row)
        return out
    finally:
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None


def main(argv: list[str] | None = None) -> int:
    """`survlab pack <hydra overrides> [--verify]`; one-line errors, exit 1 on a difference."""
    from survlab.utils.jobs import error_line

    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        print(__doc__)
        return 0
    verify = "--verify" in args
    try:
        from survlab.config.search_path import searchpath_overrides, split_config_dirs

        config_dirs, overrides = split_config_dirs([a for a in args if a != "--verify"])
        rows = pack([*overrides, *searchpath_overrides(config_dirs)], verify)
    except Exception as exc:  # noqa: BLE001 - one line on the console, like survlab.run
        print(f"survlab: error: {error_line(exc)}", file=sys.stderr)
        return 1
    bad = 0
    for r in rows:
        line = f"{r['folder']}: {r['slides']} slides, {r['patches']} patches, {r['gb']} GB {r['dtype']}"
        if verify:
            differ = r["differ"]
            bad += len(differ)
            line += f"; verify: {'all bags equal their source' if not differ else f'{len(differ)} differ, e.g. {differ[0]}'}"
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
