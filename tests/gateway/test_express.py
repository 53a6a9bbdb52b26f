"""The stdio face's express relay: which calls it takes, and the wire a client sees from it."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from vsm_mcp.core.profiles import Profile, ToolOverride
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.gateway import Gateway
from vsm_mcp.gateway.profiles import ProfileBook, StoredProfiles
from vsm_mcp.gateway.stdio import pipe_streams
from vsm_mcp.gateway.transport import serve_streams
from vsm_mcp.store import MemoryStore

from .conftest import stdio_face

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


class RawClient:
    """A client that writes JSON-RPC lines to the stdio face and reads its lines back, unparsed by any SDK."""

    def __init__(self, write_fd: int, read_fd: int) -> None:
        self.write_fd, self.read_fd = write_fd, read_fd
        self.buffer = b""

    def send(self, message: dict[str, Any]) -> None:
        os.write(self.write_fd, json.dumps(message).encode() + b"\n")

    async def receive(self) -> dict[str, Any]:
        with anyio.fail_after(10):
            while b"\n" not in self.buffer:
                await anyio.wait_readable(self.read_fd)
                self.buffer += os.read(self.read_fd, 1 << 16)
        line, self.buffer = self.buffer.split(b"\n", 1)
        return dict(json.loads(line))

    async def handshake(self, version: str = "2025-11-25") -> None:
        self.send(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": version,
                    "capabilities": {},
                    "clientInfo": {"name": "raw", "version": "0"},
                },
            }
        )
        assert (await self.receive())["id"] == 1
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})


@asynccontextmanager
async def raw_face(spec: ServerSpec, **options: Any) -> AsyncIterator[tuple[Gateway, RawClient]]:
    to_gateway_r, to_gateway_w = os.pipe()
    to_client_r, to_client_w = os.pipe()
    os.set_blocking(to_client_r, False)
    async with Fleet([spec]) as fleet:
        with anyio.fail_after(20):
            await fleet.wait_ready(spec.name)
        gateway = Gateway(fleet, **options)

        async def serve() -> None:
            async with pipe_streams(to_gateway_r, to_client_w) as (read, write):
                await serve_streams(gateway, read, write)

        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            try:
                yield gateway, RawClient(to_gateway_w, to_client_r)
            finally:
                os.close(to_gateway_w)  # the client goes away: the face ends
        os.close(to_client_r)


def _call(request_id: Any, name: str, **arguments: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


async def test_a_relayed_call_is_answered_with_the_clients_own_id_and_the_servers_result(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    async with raw_face(probe_spec("p")) as (gateway, client):
        await client.handshake()
        client.send(_call("req-7", "p__echo", text="hi"))
        answer = await client.receive()
        assert gateway.express is not None and gateway.express.relayed == 1
    assert answer == {
        "jsonrpc": "2.0",
        "id": "req-7",
        "result": {
            "content": [{"type": "text", "text": "hi"}],
            "structuredContent": {"result": "hi"},
            "isError": False,
        },
    }


async def test_a_stdio_face_with_a_profile_relays_its_renamed_tools_and_only_those(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    store = MemoryStore()
    profile = Profile("p", deny_tools=("p__add",), overrides={"p__echo": ToolOverride(name="say")})
    await ProfileBook(store).add(profile)
    profiles = StoredProfiles(store)
    await profiles.load()
    async with raw_face(probe_spec("p"), profiles=profiles, profile="p") as (gateway, client):
        await client.handshake()
        client.send(_call(1, "say", text="hi"))
        said = await client.receive()
        for request_id, name in ((2, "p__echo"), (3, "p__add")):
            client.send(_call(request_id, name, text="x"))
            refused = await client.receive()
            assert refused["id"] == request_id
            assert f"Unknown tool: {name!r}" in refused["error"]["message"]
        assert gateway.express is not None and gateway.express.relayed == 1
    assert said["result"]["structuredContent"] == {"result": "hi"}


async def test_nothing_is_relayed_before_the_handshake_is_done(probe_spec: Callable[..., ServerSpec]) -> None:
    async with raw_face(probe_spec("p")) as (gateway, client):
        client.send(_call(5, "p__echo", text="too early"))
        early = await client.receive()
        assert gateway.express is not None and gateway.express.relayed == 0
    assert early["id"] == 5
    assert "error" in early  # the SDK's session answers it, as it answers any request before initialize


async def test_an_id_already_in_flight_goes_to_the_session_and_both_are_answered(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    async with raw_face(probe_spec("p")) as (gateway, client):
        await client.handshake()
        client.send(_call(2, "p__sleep", seconds=0.5))
        client.send(_call(2, "p__echo", text="twin"))
        first, second = await client.receive(), await client.receive()
        assert gateway.express is not None and gateway.express.relayed == 1
    assert (first["id"], first["result"]["content"][0]["text"]) == (2, "twin")
    assert (second["id"], second["result"]["content"][0]["text"]) == (2, "slept")


async def test_calls_with_extra_params_or_odd_shapes_take_the_full_path(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    async with raw_face(probe_spec("p")) as (gateway, client):
        await client.handshake()
        client.send({**_call(3, "p__echo", text="x"), "params": {"name": "p__echo", "arguments": [1]}})
        client.send(_call(4, "nope"))
        client.send({**_call(5, "vsm_status"), "params": {"name": "vsm_status"}})
        answers = {(a := await client.receive())["id"]: a for _ in range(3)}
        assert gateway.express is not None and gateway.express.relayed == 0
    assert answers[3]["error"]["code"] == -32602  # the SDK's validation: arguments must be an object
    assert answers[4]["error"]["message"].startswith("Unknown tool: 'nope'")
    assert "result" in answers[5]


async def test_a_call_whose_meta_is_not_an_object_is_refused_as_invalid_params(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    # Found by tests/gateway/test_fuzz_stdio.py: with a param beyond the plain ones (``task``), such a
    # call was forwarded as it came and raised in the SDK's send path (answered with code 0 and a traceback).
    async with raw_face(probe_spec("p")) as (_, client):
        await client.handshake()
        for request_id, meta in enumerate([[5], "x", 5, [["a", 1]], None], start=10):
            params = {"name": "p__echo", "arguments": {"text": "x"}, "_meta": meta, "task": {}}
            client.send({**_call(request_id, "p__echo"), "params": params})
        answers = {(a := await client.receive())["id"]: a for _ in range(5)}
    assert [answers[i]["error"]["code"] for i in range(10, 14)] == [-32602] * 4
    assert answers[14]["result"]["structuredContent"] == {"result": "x"}


async def test_a_modern_client_is_never_relayed(probe_spec: Callable[..., ServerSpec]) -> None:
    async with Fleet([probe_spec("p")]) as fleet:
        with anyio.fail_after(20):
            await fleet.wait_ready("p")
        gateway = Gateway(fleet)
        async with stdio_face(gateway, mode="2026-07-28") as client:
            result = await client.call_tool("p__echo", {"text": "modern"})
            assert gateway.express is not None
            assert (gateway.express.armed, gateway.express.relayed) == (False, 0)
    assert result.content[0].text == "modern"  # type: ignore[union-attr]


async def test_a_relayed_call_is_one_trace_joined_to_the_clients_when_tracing(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from vsm_mcp.fleet.tracing import CallTracer

    exporter = InMemorySpanExporter()
    provider = TracerProvider()  # this test's own, not the process's global one
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    async with raw_face(probe_spec("p")) as (gateway, client):
        gateway.fleet.tracer = CallTracer(provider.get_tracer("test"))
        await client.handshake()
        request = _call("t-1", "p__echo", text="traced")
        request["params"]["_meta"] = {"traceparent": f"00-{trace_id}-{parent_id}-01"}
        client.send(request)
        answer = await client.receive()
        assert answer["result"]["isError"] is False
        assert gateway.express is not None and gateway.express.relayed == 1
    spans = {s.name: s for s in exporter.get_finished_spans()}
    served, sent = spans["tools/call p__echo"], spans["tools/call p/echo"]
    assert (served.kind, sent.kind) == (SpanKind.SERVER, SpanKind.CLIENT)
    assert served.context.trace_id == sent.context.trace_id == int(trace_id, 16)  # the client's trace
    assert served.parent is not None and served.parent.span_id == int(parent_id, 16)
    assert sent.parent is not None and sent.parent.span_id == served.context.span_id
