"""vsm_find_capability / vsm_acquire_capability through the gateway, to a real MCP client in-process.

Asking is real MCP elicitation to the calling client; the acquisition is a real PyPI install.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext

from vsm_mcp.runtime import Runtime
from vsm_mcp.settings import Settings, load_settings

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

QUERY = "current time in another timezone"
#: Installing mcp-server-time from PyPI and starting it twice (verify, then the fleet) on a shared machine.
ACQUIRE_TIMEOUT_S = 180.0


def _settings(tmp_path: Path) -> Settings:
    config = tmp_path / "config.toml"
    config.write_text('[acquisition]\nauto_approve = false\nregistries = ["pypi"]\n')
    return load_settings(config, state_dir=tmp_path / "state")


@asynccontextmanager
async def _client(settings: Settings, **options: Any) -> AsyncIterator[tuple[Runtime, Client]]:
    async with (
        Runtime.open(settings, seed=3) as runtime,
        Client(runtime.gateway.server, mode="legacy", **options) as client,
    ):
        yield runtime, client


def _text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def _installed(settings: Settings) -> list[str]:
    servers = settings.state_dir / "servers"
    return sorted(p.name for p in servers.iterdir()) if servers.exists() else []


async def test_find_ranks_catalog_servers_with_reasons_offline(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    async with _client(settings) as (runtime, client):
        names = [t.name for t in (await client.list_tools()).tools]
        assert names[:6] == [
            "vsm_status",
            "vsm_variety",
            "vsm_search_tools",
            "vsm_call_tool",
            "vsm_find_capability",
            "vsm_acquire_capability",
        ]
        result = await client.call_tool("vsm_find_capability", {"query": QUERY, "limit": 3})
        assert result.is_error is False
        found = result.structured_content
        assert found is not None
        best = found["candidates"][0]
        assert best["server"] == "mcp-server-time"
        assert best["registry"] == "pypi"
        assert best["package"].startswith("pypi:mcp-server-time@")
        assert best["reasons"][0] == "matches 'current', 'time', 'timezon'"
        assert "get_current_time" in best["tools"]
        scores = [c["score"] for c in found["candidates"]]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True)
        # The need is demand nothing in the fleet answers yet.
        assert runtime.demand.unmatched == 1
        with anyio.fail_after(5):  # demand reaches S4 in batches, over the bus
            await runtime.notices.wait_for("variety.read", after=0)
        variety = runtime.demand.variety()
        assert variety["unmatched_categories"] == {f"search:{QUERY}": 1}
        # Through vsm_call_tool as well (the stable entry point).
        again = await client.call_tool(
            "vsm_call_tool", {"name": "vsm_find_capability", "arguments": {"query": QUERY}}
        )
        assert again.structured_content is not None
        assert again.structured_content["candidates"][0]["server"] == "mcp-server-time"
        bad = await client.call_tool("vsm_find_capability", {"query": "  "})
        assert bad.is_error is True
        assert _text(bad) == "vsm_find_capability: 'query' must be a non-empty string"
    assert _installed(settings) == []


@pytest.mark.external
async def test_a_client_without_elicitation_is_refused_with_how_to_approve(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    async with _client(settings) as (runtime, client):
        with anyio.fail_after(60):
            result = await client.call_tool("vsm_acquire_capability", {"query": QUERY})
        assert result.is_error is True
        text = _text(result)
        assert text.startswith(
            "acquisition refused (operator): S5 asks a person to approve this, but nobody "
        )
        assert "this client did not declare the MCP elicitation capability" in text
        assert "The question waits for an operator as approval 1 (the operator page, or " in text
        assert "`vsm-mcp approvals approve 1`" in text
        assert "`[acquisition] auto_approve = true`" in text
        assert await runtime.registry.desired() == {}
        assert not [n for n in (await client.list_tools()).tools if "__" in n.name]
        # A 2026-07-28 client has no back-channel for elicitation at all.
        async with Client(runtime.gateway.server) as modern:
            with anyio.fail_after(60):
                refused = await modern.call_tool("vsm_acquire_capability", {"query": QUERY})
        assert refused.is_error is True
        assert (
            "nobody can be asked here: a 2026-07-28 connection carries no server-to-client request. "
            in _text(refused)
        )
    assert _installed(settings) == []


@pytest.mark.external
async def test_a_user_who_declines_gets_nothing_installed(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    asked: list[str] = []

    async def decline(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="decline")

    async with _client(settings, elicitation_callback=decline) as (runtime, client):
        with anyio.fail_after(60):
            result = await client.call_tool("vsm_acquire_capability", {"query": QUERY})
        assert result.is_error is True
        assert _text(result) == "acquisition refused (operator): the operator declined"
        assert len(asked) == 1
        assert asked[0].startswith("Install pypi:mcp-server-time@")
        assert await runtime.registry.desired() == {}
        decisions = await runtime.store.decisions()
        assert decisions[0].choice == "refuse"
        assert decisions[0].rationale.startswith("operator declined: ")
    assert _installed(settings) == []


@pytest.mark.external
async def test_a_user_who_accepts_gets_the_server_listed_and_answering(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    asked: list[types.ElicitRequestParams] = []
    changed = anyio.Event()

    async def accept(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params)
        return types.ElicitResult(action="accept", content={"approve": True})

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with _client(settings, elicitation_callback=accept, message_handler=on_message) as (
        runtime,
        client,
    ):
        with anyio.fail_after(ACQUIRE_TIMEOUT_S):
            result = await client.call_tool("vsm_acquire_capability", {"query": QUERY})
        assert result.is_error is False, _text(result)
        acquired = result.structured_content
        assert acquired is not None
        unit = acquired["server"]
        assert acquired["package"].startswith("pypi:mcp-server-time@")
        assert acquired["already_installed"] is False
        assert acquired["category"] == f"search:{QUERY}"
        public = f"{unit}__get_current_time"
        assert public in acquired["tools"]
        assert len(asked) == 1
        assert isinstance(asked[0], types.ElicitRequestFormParams)
        assert asked[0].requested_schema["properties"]["approve"]["type"] == "boolean"
        # The unit was ready before the result came back, so the client already heard of it.
        assert changed.is_set()
        assert public in [t.name for t in (await client.list_tools()).tools]
        answer = await client.call_tool(public, {"timezone": "Asia/Tokyo"})
        assert answer.is_error is False
        assert '"timezone": "Asia/Tokyo"' in _text(answer)
        assert _installed(settings) == [unit]
        assert list(await runtime.registry.desired()) == [unit]
        # Asking again installs nothing and names the unit that answers.
        again = await client.call_tool("vsm_acquire_capability", {"query": QUERY})
        assert again.structured_content is not None
        assert again.structured_content["already_installed"] is True
        assert again.structured_content["server"] == unit
        assert len(asked) == 1
        # The demand the client expressed is now answered by the new unit.
        found = await client.call_tool("vsm_search_tools", {"query": "get current time in a timezone"})
        assert found.structured_content is not None
        assert found.structured_content["tools"][0]["name"] == public
