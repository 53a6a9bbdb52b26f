"""Traces of tool calls on their way to a unit (the OpenTelemetry API; spans only with a provider).

When tracing is on (`Fleet.tracer`), each call the fleet dispatches is one
CLIENT span, ``tools/call UNIT/TOOL``, a child of whatever span is current (the
gateway's SERVER span for the client's request, from the SDK's own middleware),
and its W3C trace context goes downstream in the request's ``_meta`` (SEP-414),
so a server that traces joins the same trace. On the SDK session path the SDK's
own ``MCP send`` span nests below it and injects its own context; on the
express lane the context injected here is the one the server sees. The span
ends once, when the call ends or is cancelled. The stdio face's express relay,
which answers plain calls without the SDK's session, opens the SERVER span
itself (`CallTracer.serve`), so a relayed call is one trace too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.trace import SpanKind, Status, StatusCode

from vsm_mcp.fleet.routing import Route

#: The instrumentation scope of the gateway's own spans.
TRACER_NAME = "vsm-mcp"


class CallTracer:
    """Starts and ends the span of each dispatched call (module docstring)."""

    def __init__(self, tracer: trace.Tracer | None = None) -> None:
        self._tracer = tracer if tracer is not None else trace.get_tracer(TRACER_NAME)

    def begin(self, route: Route, wire: dict[str, Any]) -> tuple[object, Callable[[bool, str], None]]:
        """Start the span of a call to ``route`` and make it current; ``wire`` gets its context in
        ``_meta``. Returns the token for `detach` and the function that ends the span (once)."""
        span = self._tracer.start_span(
            f"tools/call {route.unit}/{route.name}",
            kind=SpanKind.CLIENT,
            attributes={
                "mcp.method.name": "tools/call",
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": route.name,
                "vsm_mcp.unit": route.unit,
                "vsm_mcp.public_name": route.public,
            },
        )
        current = trace.set_span_in_context(span)
        meta = dict(wire.get("_meta") or {})
        inject(meta, context=current)
        wire["_meta"] = meta
        return otel_context.attach(current), _ender(span)

    def serve(self, public: str, meta: dict[str, Any] | None) -> tuple[object, Callable[[bool, str], None]]:
        """Start the SERVER span of a client's request the gateway answers without the SDK's session
        (the stdio face's express relay), as the SDK's middleware names it, joined to the client's
        trace when its ``_meta`` carries one; make it current. Returns `begin`'s pair."""
        parent = extract(meta) if meta else None
        span = self._tracer.start_span(
            f"tools/call {public}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "mcp.method.name": "tools/call",
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": public,
            },
        )
        return otel_context.attach(trace.set_span_in_context(span)), _ender(span)

    @staticmethod
    def detach(token: object) -> None:
        """Make the span `begin` made current no longer current (it goes on until its call ends)."""
        otel_context.detach(token)  # type: ignore[arg-type]


def _ender(span: trace.Span) -> Callable[[bool, str], None]:
    """The function that ends ``span`` once, marked failed with ``reason`` when not ``ok``."""
    ended = False

    def end(ok: bool, reason: str) -> None:
        nonlocal ended
        if ended:
            return
        ended = True
        if not ok:
            span.set_status(Status(StatusCode.ERROR, reason or "failed"))
        span.end()

    return end
