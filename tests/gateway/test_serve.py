"""`vsm-mcp serve` as a real process: HTTP and stdio faces, runtime changes, signals, children."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import mcp_types as types
import pytest
from anyio.streams.text import TextReceiveStream
from mcp import Client, StdioServerParameters

from vsm_mcp.fleet.registry import FleetRegistry
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.gateway.bearer import bearer_client
from vsm_mcp.gateway.tokens import AdminTokenFile
from vsm_mcp.store import SqliteStore

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

#: The gateway and a Python MCP server both have to start: generous on a shared 2-core machine.
START_TIMEOUT_S = 40.0


def _config(state: Path, specs: dict[str, ServerSpec]) -> None:
    lines = []
    for name, spec in specs.items():
        lines.append(f"[servers.{name}]")
        lines.append(f"command = {json.dumps(spec.command)}")
        lines.append(f"args = {json.dumps(spec.args)}")
        lines.append("ping_interval_s = 0.5")
        lines.append("backoff_initial_s = 0.05")
    state.mkdir(parents=True, exist_ok=True)
    (state / "config.toml").write_text("\n".join(lines) + "\n")


def _env(state: Path) -> dict[str, str]:
    return {**os.environ, "VSM_MCP_STATE_DIR": str(state)}


@asynccontextmanager
async def http_gateway(state: Path) -> AsyncIterator[tuple[anyio.abc.Process, str]]:
    process = await anyio.open_process(
        [sys.executable, "-m", "vsm_mcp.cli.serve", "--http", "127.0.0.1:0"],
        env=_env(state),
        stdout=None,
    )
    try:
        assert process.stderr is not None
        url = ""
        with anyio.fail_after(START_TIMEOUT_S):
            async for chunk in TextReceiveStream(process.stderr):
                if "MCP on " in chunk:
                    url = chunk.split("MCP on ", 1)[1].split()[0]
                    break
        assert url.startswith("http://127.0.0.1:")
        yield process, url
    finally:
        if process.returncode is None:
            process.kill()
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await process.wait()


def _token(state: Path) -> str:
    """The admin token the gateway created at its first start."""
    return AdminTokenFile.in_state(state).read()


def _text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


async def _unit_pids(client: Client) -> dict[str, int]:
    status = (await client.call_tool("vsm_status", {})).structured_content
    assert status is not None
    return {u["name"]: u["pid"] for u in status["units"] if u["pid"] is not None}


async def test_http_face_runtime_add_and_sigterm(
    tmp_path: Path, probe_spec: Callable[..., ServerSpec], procs: Any
) -> None:
    state = tmp_path / "state"
    _config(state, {"probe": probe_spec("probe")})
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with http_gateway(state) as (gateway, url):
        async with (
            bearer_client(url, _token(state), mode="legacy", message_handler=on_message) as client,
            bearer_client(url, _token(state)) as modern,  # 2026-07-28: hears changes on a listen stream
        ):
            with anyio.fail_after(START_TIMEOUT_S):
                while "probe__echo" not in [t.name for t in (await client.list_tools()).tools]:  # noqa: ASYNC110 - polls another process
                    await anyio.sleep(0.1)
            assert _text(await client.call_tool("probe__echo", {"text": "over http"})) == "over http"
            assert _text(await modern.call_tool("probe__echo", {"text": "modern"})) == "modern"
            async with modern.listen(tools_list_changed=True) as events:
                # `vsm-mcp servers add` from another process: persisted, picked up by the running gateway.
                async with SqliteStore.open(state / "state.db") as store:
                    await FleetRegistry(store).add(probe_spec("late"))
                with anyio.fail_after(START_TIMEOUT_S):
                    await changed.wait()
                    async for event in events:
                        assert type(event).__name__ == "ToolsListChanged"
                        break
            with anyio.fail_after(START_TIMEOUT_S):
                while "late__pid" not in [t.name for t in (await client.list_tools()).tools]:  # noqa: ASYNC110 - polls another process
                    await anyio.sleep(0.1)
            assert _text(await client.call_tool("late__echo", {"text": "late"})) == "late"
            pids = await _unit_pids(client)
        assert sorted(pids) == ["late", "probe"]
        assert all(procs.alive(p) for p in pids.values())
        gateway.send_signal(signal.SIGTERM)
        start = time.monotonic()
        with anyio.fail_after(5):
            await gateway.wait()
            while any(procs.alive(p) for p in pids.values()):  # noqa: ASYNC110 - no event for another's death
                await anyio.sleep(0.02)
        assert time.monotonic() - start < 5
        assert gateway.returncode == 0


async def test_children_die_with_a_sigkilled_gateway(
    tmp_path: Path, probe_spec: Callable[..., ServerSpec], procs: Any
) -> None:
    state = tmp_path / "state"
    _config(state, {"probe": probe_spec("probe")})
    async with http_gateway(state) as (gateway, url):
        async with bearer_client(url, _token(state)) as client:
            with anyio.fail_after(START_TIMEOUT_S):
                while not (pids := await _unit_pids(client)):  # noqa: ASYNC110 - polls another process
                    await anyio.sleep(0.1)
        gateway.kill()
        with anyio.fail_after(5):
            while procs.alive(pids["probe"]):  # noqa: ASYNC110 - no event for another's death
                await anyio.sleep(0.02)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_stdio_face(
    loop: str, tmp_path: Path, probe_spec: Callable[..., ServerSpec], procs: Any
) -> None:
    if loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        pytest.skip("uvloop is not installed on this platform")
    state = tmp_path / "state"
    _config(state, {"probe": probe_spec("probe")})
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "vsm_mcp.cli.serve", "--stdio", "--loop", loop],
        env={"VSM_MCP_STATE_DIR": str(state)},
    )
    async with Client(params) as client:
        with anyio.fail_after(START_TIMEOUT_S):
            while not (pids := await _unit_pids(client)):  # noqa: ASYNC110 - polls another process
                await anyio.sleep(0.1)
        assert _text(await client.call_tool("probe__echo", {"text": "over stdio"})) == "over stdio"
    with anyio.fail_after(5):
        while procs.alive(pids["probe"]):  # noqa: ASYNC110 - no event for another's death
            await anyio.sleep(0.02)
