"""One gateway per state directory: an exclusive lock held for the gateway's life.

Two gateways on one state dir would run two full fleets (every server twice),
fight over the live status and acquire twice. `GatewayLock` takes an
exclusive ``flock`` on ``<state>/gateway.lock`` (released by the kernel when
the process dies, even by SIGKILL, so a stale file never blocks) and writes
the holder's pid into it, so a refused second gateway can name the first.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from vsm_mcp.errors import StateError

#: The lock file's name in the state directory.
LOCK_FILE = "gateway.lock"


@contextlib.contextmanager
def gateway_lock(state_dir: Path) -> Iterator[None]:
    """Hold the state directory's gateway lock while the block runs.

    Raises:
        StateError: another live gateway holds it (its pid is named).
    """
    path = state_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise StateError(
                f"another vsm-mcp gateway (pid {holder}) already runs on state dir {state_dir}: stop it, "
                f"or point this one at another --state-dir; a client can connect to the running one "
                f"over HTTP (vsm-mcp up prints its URL)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def holder(state_dir: Path) -> int | None:
    """The pid of the gateway holding the state directory's lock now, None when none does."""
    path = state_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
