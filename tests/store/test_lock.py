"""One gateway per state directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vsm_mcp.errors import StateError
from vsm_mcp.store.lock import LOCK_FILE, gateway_lock


def test_a_second_gateway_on_the_same_state_dir_is_refused_naming_the_first(tmp_path: Path) -> None:
    with gateway_lock(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        assert (tmp_path / LOCK_FILE).stat().st_mode & 0o777 == 0o600
        # Another process (a lock is per open file: a second process is the real case).
        probe = (
            "import sys; from pathlib import Path; from vsm_mcp.store.lock import gateway_lock\n"
            "try:\n    gateway_lock(Path(sys.argv[1])).__enter__()\n"
            "except Exception as exc:\n    print(exc)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert out == (
            f"another vsm-mcp gateway (pid {os.getpid()}) already runs on state dir {tmp_path}: stop it, "
            "or point this one at another --state-dir; a client can connect to the running one over HTTP "
            "(vsm-mcp up prints its URL)"
        )
    with gateway_lock(tmp_path):  # released on leaving: the next one gets it
        pass


def test_a_lock_left_by_a_dead_gateway_does_not_block(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_text("999999\n")  # a file without a live holder
    with gateway_lock(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"


def test_the_same_process_cannot_take_it_twice(tmp_path: Path) -> None:
    with (
        gateway_lock(tmp_path),
        pytest.raises(StateError, match="already runs on state dir"),
        gateway_lock(tmp_path),
    ):
        pass
