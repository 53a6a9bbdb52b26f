"""Stopping a sandboxed server the way the fleet does: the whole process group, or bwrap alone.

The fleet starts the plan in a new session (bwrap is the group leader) and
signals the group; the sandbox must keep every server process in that group
(no ``--new-session``), and must also die when bwrap alone is killed (the
fleet's parent-death signal reaches only bwrap).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any

import pytest

pytestmark = pytest.mark.external

#: A forked server and its child are up well within this on an idle machine; 20 s means broken.
SETTLE_TIMEOUT_S = 20.0

FORKING_SERVER = "import os, sys, time\nif os.fork():\n    print('ready', flush=True)\ntime.sleep(120)\n"


def _start(shape: Any, layout: Any) -> subprocess.Popen[str]:
    plan = shape.sandbox(layout.profile()).wrap(shape.python, ["-c", FORKING_SERVER])
    proc = subprocess.Popen(**shape.popen_args(plan), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline() != "ready\n":
        proc.kill()
        proc.communicate()
        pytest.fail(f"the sandboxed server did not start (exit {proc.returncode})")
    return proc


def _wait_gone(pids: set[int], alive: Any) -> set[int]:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.02)  # polling another process tree: there is no event to wait on
    return set(alive(pids))


@pytest.mark.parametrize("how", ["group SIGTERM", "bwrap SIGKILL"])
def test_stopping_kills_every_sandboxed_process(
    shape: Any, layout: Any, how: str, group_of: Any, alive: Any
) -> None:
    with _start(shape, layout) as proc:
        members = group_of(proc.pid)
        # bwrap, its init in the pid namespace, the server and the server's child
        assert len(members) == 4, members
        if how == "group SIGTERM":
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.kill()
        proc.wait(timeout=SETTLE_TIMEOUT_S)
        assert _wait_gone(members, alive) == set()
