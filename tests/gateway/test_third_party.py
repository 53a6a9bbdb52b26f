"""End to end: real third-party MCP servers behind `vsm-mcp serve`, over stdio and HTTP.

`@modelcontextprotocol/server-everything` (npm) and `mcp-server-time` (PyPI),
installed pinned into their own prefixes by scripts/install-test-servers.sh
(run here once if they are missing and npm/uv are present).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from anyio.streams.text import TextReceiveStream
from mcp import Client, StdioServerParameters

from vsm_mcp.gateway.bearer import bearer_client
from vsm_mcp.gateway.tokens import AdminTokenFile

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.external]

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0


def _write_config(state: Path, cache: Path) -> None:
    everything = cache / "npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
    state.mkdir(parents=True, exist_ok=True)
    (state / "config.toml").write_text(
        "[servers.everything]\n"
        f"command = {json.dumps(shutil.which('node'))}\n"
        f"args = {json.dumps([str(everything), 'stdio'])}\n"
        "[servers.time]\n"
        f"command = {json.dumps(str(cache / 'time-venv/bin/mcp-server-time'))}\n"
        'args = ["--local-timezone", "UTC"]\n'
    )


@asynccontextmanager
async def gateway_client(transport: str, state: Path) -> AsyncIterator[Client]:
    env = {**os.environ, "VSM_MCP_STATE_DIR": str(state)}
    command = [sys.executable, "-m", "vsm_mcp.cli.serve"]
    if transport == "stdio":
        params = StdioServerParameters(command=command[0], args=[*command[1:], "--stdio"], env=env)
        async with Client(params, mode="legacy") as client:
            yield client
        return
    process = await anyio.open_process([*command, "--http", "127.0.0.1:0"], env=env, stdout=None)
    try:
        assert process.stderr is not None
        url = ""
        with anyio.fail_after(START_TIMEOUT_S):
            async for chunk in TextReceiveStream(process.stderr):
                if "MCP on " in chunk:
                    url = chunk.split("MCP on ", 1)[1].split()[0]
                    break
        async with bearer_client(url, AdminTokenFile.in_state(state).read()) as client:
            yield client
    finally:
        process.terminate()
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await process.wait()


def _text(result: Any) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_real_servers_through_the_gateway(transport: str, test_servers: Path, tmp_path: Path) -> None:
    _write_config(tmp_path / "state", test_servers)
    async with gateway_client(transport, tmp_path / "state") as client:
        with anyio.fail_after(START_TIMEOUT_S):
            while True:  # both servers start in the background; poll the gateway's tool list
                names = {t.name for t in (await client.list_tools()).tools}
                if {"everything__echo", "time__get_current_time"} <= names:
                    break
                await anyio.sleep(0.2)

        assert _text(await client.call_tool("everything__echo", {"message": "hi"})) == "Echo: hi"
        assert "5" in _text(await client.call_tool("everything__get-sum", {"a": 2, "b": 3}))
        image = await client.call_tool("everything__get-tiny-image", {})
        assert {block.type for block in image.content} >= {"image", "text"}
        structured = await client.call_tool("everything__get-structured-content", {"location": "New York"})
        assert structured.structured_content is not None
        assert "temperature" in structured.structured_content

        now = await client.call_tool("time__get_current_time", {"timezone": "UTC"})
        assert json.loads(_text(now))["timezone"] == "UTC"
        bad = await client.call_tool("time__get_current_time", {"timezone": "Mars/Olympus_Mons"})
        assert bad.is_error is True
        assert "Mars/Olympus_Mons" in _text(bad)  # the server's own error, passed through

        progress: list[float] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(value)

        done = await client.call_tool(
            "everything__trigger-long-running-operation",
            {"duration": 1, "steps": 3},
            progress_callback=on_progress,
        )
        assert "completed" in _text(done).lower()
        assert progress == [1.0, 2.0, 3.0]

        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert "everything__simple-prompt" in prompts
        prompt = await client.get_prompt("everything__simple-prompt")
        assert prompt.messages[0].role == "user"

        resources = (await client.list_resources()).resources
        demo = next(r for r in resources if str(r.uri).startswith("demo://"))
        read = await client.read_resource(str(demo.uri))
        assert str(read.contents[0].uri) == str(demo.uri)
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert "demo://resource/dynamic/text/{resourceId}" in templates
        dynamic = await client.read_resource("demo://resource/dynamic/text/7")
        assert str(dynamic.contents[0].uri) == "demo://resource/dynamic/text/7"
