"""`survlab eval run=<run dir> [data=<cohort>] [out=<dir>] ...`: a trained run applied to a cohort (its own test fold
again, external validation, or predictions only); `survlab eval run=<sweep dir> data=<cohort>`: every fold of one
model x cohort and their ensemble. survlab/runner/evaluate.py does the work."""

from __future__ import annotations

import logging
import os
import sys

from survlab.runner import evaluate as runner_evaluate
from survlab.runner.evaluate import USAGE, evaluate

log = logging.getLogger("survlab.evaluate")


def main(argv: list[str] | None = None) -> int:
    """`survlab eval run=<run or sweep dir> [data=<cohort>] [out=<dir>] ...` -> exit status; errors as one line."""
    from survlab.utils import jobs

    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print((runner_evaluate.__doc__ or "").strip() + "\n\n" + USAGE)
        return 0 if argv else 2
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    from survlab.utils.quiet import quiet_console

    quiet_console()  # survlab's lines and the result, not Lightning's banners (they printed twice)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        evaluate(argv)
    except Exception as exc:
        if os.environ.get("SURVLAB_TRACEBACK") == "1":
            raise
        log.debug("evaluate error", exc_info=exc)
        print(f"survlab: error: {jobs.error_line(exc)}", file=sys.stderr)
        return 1
    return 0
