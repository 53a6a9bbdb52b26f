"""Traces: `vsm-mcp serve --http` with `[telemetry] otlp_endpoint` sends one trace per call to an
OTLP/HTTP collector running in this test, spanning the gateway's request and its call to the unit."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections import defaultdict
from pathlib import Path

import anyio
import pytest
import uvicorn
from anyio.streams.text import TextReceiveStream
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vsm_mcp.errors import ConfigError
from vsm_mcp.gateway.bearer import bearer_client
from vsm_mcp.gateway.tokens import AdminTokenFile
from vsm_mcp.settings import TelemetrySettings
from vsm_mcp.telemetry import start_tracing, traces_url

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PROBE = Path(__file__).resolve().parent / "fixtures" / "servers" / "probe_server.py"
START_TIMEOUT_S = 40.0


class Collector:
    """An OTLP/HTTP traces endpoint that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.received = anyio.Event()

    async def traces(self, request: Request) -> Response:
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.body())
        for resource in export.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        self.received.set()
        return Response(b"", media_type="application/x-protobuf")


async def test_each_call_is_one_trace_from_the_gateways_request_to_its_unit(
    tmp_path: Path, free_port: object
) -> None:
    collector = Collector()
    app = Starlette(routes=[Route("/v1/traces", collector.traces, methods=["POST"])])
    port = free_port()  # type: ignore[operator]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    state = tmp_path / "state"
    state.mkdir()
    (state / "config.toml").write_text(
        "\n".join(
            [
                "[telemetry]",
                f'otlp_endpoint = "http://127.0.0.1:{port}"',
                "[sandbox]",
                'mode = "off"',
                "[servers.probe]",
                f"command = {json.dumps(sys.executable)}",
                f"args = [{json.dumps(str(PROBE))}]",
            ]
        )
        + "\n"
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        process = await anyio.open_process(
            [sys.executable, "-m", "vsm_mcp.cli.serve", "--http", "127.0.0.1:0"],
            env={**os.environ, "VSM_MCP_STATE_DIR": str(state)},
        )
        try:
            assert process.stderr is not None
            said = ""
            with anyio.fail_after(START_TIMEOUT_S):
                async for chunk in TextReceiveStream(process.stderr):
                    said += chunk
                    if "MCP on " in said:
                        break
            url = said.split("MCP on ", 1)[1].split()[0]
            async with bearer_client(url, AdminTokenFile.in_state(state).read(), mode="legacy") as client:
                with anyio.fail_after(START_TIMEOUT_S):
                    while "probe__echo" not in [t.name for t in (await client.list_tools()).tools]:  # noqa: ASYNC110 - another process
                        await anyio.sleep(0.1)
                for text in ("one", "two"):
                    assert (await client.call_tool("probe__echo", {"text": text})).is_error is False
        finally:
            process.send_signal(signal.SIGTERM)  # the gateway flushes its spans as it stops
            with anyio.fail_after(20):
                await process.wait()
        server.should_exit = True

    by_trace: dict[bytes, list[Span]] = defaultdict(list)
    for span in collector.spans:
        by_trace[span.trace_id].append(span)
    calls = [
        spans
        for spans in by_trace.values()
        if any(s.name == "tools/call probe__echo" and s.kind == Span.SPAN_KIND_SERVER for s in spans)
    ]
    assert len(calls) == 2  # one trace per call
    for spans in calls:
        request = next(s for s in spans if s.name == "tools/call probe__echo")
        to_unit = next(s for s in spans if s.name == "tools/call probe/echo")
        assert to_unit.kind == Span.SPAN_KIND_CLIENT
        assert to_unit.parent_span_id == request.span_id  # the unit's leg inside the gateway's request
        assert request.start_time_unix_nano <= to_unit.start_time_unix_nano <= to_unit.end_time_unix_nano
        assert to_unit.end_time_unix_nano <= request.end_time_unix_nano
        names = {s.name for s in spans}
        assert len([s for s in spans if s.name == "tools/call probe/echo"]) == 1, names  # not duplicated


def test_an_endpoint_gets_the_traces_path_and_a_bad_one_is_refused() -> None:
    assert traces_url("http://127.0.0.1:4318") == "http://127.0.0.1:4318/v1/traces"
    assert traces_url("https://otel.example/custom/v1/traces") == "https://otel.example/custom/v1/traces"
    with pytest.raises(ConfigError, match="must be an http"):
        traces_url("127.0.0.1:4318")
    assert start_tracing(TelemetrySettings()) is None  # off unless configured
