"""The fleet's own spawn runs a sandboxed server from a plan, unchanged: argv, env, cwd in a ServerSpec.

This is how `vsm_mcp.fleet.process.spawn` plugs in the sandbox: the plan's
argv becomes the spec's command and args. Leaving `spawn` stops the process
group, and no sandboxed process survives.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession

from vsm_mcp.fleet.process import spawn
from vsm_mcp.fleet.spec import ServerSpec

pytestmark = [pytest.mark.anyio, pytest.mark.external, pytest.mark.slow]

SERVER = Path(__file__).resolve().parents[1] / "fixtures" / "escape" / "sandboxed_server.py"
#: Handshake and one call through bwrap on a busy CI box.
SESSION_TIMEOUT_S = 60.0
#: The fleet's stop is bounded (stdin close, SIGTERM, SIGKILL): a few seconds at most.
GONE_TIMEOUT_S = 10.0


async def test_fleet_spawn_runs_the_plan_and_stops_the_whole_sandbox(
    native: Any, layout: Any, group_of: Any, alive: Any
) -> None:
    plan = native.sandbox(layout.profile()).wrap(sys.executable, [str(SERVER)])
    spec = ServerSpec(
        name="sandboxed", command=plan.argv[0], args=list(plan.argv[1:]), env=dict(plan.env), cwd=plan.cwd
    )
    with anyio.fail_after(SESSION_TIMEOUT_S):
        async with spawn(spec) as (read, write, child), ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool("write", {"path": str(layout.prefix / "evil")})
            assert result.structured_content == {"result": "EROFS"}  # its install tree is read-only
            members = group_of(child.pid)
            assert len(members) == 3  # bwrap, its init, the server
    deadline = time.monotonic() + GONE_TIMEOUT_S
    while alive(members) and time.monotonic() < deadline:  # noqa: ASYNC110
        await anyio.sleep(0.02)  # polling another process tree: there is no event to wait on
    assert alive(members) == set()
