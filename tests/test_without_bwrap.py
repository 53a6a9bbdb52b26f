"""A machine where bubblewrap is missing, as a fresh one is before `scripts/install`: every path says why.

Subprocess tests of the real CLI with a PATH that has the util-linux tools the
sandbox needs and no bwrap: `servers add` + `serve --stdio` either serve the
tool or say exactly why not (never "0 tools" and "Unknown tool"), `doctor`
fails naming bubblewrap, and `acquire` (whose installs require a sandbox)
refuses before installing anything.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PROBE = Path(__file__).resolve().parent / "fixtures" / "servers" / "probe_server.py"
CLI = [sys.executable, "-c", "from vsm_mcp.cli.app import main; main()"]
#: The gateway's start plus its servers' first start (refused at once, or a python start).
READY_TIMEOUT_S = 60.0


@pytest.fixture
def no_bwrap_path(tmp_path: Path) -> Iterator[str]:
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("prlimit", "setpriv", "true"):
        found = shutil.which(name)
        assert found is not None, f"{name} is needed"
        (tools / name).symlink_to(found)
    yield str(tools)


def _vsm(state: Path, path: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path}
    return subprocess.run(
        [*CLI, "--state-dir", str(state), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _closed_dir(executable: str) -> Path | None:
    real = Path(os.path.realpath(executable))
    return next((p for p in reversed(real.parents) if p.stat().st_mode & 0o001 == 0), None)


async def test_servers_add_then_serve_stdio_serves_or_says_exactly_why(
    tmp_path: Path, no_bwrap_path: str
) -> None:
    state = tmp_path / "state"
    added = await anyio.to_thread.run_sync(
        lambda: _vsm(state, no_bwrap_path, "servers", "add", "probe", "--", sys.executable, str(PROBE))
    )
    assert added.returncode == 0, added.stderr
    params = StdioServerParameters(
        command=CLI[0],
        args=[*CLI[1:], "--state-dir", str(state), "serve", "--stdio"],
        env={**os.environ, "PATH": no_bwrap_path},
    )
    with anyio.fail_after(READY_TIMEOUT_S):
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            names = [t.name for t in (await session.list_tools()).tools]
            closed = _closed_dir(sys.executable)
            if os.geteuid() != 0 or closed is None:
                # An ordinary gateway runs it unsandboxed as itself (limits, scrubbed env), flagged.
                assert "probe__echo" in names or any(n.startswith("probe__") for n in names)
                return
            assert not any(n.startswith("probe__") for n in names)
            with pytest.raises(MCPError) as info:
                await session.call_tool("probe__echo", {"text": "hi"})
    message = str(info.value)
    assert message.startswith(
        f"Tool 'probe__echo' is not available: server 'probe' is failed: cannot run {sys.executable} "
        "unsandboxed as uid "
    )
    assert (
        f": {closed} (mode " in message
        and "is closed to it; install bubblewrap (apt-get install bubblewrap)" in message
    )


async def test_doctor_fails_naming_bubblewrap_and_acquire_refuses_before_installing(
    tmp_path: Path, no_bwrap_path: str
) -> None:
    state = tmp_path / "state"
    doctor = await anyio.to_thread.run_sync(lambda: _vsm(state, no_bwrap_path, "doctor", "--json"))
    assert doctor.returncode == 1
    checks = {c["name"]: c for c in json.loads(doctor.stdout)}
    assert checks["bubblewrap"]["verdict"] == "fail"
    assert checks["bubblewrap"]["detail"] == (
        'bwrap not found: stdio servers would run UNSANDBOXED ([sandbox] mode = "prefer")'
    )
    assert checks["bubblewrap"]["fix"] == "apt-get install bubblewrap"
    acquired = await anyio.to_thread.run_sync(
        lambda: _vsm(state, no_bwrap_path, "acquire", "--package", "pypi:mcp-server-time@2026.10.19", "--yes")
    )
    assert acquired.returncode == 1
    assert (
        acquired.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "installs run in a sandbox ([acquisition] sandbox = 'require') and bubblewrap is unusable here "
            "(bwrap not found (apt-get install bubblewrap)): apt-get install bubblewrap (rolled back)"
        )
    ), acquired.stderr
    assert not (state / "servers" / "mcp-server-time").exists()
