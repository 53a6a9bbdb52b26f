"""Run the gateway's MCP server over stdio or streamable HTTP (endpoint ``/mcp``).

Both runners return when their transport ends (stdin closed, server shut
down) and are cancellable; the caller's task group owns them and the fleet,
so leaving it stops every downstream process. Signals are the caller's:
uvicorn's own signal capture is disabled, because it would re-raise SIGTERM
after shutdown and kill the process before the fleet is cleaned up.

HTTP invariants:

* SSE streams are resumable (SEP-1699): every event carries an id, a
  2025-11-25 client gets a priming event with `RETRY_INTERVAL_MS`, and a
  client that lost a stream gets the missed events back with
  ``Last-Event-ID``, from a bounded log in which each session sees only its
  own events (`gateway.events`);
* cancelling `serve_http` shuts uvicorn down gracefully: open sessions and
  listen streams are ended first (uvicorn would otherwise wait for them),
  requests still running get `HTTP_SHUTDOWN_S`, then the lifespan shutdown
  runs, so a stop leaves no traceback on stderr.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.abc
import uvicorn
from mcp.server.streamable_http import EventStore
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.routing import Route

from vsm_mcp.errors import ConfigError
from vsm_mcp.fleet.wire import LineReader, LineWriter
from vsm_mcp.gateway.events import EventLog
from vsm_mcp.gateway.express import ExpressRelay
from vsm_mcp.gateway.server import Gateway
from vsm_mcp.gateway.stdio import stdio_streams

#: Endpoint path of the streamable HTTP transport.
MCP_PATH = "/mcp"
#: SSE ``retry:`` a client waits before resuming a lost stream; a second keeps a resumed result prompt.
RETRY_INTERVAL_MS = 1000
#: Stopping waits this long for open responses to finish before uvicorn cancels them.
HTTP_SHUTDOWN_S = 3
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` to a pair.

    Raises:
        ConfigError: not ``HOST:PORT`` with a port in 1-65535 (0 picks a free port).
    """
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--http expects HOST:PORT (e.g. 127.0.0.1:8765), got {value!r}")
    return host.strip("[]"), int(port)


async def serve_stdio(gateway: Gateway) -> None:
    """Speak MCP on this process's stdin/stdout until the client closes stdin."""
    async with stdio_streams() as (read, write):
        await serve_streams(gateway, read, write)


async def serve_streams(gateway: Gateway, read: Any, write: Any) -> None:
    """Speak MCP on a stdio-shaped stream pair until it ends; over `LineReader` / `LineWriter`
    (pipes) plain tool calls take the express lane (`gateway.express`)."""
    server = gateway.server
    if isinstance(read, LineReader) and isinstance(write, LineWriter):
        relay = ExpressRelay(gateway, write)
        read.intercept = relay.intercept
        gateway.express = relay
    try:
        await server.run(read, write, server.create_initialization_options())
    finally:
        gateway.express = None


class ResumableSessions(StreamableHTTPSessionManager):
    """The SDK's session manager, handing each new session its own view of one `EventLog`.

    The SDK reads ``event_store`` once per session it admits; this property
    makes that read a fresh `SessionEvents` scope.
    """

    def __init__(self, app: Any, log: EventLog, **kwargs: Any) -> None:
        self.log = log
        super().__init__(app, event_store=log.session(), **kwargs)

    @property
    def event_store(self) -> EventStore:
        return self.log.session()

    @event_store.setter
    def event_store(self, value: EventStore | None) -> None:
        """The SDK's constructor assigns its argument; every session gets a view of `log` instead."""

    async def end_sessions(self) -> None:
        """Terminate every open session, which ends its SSE streams (clients then get 404 and re-open).

        The SDK's manager has no public call for this; its session table is read as of mcp 2.3.
        """
        for transport in list(self._server_instances.values()):
            await transport.terminate()


def http_app(gateway: Gateway, host: str, log: EventLog | None = None) -> tuple[Starlette, ResumableSessions]:
    """The gateway's streamable HTTP ASGI app at `MCP_PATH` (DNS-rebinding protection on loopback)."""
    security = None
    if host in _LOCAL_HOSTS:  # the SDK's own default for a loopback bind
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        )
    sessions = ResumableSessions(
        gateway.server,
        log if log is not None else EventLog(),
        retry_interval=RETRY_INTERVAL_MS,
        security_settings=security,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with sessions.run():
            yield

    return Starlette(
        routes=[Route(MCP_PATH, endpoint=StreamableHTTPASGIApp(sessions))], lifespan=lifespan
    ), sessions


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers (the gateway owns SIGTERM/SIGINT)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_http(
    gateway: Gateway,
    host: str,
    port: int,
    *,
    log: EventLog | None = None,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve streamable HTTP at ``http://HOST:PORT/mcp``; reports the bound port when started."""
    app, sessions = http_app(gateway, host, log)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=HTTP_SHUTDOWN_S,
    )
    server = _QuietServer(config)
    stopped = anyio.Event()
    # Shielded: a cancelled uvicorn leaves its lifespan task cancelled mid-receive (a logged
    # traceback), so it is stopped through should_exit; cancelling this scope is the last resort.
    serving = anyio.CancelScope(shield=True)

    async def serve() -> None:
        with serving:
            try:
                await server.serve()
            except SystemExit:
                pass  # uvicorn exits when it cannot bind (it logged why); reported below
            finally:
                stopped.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        try:
            while not server.started:
                if stopped.is_set():
                    raise ConfigError(f"cannot listen on {host}:{port} (address in use or not allowed)")
                await anyio.sleep(0.01)
            bound = port
            for s in server.servers:
                for sock in s.sockets:
                    bound = sock.getsockname()[1]
            task_status.started(bound)
            await stopped.wait()
        finally:
            # uvicorn drains open responses before its lifespan shutdown ends the sessions, so the
            # long-lived ones (a session's GET stream, a 2026 client's listen stream) are ended first.
            with anyio.CancelScope(shield=True):
                gateway.listen.close()
                await sessions.end_sessions()
            server.should_exit = True
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(HTTP_SHUTDOWN_S + 1.0):
                    await stopped.wait()
                server.force_exit = True
                with anyio.move_on_after(1.0):
                    await stopped.wait()
            serving.cancel()
