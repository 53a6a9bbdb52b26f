"""Exporting traces: the official OpenTelemetry SDK, set up from ``[telemetry]`` (`TelemetrySettings`).

With an ``otlp_endpoint`` the process gets a tracer provider whose batch
processor sends spans over OTLP/HTTP; the gateway then keeps the MCP SDK's own
server span per request and adds a span per call to a unit (`fleet.tracing`).
Without one nothing is set up and the SDK's spans stay no-ops. `start_tracing`
returns the shutdown that flushes what is still buffered.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from vsm_mcp.errors import ConfigError
from vsm_mcp.settings import TelemetrySettings

#: Spans wait at most this long in the batch before they are sent.
EXPORT_DELAY_MS = 500


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of ``endpoint`` (a base URL gets ``/v1/traces``).

    Raises:
        ConfigError: not an http(s) URL.
    """
    parts = urlsplit(endpoint)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigError(f"[telemetry] otlp_endpoint must be an http(s) URL, got {endpoint!r}")
    return endpoint if parts.path not in {"", "/"} else endpoint.rstrip("/") + "/v1/traces"


def start_tracing(settings: TelemetrySettings) -> Callable[[], None] | None:
    """Export traces as ``settings`` say; returns how to flush and stop (None: tracing is off).

    Raises:
        ConfigError: a bad endpoint, or the ``otel`` extra is not installed.
    """
    if not settings.otlp_endpoint:
        return None
    url = traces_url(settings.otlp_endpoint)
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ConfigError(
            f"[telemetry] otlp_endpoint is set but the OpenTelemetry SDK is not installed ({exc.name}): "
            "pip install 'vsm-mcp[otel]'"
        ) from None
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=url), schedule_delay_millis=EXPORT_DELAY_MS)
    )
    trace.set_tracer_provider(provider)
    return provider.shutdown
