"""Faults as a client of the gateway sees them: a killed server, a hung one, a cancelled call."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.gateway import Gateway

from .conftest import Connect

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@asynccontextmanager
async def gateway_over(spec: ServerSpec, connect: Connect) -> AsyncIterator[tuple[Fleet, Client]]:
    """The gateway over ``spec``, on the face under test (both faces give the same answers;
    on the stdio face the test's first tool call took the express lane)."""
    async with Fleet([spec]) as fleet:
        with anyio.fail_after(20):
            await fleet.wait_ready(spec.name)
        gateway = Gateway(fleet)
        async with connect(gateway) as client:
            yield fleet, client
            relay = gateway.express
            assert relay is None or relay.relayed >= 1


def _text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


async def test_a_killed_server_is_a_clear_error_within_2s_and_serves_within_5s(
    probe_spec: Callable[..., ServerSpec], connect: Connect
) -> None:
    async with gateway_over(probe_spec("p"), connect) as (fleet, client):
        pid = fleet.unit("p").pid
        assert pid is not None
        errors: list[tuple[MCPError, float]] = []

        async def call() -> None:
            try:
                await client.call_tool("p__sleep", {"seconds": 30})
            except MCPError as exc:
                errors.append((exc, time.monotonic()))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await anyio.sleep(0.3)
            killed = time.monotonic()
            os.kill(pid, signal.SIGKILL)
        error, at = errors[0]
        assert at - killed < 2.0
        assert error.code == types.INTERNAL_ERROR
        assert (
            error.message
            == "server 'p' went away during tools/call (connection closed); it is being restarted"
        )
        assert error.data == {"server": "p"}
        with anyio.fail_after(5):
            again = await client.call_tool("p__pid", {})
        assert time.monotonic() - killed < 5.0
        assert _text(again) != str(pid)


async def test_a_hung_server_is_a_timeout_error_and_is_restarted(
    probe_spec: Callable[..., ServerSpec], connect: Connect
) -> None:
    async with gateway_over(probe_spec("p", idle_timeout_s=1.0, call_timeout_s=3.0), connect) as (
        fleet,
        client,
    ):
        pid = fleet.unit("p").pid
        with pytest.raises(MCPError) as info:
            await client.call_tool("p__hang", {})
        assert info.value.code == types.REQUEST_TIMEOUT
        assert info.value.message == "server 'p' did not answer tools/call (1s without progress)"
        with anyio.fail_after(15):
            again = await client.call_tool("p__pid", {})
        assert _text(again) != str(pid)
        assert fleet.unit("p").stats.restarts == 1


async def test_cancellation_reaches_the_server(
    probe_spec: Callable[..., ServerSpec], connect: Connect
) -> None:
    async with gateway_over(probe_spec("p"), connect) as (fleet, client):
        with anyio.move_on_after(0.5):
            await client.call_tool("p__sleep", {"seconds": 30})
        unit = fleet.unit("p")
        with anyio.fail_after(5):
            while "sleep 30.0 cancelled" not in unit.stderr:  # noqa: ASYNC110 - the server only says so on stderr
                await anyio.sleep(0.02)
        assert _text(await client.call_tool("p__echo", {"text": "still here"})) == "still here"
        assert unit.stats.restarts == 0


async def test_garbage_on_stdout_does_not_break_the_session(
    probe_spec: Callable[..., ServerSpec], connect: Connect
) -> None:
    async with gateway_over(probe_spec("p", "--garbage"), connect) as (fleet, client):
        for i in range(5):
            assert _text(await client.call_tool("p__echo", {"text": str(i)})) == str(i)
        unit: Any = fleet.unit("p")
        assert unit.garbage_lines == 6  # one before the handshake, one per echo
        assert unit.stats.restarts == 0


async def test_a_read_only_call_is_retried_up_to_the_units_budget(
    probe_spec: Callable[..., ServerSpec], connect: Connect
) -> None:
    # `crash` is annotated read-only and SIGKILLs its server on every call: each face makes
    # 1 + retries (2) attempts, then answers with the unit's error; no face makes more.
    spec = probe_spec("p", crash_loop_restarts=10)
    async with gateway_over(spec, connect) as (fleet, client):
        unit = fleet.unit("p")
        with anyio.fail_after(30), pytest.raises(MCPError) as info:
            await client.call_tool("p__crash", {})
        assert info.value.code == types.INTERNAL_ERROR
        assert info.value.message == (
            "server 'p' went away during tools/call (connection closed); it is being restarted"
        )
        assert (unit.stats.calls, unit.stats.retries, unit.stats.errors) == (3, 2, 3)
        with anyio.fail_after(10):
            assert _text(await client.call_tool("p__echo", {"text": "back"})) == "back"
