"""glibc malloc reuse (survlab/utils/malloc.py): batch-sized blocks come from the heap (kept and reused after free)
instead of a fresh mmap per block (unmapped on free, page-faulted again by the next batch)."""

from __future__ import annotations

import sys

import pytest

from survlab.utils.malloc import reuse_freed_buffers
from tests.helpers.proc import run_group

# Allocate a 64 MB tensor and print glibc's mallinfo2: bytes in mmapped blocks (hblkhd).
_PROBE = """
import ctypes, sys, torch
from survlab.utils.malloc import reuse_freed_buffers
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
if sys.argv[1] == "1":
    assert reuse_freed_buffers()
x = torch.empty(16 * 1024 * 1024)
print(libc.mallinfo2().hblkhd)
"""


def _mmapped_bytes(reuse: bool) -> int:
    out = run_group(
        [sys.executable, "-c", _PROBE, "1" if reuse else "0"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return int(out.stdout.split()[-1])


@pytest.mark.slow  # end-to-end: a training run / CLI subprocess (make test-e2e)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt / mallinfo2")
def test_batch_sized_blocks_come_from_the_heap() -> None:
    mb64 = 64 * 1024 * 1024
    assert _mmapped_bytes(False) >= mb64  # default glibc: a fresh mmap, unmapped again on free
    assert _mmapped_bytes(True) < mb64 // 4  # reuse on: from the heap, kept for the next batch


def test_limit_must_fit_a_c_int() -> None:
    with pytest.raises(ValueError, match="limit_bytes must be in"):
        reuse_freed_buffers(2**31)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_reuse_is_the_default_and_zero_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from survlab.utils.malloc import ENV, reuse_from_env

    monkeypatch.delenv(ENV, raising=False)
    assert reuse_from_env()
    monkeypatch.setenv(ENV, "0")
    assert not reuse_from_env()
