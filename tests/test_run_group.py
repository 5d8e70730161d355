"""tests/helpers/proc.run_group: a timeout ends the child and the grandchild that holds its pipes (plain
subprocess.run would wait for the grandchild for ever); a finished command leaves no process behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.proc import run_group

# the child starts a grandchild that writes its pid and sleeps far past the timeout; with `wait` the grandchild
# holds the child's stdout/stderr and the child waits for it, with `exit` the child exits at once
_PARENT = """
import os, subprocess, sys, time
wait = sys.argv[2] == "wait"
quiet = {} if wait else {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
g = subprocess.Popen([sys.executable, "-c", "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(600)", sys.argv[1]], **quiet)
while not wait and not (os.path.exists(sys.argv[1]) and open(sys.argv[1]).read()):
    time.sleep(0.05)
print("started", flush=True)
if wait:
    g.wait()
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a killed child not yet reaped by its (dead) parent is a zombie
        return f.read().split(") ", 1)[1][0] != "Z"


def _wait_for(path: Path) -> int:
    for _ in range(200):
        if path.is_file() and path.read_text():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"{path} not written")


def test_a_timeout_kills_the_grandchild_that_holds_the_pipes(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    start = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as err:
        run_group(
            [sys.executable, "-c", _PARENT, str(pid_file), "wait"], timeout=3, capture_output=True, text=True
        )
    assert time.monotonic() - start < 30
    assert "started" in err.value.output
    pid = _wait_for(pid_file)
    time.sleep(0.2)
    assert not _alive(pid)


def test_a_finished_command_returns_its_output_and_its_leftover_process_is_ended(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    proc = run_group(
        [sys.executable, "-c", _PARENT, str(pid_file), "exit"], timeout=60, capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout == "started\n"
    pid = _wait_for(pid_file)
    time.sleep(0.2)
    assert not _alive(pid)


def test_check_raises_with_the_exit_code() -> None:
    with pytest.raises(subprocess.CalledProcessError) as err:
        run_group([sys.executable, "-c", "import sys; sys.exit(3)"], timeout=60, check=True)
    assert err.value.returncode == 3
