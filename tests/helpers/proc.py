"""`run_group`: subprocess.run for the tests, in a session of its own so that a timeout ends the whole process tree.

subprocess.run(timeout=...) kills only the direct child and then waits for its pipes to close; a grandchild that
holds them (a DDP rank the Lightning launcher started, a pipeline stage) keeps the test waiting for ever. Here
the command starts a new session and a timeout kills every process of it, so the test fails after `timeout`
seconds with the output so far.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from typing import Any


def run_group(
    cmd: Sequence[str],
    *,
    timeout: float,
    capture_output: bool = False,
    text: bool = False,
    check: bool = False,
    **kwargs: Any,
) -> subprocess.CompletedProcess:
    """subprocess.run(cmd, timeout=..., capture_output=..., text=..., check=..., **kwargs) with a timeout required; on a
    timeout kill the command's process group (the child and everything it started) and raise TimeoutExpired."""
    if capture_output:
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
    with subprocess.Popen(list(cmd), text=text, start_new_session=True, **kwargs) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(proc.args, timeout, output=out, stderr=err) from None
        except BaseException:
            _kill_group(proc.pid)
            raise
        finally:
            _kill_group(proc.pid)  # leftovers of a finished command (a rank that outlived rank 0)
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, proc.args, output=out, stderr=err)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
