"""A run's console: survlab's per-epoch lines, the progress bar, warnings that need action and the result.

`quiet_console()` (called by the commands that train or score: `survlab train`, `survlab eval`) keeps the rest off
the terminal:

- Lightning's and Fabric's INFO lines (accelerator banners, tips, "Seed set to", "Restoring states from ...",
  "`Trainer.fit` stopped"): their loggers are set to WARNING (the run's protocol.json records the accelerator, the
  seed and the selected checkpoint);
- W&B's own terminal lines (`wandb: ...`, ~35 per run): `WANDB_SILENT=true` unless set; survlab prints one line
  saying where the offline run is and how to upload it (`offline_run_line`);
- warnings that ask nothing of the user: Lightning's `LeafSpec` deprecation (a torch / Lightning version pairing)
  and "the number of training batches is smaller than the logging interval" (survlab logs once per epoch).

`SURVLAB_VERBOSE=1` keeps everything (for debugging the libraries themselves).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

#: warnings that need no action from a survlab user (regular expressions on the message)
IGNORED_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)",
    r"The number of training batches \(\d+\) is smaller than the logging interval",
)
#: library loggers whose INFO lines are banners / tips, not results. Importing Lightning sets `lightning.pytorch` /
#: `lightning.fabric` back to INFO, so the loggers that emit the lines (which Lightning never sets) are listed too:
#: quiet_console() works before or after Lightning is imported
QUIET_LOGGERS = (
    "lightning.pytorch",
    "lightning.fabric",
    "lightning.pytorch.utilities.rank_zero",  # GPU/TPU available, tips, `Trainer.fit` stopped, Restoring states
    "lightning.fabric.utilities.rank_zero",
    "lightning.fabric.utilities.seed",  # Seed set to 0
    "lightning.fabric.utilities.distributed",
    "lightning.pytorch.accelerators.cuda",  # LOCAL_RANK: 0 - CUDA_VISIBLE_DEVICES
    "lightning.pytorch.trainer.connectors.checkpoint_connector",
)


def quiet_console() -> bool:
    """Keep library chatter off the console (see module doc); False (nothing changed) when SURVLAB_VERBOSE=1."""
    if os.environ.get("SURVLAB_VERBOSE") == "1":
        return False
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    os.environ.setdefault("WANDB_SILENT", "true")
    return True


def offline_run_line(run_dir: str | os.PathLike | None) -> str | None:
    """'W&B offline run: <dir> (upload: wandb sync <dir>)' for a W&B run written offline, else None."""
    if not run_dir:
        return None
    path = Path(run_dir)
    if path.name == "files":  # wandb's run.dir is <offline-run-*>/files
        path = path.parent
    if not path.name.startswith("offline-run-"):
        return None
    return f"W&B offline run: {path} (upload: wandb sync {path})"
