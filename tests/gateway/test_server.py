"""The gateway in front of a real probe server, spoken to by the SDK's client in-process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.shared.exceptions import MCPError

from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.gateway import Gateway, WindowDemand

from .conftest import Connect

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@asynccontextmanager
async def running(
    *specs: ServerSpec, connect: Connect | None = None, **client: Any
) -> AsyncIterator[tuple[Gateway, Client, WindowDemand]]:
    demand = WindowDemand()
    async with Fleet(specs) as fleet:
        for spec in specs:
            with anyio.fail_after(20):
                await fleet.wait_ready(spec.name)
        gateway = Gateway(fleet, demand=demand, status=demand)
        if connect is None:
            async with Client(gateway.server, mode="legacy", **client) as c:
                yield gateway, c, demand
        else:
            async with connect(gateway, **client) as c:
                yield gateway, c, demand


def _text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


async def test_tools_are_listed_namespaced_next_to_the_vsm_tools(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    async with running(probe_spec("probe")) as (_, client, _):
        names = [t.name for t in (await client.list_tools()).tools]
    assert names[:4] == ["vsm_status", "vsm_variety", "vsm_search_tools", "vsm_call_tool"]
    assert "probe__echo" in names
    assert "probe__add" in names


async def test_a_tools_input_schema_is_looked_up_by_name_as_tools_list_gives_it(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    # The SDK asks for it on every 2026-07-28 HTTP tools/call (Mcp-Param-* headers).
    async with running(probe_spec("probe")) as (gateway, client, _):
        listed = {t.name: t.input_schema for t in (await client.list_tools()).tools}
        lookup = gateway.server.get_tool_input_schema
        assert lookup is not None
        for name in ("probe__echo", "probe__add", "vsm_search_tools", "vsm_call_tool"):
            assert lookup(name) == listed[name], name
        assert lookup("nope") is None  # unknown: the call itself says so


async def test_calls_are_proxied_and_feed_demand(
    probe_spec: Callable[..., ServerSpec], connect: Connect, face: str
) -> None:
    async with running(probe_spec("probe"), connect=connect) as (gateway, client, demand):
        result = await client.call_tool("probe__echo", {"text": "hello"})
        assert _text(result) == "hello"
        assert result.structured_content == {"result": "hello"}
        with pytest.raises(MCPError, match="Unknown tool: 'nope'") as info:
            await client.call_tool("nope", {})
        assert info.value.code == types.INVALID_PARAMS
        bad = await client.call_tool("probe__add", {"a": "x", "b": 1})
        assert bad.is_error is True
        assert "valid integer" in _text(bad)
        profile = demand.window.profile()
        assert profile.counts == {"probe__echo": 1, "nope": 1, "probe__add": 1}
        assert "nope" not in profile.capacity
        assert "probe__echo" in profile.capacity
        variety = json.loads(_text(await client.call_tool("vsm_variety", {})))
        assert variety["coverage"] == pytest.approx(2 / 3)
        assert variety["unmatched_categories"] == {"nope": 1}
        status = json.loads(_text(await client.call_tool("vsm_status", {})))
        assert status["units"][0]["name"] == "probe"
        assert status["units"][0]["state"] == "ready"
        assert status["units"][0]["calls"] == 2
        assert gateway.fleet.unit("probe").stats.calls == 2
        # Over stdio the two routed calls took the express lane; the unknown one did not.
        assert (gateway.express.relayed if gateway.express else 0) == (2 if face == "stdio" else 0)


async def test_search_finds_tools_and_records_misses(probe_spec: Callable[..., ServerSpec]) -> None:
    async with running(probe_spec("probe")) as (gateway, client, demand):
        found = await client.call_tool("vsm_search_tools", {"query": "add two integers"})
        assert found.structured_content is not None
        assert found.structured_content["tools"][0]["name"] == "probe__add"
        assert found.structured_content["tools"][0]["inputSchema"]["required"] == ["a", "b"]
        missed = await client.call_tool("vsm_search_tools", {"query": "translate klingon poetry"})
        assert missed.structured_content == {"query": "translate klingon poetry", "matches": 0, "tools": []}
        # The miss counts at once; the search with hits waits for the call that answers it.
        assert demand.window.profile().counts == {"search:translate klingon poetry": 1}
        via = await client.call_tool("vsm_call_tool", {"name": "probe__add", "arguments": {"a": 2, "b": 3}})
        assert _text(via) == "5"
        # Answered by that call: the call is the demand, the search adds nothing more.
        assert demand.window.profile().counts == {"probe__add": 1, "search:translate klingon poetry": 1}
        assert (demand.matched, demand.unmatched) == (1, 1)
        assert gateway.searches.summary() == {"pending": 0, "answered": 1, "unanswered": 1}


async def test_progress_is_relayed_to_the_client(
    probe_spec: Callable[..., ServerSpec], connect: Connect
) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with running(probe_spec("probe"), connect=connect) as (_, client, _):
        result = await client.call_tool(
            "probe__slow", {"steps": 3, "step_s": 0.05}, progress_callback=on_progress
        )
    assert _text(result) == "done after 3 steps"
    assert seen == [(1.0, 3.0, "step 1"), (2.0, 3.0, "step 2"), (3.0, 3.0, "step 3")]


async def test_vsm_resources_are_readable(probe_spec: Callable[..., ServerSpec]) -> None:
    async with running(probe_spec("probe")) as (_, client, _):
        uris = [str(r.uri) for r in (await client.list_resources()).resources]
        assert uris == ["vsm://status", "vsm://variety", "vsm://fleet"]
        fleet = await client.read_resource("vsm://fleet")
        block = fleet.contents[0]
        assert isinstance(block, types.TextResourceContents)
        view = json.loads(block.text)
    assert view["units"][0]["name"] == "probe"
    assert "probe__echo" in view["units"][0]["tools"]


async def test_adding_a_server_sends_tools_list_changed(probe_spec: Callable[..., ServerSpec]) -> None:
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with running(probe_spec("one"), message_handler=on_message) as (gateway, client, _):
        await gateway.fleet.add(probe_spec("two"))
        with anyio.fail_after(20):
            await changed.wait()
        names = [t.name for t in (await client.list_tools()).tools]
        assert "two__echo" in names
        assert "one__echo" in names
        await gateway.fleet.remove("two")
        names = [t.name for t in (await client.list_tools()).tools]
        assert "two__echo" not in names


async def test_outside_a_call_sampling_and_elicitation_are_refused_and_roots_come_from_the_client(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    asked: list[str] = []

    async def on_sampling(
        context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        asked.append("sampling")
        return types.CreateMessageResult(role="assistant", content=types.TextContent(text="4"), model="m")

    async def on_elicitation(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        asked.append("elicitation")
        return types.ElicitResult(action="accept", content={"password": "hunter2"})

    async def on_roots(context: ClientRequestContext) -> types.ListRootsResult:
        asked.append("roots")
        return types.ListRootsResult(roots=[types.Root(uri="file:///work")])

    callbacks = {"sampling_callback": on_sampling, "elicitation_callback": on_elicitation}
    async with running(probe_spec("probe"), list_roots_callback=on_roots, **callbacks) as (
        gateway,
        client,
        _,
    ):
        await client.list_tools()  # the client is connected and known to the gateway
        message = types.SamplingMessage(role="user", content=types.TextContent(text="2+2?"))
        sampled = await gateway.unit_request(
            "probe",
            types.CreateMessageRequest(
                params=types.CreateMessageRequestParams(messages=[message], max_tokens=8)
            ),
        )
        form = types.ElicitRequestFormParams(
            message="Your password, please", requested_schema={"type": "object", "properties": {}}
        )
        elicited = await gateway.unit_request("probe", types.ElicitRequest(params=form))
        roots = await gateway.unit_request("probe", types.ListRootsRequest())
    assert isinstance(sampled, types.ErrorData) and isinstance(elicited, types.ErrorData)
    assert sampled.message == (
        "the gateway relays sampling only for a call this server is serving, and none is in progress"
    )
    assert elicited.message.startswith("the gateway relays elicitation only for a call")
    assert isinstance(roots, types.ListRootsResult)
    assert [str(r.uri) for r in roots.roots] == ["file:///work"]
    assert asked == ["roots"]  # the client was never asked for the refused two
