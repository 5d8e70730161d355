"""glibc malloc tuning for CPU training: reuse freed batch buffers instead of mapping fresh pages for every batch.

A padded batch of WSI bags is tens of MB ([8, 2,500, 1,024] fp32 = 82 MB; its bf16 copy under autocast 41 MB). glibc
serves every block above its mmap threshold (dynamic, at most 32 MB) with a fresh `mmap` and unmaps it on free, so
every batch pays one page fault per 4 KB page it touches (~30k faults for the tensor above) — on a 2-core CPU that
is as much time as the matmuls, and it varies from pass to pass (experiments/speed/README.md, "bf16 evaluation").
Raising the mmap and trim thresholds keeps freed blocks in the heap for the next batch. Host memory then stays at
its peak (the largest batch, bounded by the config) instead of shrinking between batches.

On by default for `survlab.run` and `survlab.bench` (measured faster everywhere: +13% training / +30% evaluation at
2,500 patches per patient, +28% / +74% at TCGA scale, 10k patches; experiments/speed); `SURVLAB_MALLOC_REUSE=0`
(`--no-malloc-reuse` for the bench) keeps glibc's defaults. The same as glibc's environment variables
`MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824`. Predictions do not change (only where memory
comes from). No effect (returns False) off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>
ENV = "SURVLAB_MALLOC_REUSE"


def reuse_freed_buffers(limit_bytes: int = 1 << 30) -> bool:
    """Keep freed blocks below `limit_bytes` in the heap (glibc mallopt); True when glibc accepted both settings."""
    if not 0 < limit_bytes < 2**31:
        raise ValueError(f"limit_bytes must be in (0, 2**31) (a C int), got {limit_bytes}")
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, limit_bytes)) and bool(mallopt(M_TRIM_THRESHOLD, limit_bytes))


def release_free_memory() -> bool:
    """Return the heap's free blocks to the system now (glibc malloc_trim): with reuse on, memory an earlier job of
    the same process freed (e.g. its RAM cache, in an in-process sweep) would otherwise still count as used."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return bool(trim(0))


def reuse_from_env() -> bool:
    """`reuse_freed_buffers()` unless the environment sets SURVLAB_MALLOC_REUSE=0 (then False, nothing changed)."""
    return os.environ.get(ENV, "1") != "0" and reuse_freed_buffers()


__all__ = ["ENV", "release_free_memory", "reuse_freed_buffers", "reuse_from_env"]
