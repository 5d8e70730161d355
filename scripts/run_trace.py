"""Trace one training job in-process: which survlab modules it runs code in, the calls that cross from one module
to another, how often the network runs forward, and the wall time. For the architecture issue's before/after.

    PYTHONPATH=<checkout> python scripts/run_trace.py --out /tmp/trace.json [override ...]

Counted from `sys.setprofile` (Python-level calls only):
- modules: survlab modules whose functions ran;
- edges: distinct (caller module -> callee module) pairs between two survlab modules ("module hops");
- reach_backs: distinct edges from tasks/ or report/ (eval/, runner/report before the reorganisation) into data/:
  the task or a writer reaching back into the data module for fitted state instead of receiving it;
- forward_calls: calls of a `forward` defined under survlab/models/ by something outside survlab/models/ (one per
  batch the network runs on; the sub-modules' forwards are not counted), and by the calling survlab module.
The default job: model=abmil on a 40-patient synthetic cohort, 2 epochs, CPU, attention export on (the default).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

DEFAULT = [
    "model=abmil",
    "data=synthetic",
    "debug=tiny",
    "data.synthetic.n_patients=40",
    "data.synthetic.feature_dim=8",
    "data.wsi.feature_dim=8",
    "data.synthetic.n_genes=60",
    "data.synthetic.n_pathways=8",
    "data.synthetic.patches_per_slide=[6,20]",
    "trainer.max_epochs=2",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--root", default="/tmp/run_trace")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    import survlab

    pkg = str(Path(survlab.__file__).resolve().parent)
    root = Path(args.root)
    overrides = [*(args.overrides or DEFAULT), f"paths.root_dir={root}", f"hydra.run.dir={root / 'run'}"]
    os.environ.setdefault("WANDB_MODE", "disabled")

    modules: dict[str, int] = {}
    edges: dict[tuple[str, str], int] = {}
    forward: dict[str, int] = {}
    cache: dict[str, str | None] = {}

    def mod_of(filename: str) -> str | None:
        if filename not in cache:
            path = os.path.realpath(filename)
            cache[filename] = (
                "survlab." + os.path.relpath(path, pkg)[:-3].replace(os.sep, ".").removesuffix(".__init__")
                if path.startswith(pkg + os.sep) and path.endswith(".py")
                else None
            )
        return cache[filename]

    def prof(frame, event, arg):  # type: ignore[no-untyped-def]
        if event != "call":
            return
        callee = mod_of(frame.f_code.co_filename)
        if callee is None:
            return
        modules.setdefault(callee, len(modules))
        back = frame.f_back
        caller = None
        while (
            back is not None and caller is None
        ):  # the nearest survlab frame below (through torch / Lightning)
            caller = mod_of(back.f_code.co_filename)
            back = back.f_back
        if (
            frame.f_code.co_name == "forward"
            and callee.startswith("survlab.models.")
            and not (caller or "").startswith("survlab.models.")
        ):
            forward[str(caller)] = forward.get(str(caller), 0) + 1
        if caller is not None and caller != callee:
            edges[(caller, callee)] = edges.get((caller, callee), 0) + 1

    sys.argv = ["survlab.run", *overrides]
    import runpy

    started = time.time()
    sys.setprofile(prof)
    try:
        runpy.run_module("survlab.run", run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        sys.setprofile(None)
    wall = time.time() - started
    writers = (
        "survlab.tasks",
        "survlab.report",
        "survlab.eval",
        "survlab.runner.report",
        "survlab.runner.km_report",
    )
    reach = sorted(f"{a} -> {b}" for a, b in edges if a.startswith(writers) and b.startswith("survlab.data"))
    result = {
        "overrides": overrides,
        "modules": len(modules),
        "edges": len(edges),
        "reach_backs": len(reach),
        "reach_back_list": reach,
        "forward_calls": sum(forward.values()),
        "forward_calls_by_caller": forward,
        "wall_s_profiled": round(wall, 1),
        "module_list": sorted(modules),
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if not k.endswith("_list")}, indent=1))


if __name__ == "__main__":
    main()
