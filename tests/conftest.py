"""Shared test configuration: anyio runs on asyncio; the probe MCP server and process inspection
for fleet, gateway and runtime tests (fixtures `probe_spec` and `procs`)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vsm_mcp.fleet.spec import ServerSpec

PROBE = Path(__file__).resolve().parent / "fixtures" / "servers" / "probe_server.py"


def probe_spec(name: str = "probe", *flags: str, **overrides: Any) -> ServerSpec:
    """A spec that runs the probe server with fast supervision settings."""
    settings: dict[str, Any] = {
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "ping_interval_s": 0.5,
        "ping_timeout_s": 1.0,
        "start_timeout_s": 20.0,
    }
    settings.update(overrides)
    return ServerSpec(name=name, command=sys.executable, args=[str(PROBE), *flags], **settings)


def process_state(pid: int) -> str | None:
    """The kernel's state letter for ``pid`` (``Z`` for a zombie), None when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    """True when ``pid`` runs (a zombie does not count)."""
    state = process_state(pid)
    return state is not None and state != "Z"


def my_zombies() -> list[int]:
    """Zombie children of this test process."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z" and int(fields[1]) == me:
            found.append(int(entry.name))
    return found


class Procs:
    """Process inspection for tests, as a fixture (tests cannot import each other)."""

    state = staticmethod(process_state)
    alive = staticmethod(alive)
    my_zombies = staticmethod(my_zombies)


@pytest.fixture
def procs() -> Procs:
    return Procs()


@pytest.fixture(name="probe_spec")
def probe_spec_fixture() -> Callable[..., ServerSpec]:
    return probe_spec


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(name="free_port")
def free_port_fixture() -> Callable[[], int]:
    return free_port


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def test_servers() -> Path:
    """The pinned third-party test servers (server-everything, mcp-server-time), installed once."""
    root = Path(__file__).resolve().parents[1]
    cache = Path(os.environ.get("VSM_MCP_TEST_SERVERS", root / ".tools" / "test-servers"))
    everything = cache / "npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
    time_server = cache / "time-venv/bin/mcp-server-time"
    if not (everything.exists() and time_server.exists()):
        if shutil.which("npm") is None or shutil.which("node") is None:
            pytest.skip("node/npm are not installed: cannot install @modelcontextprotocol/server-everything")
        subprocess.run(
            [str(root / "scripts/install-test-servers.sh"), "--no-fastmcp"], check=True, timeout=900
        )
    return cache
