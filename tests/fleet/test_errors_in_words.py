"""A server that cannot start, or is not an MCP server, is described in words, with its stderr."""

from __future__ import annotations

import sys

import anyio
import pytest

from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.spec import ServerSpec

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_a_program_that_is_not_an_mcp_server_is_named_as_such_with_its_stderr() -> None:
    script = "import sys; print('hello'); sys.stderr.write('usage: not-mcp FILE\\n'); sys.exit(2)"
    spec = ServerSpec(name="notmcp", command=sys.executable, args=["-c", script], start_timeout_s=10.0)
    async with Fleet([spec]) as fleet:
        unit = fleet.unit("notmcp")
        with anyio.fail_after(20):
            await unit.first_start.wait()
        assert unit.stats.last_error in {
            "session failed: the server closed the connection before answering (it exited, or it is not "
            "an MCP server); its stderr ends: usage: not-mcp FILE",
            "start failed: the server closed the connection before answering (it exited, or it is not "
            "an MCP server); its stderr ends: usage: not-mcp FILE",
        }


async def test_a_command_that_does_not_exist_says_so() -> None:
    spec = ServerSpec(name="missing", command="/nonexistent/cmd")
    async with Fleet([spec]) as fleet:
        unit = fleet.unit("missing")
        with anyio.fail_after(20):
            await unit.first_start.wait()
        assert unit.stats.last_error == "start failed: /nonexistent/cmd: no such file or command"
