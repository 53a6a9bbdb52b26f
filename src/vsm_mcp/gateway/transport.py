"""Run the gateway's MCP server over stdio or streamable HTTP (endpoint ``/mcp``).

Both runners return when their transport ends (stdin closed, server shut
down) and are cancellable; the caller's task group owns them and the fleet,
so leaving it stops every downstream process. Signals are the caller's:
uvicorn's own signal capture is disabled, because it would re-raise SIGTERM
after shutdown and kill the process before the fleet is cleaned up.

HTTP invariants:

* every request carries ``Authorization: Bearer <token>`` or is answered 401
  with ``WWW-Authenticate: Bearer`` before the SDK sees it (Starlette's
  `AuthenticationMiddleware` with the SDK's `BearerAuthBackend` and
  `RequireAuthMiddleware`, over a `Keyring`); the verified token rides on the
  request to the handlers, where the gateway's `ScopeGate` checks each
  request's scope (`gateway.access`);
* ``Host`` and ``Origin`` are checked on every bind (`gateway.binding`); a
  bind beyond loopback needs ``public``;
* sessions are bounded per token, in number and idle time (`gateway.sessions`);
* a profile is served at ``/mcp/p/<name>`` (`PROFILE_PATH`): an unknown one
  is answered 404, and a token bound to a profile is answered 403 on any
  other profile's path (on ``/mcp`` it gets its own profile), both with a
  JSON-RPC error saying which path is its;
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
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import (
    AuthenticatedUser,
    BearerAuthBackend,
    RequireAuthMiddleware,
)
from mcp.server.auth.provider import TokenVerifier
from mcp.server.transport_security import (
    RequestBodyLimitMiddleware,
    TransportSecurityMiddleware,
    TransportSecuritySettings,
)
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from vsm_mcp.errors import ConfigError
from vsm_mcp.fleet.wire import LineReader, LineWriter
from vsm_mcp.gateway.binding import HttpListen, bind_socket
from vsm_mcp.gateway.events import EventLog
from vsm_mcp.gateway.express import ExpressRelay
from vsm_mcp.gateway.keyring import Keyring, principal_of_token
from vsm_mcp.gateway.search_demand import STDIO_CLIENT
from vsm_mcp.gateway.server import Gateway
from vsm_mcp.gateway.sessions import (
    MAX_SESSIONS_PER_TOKEN,
    SESSION_IDLE_S,
    ResumableSessions,
    jsonrpc_refusal,
)
from vsm_mcp.gateway.stdio import stdio_streams

#: Endpoint path of the streamable HTTP transport.
MCP_PATH = "/mcp"
#: A profile's endpoint (`gateway.profiles`).
PROFILE_PATH = MCP_PATH + "/p/{profile}"
#: SSE ``retry:`` a client waits before resuming a lost stream; a second keeps a resumed result prompt.
RETRY_INTERVAL_MS = 1000
#: Stopping waits this long for open responses to finish before uvicorn cancels them.
HTTP_SHUTDOWN_S = 3
#: The largest request body the operator page and API accept.
WEB_BODY_MAX = 1 << 20


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
    relay: ExpressRelay | None = None
    if isinstance(read, LineReader) and isinstance(write, LineWriter):
        relay = ExpressRelay(gateway, write)
        read.intercept = relay.intercept
        gateway.express = relay
    gateway.stdio_clients += 1
    try:
        await server.run(read, write, server.create_initialization_options())
    finally:
        if relay is not None:
            relay.close()  # the client is gone: calls under way have nobody to answer
        gateway.stdio_clients -= 1
        gateway.searches.ended(STDIO_CLIENT)
        gateway.express = None


def http_app(
    gateway: Gateway,
    keyring: TokenVerifier,
    security: TransportSecuritySettings,
    log: EventLog | None = None,
    *,
    sessions_per_token: int = MAX_SESSIONS_PER_TOKEN,
    session_idle_s: float = SESSION_IDLE_S,
    web: ASGIApp | None = None,
) -> tuple[Starlette, ResumableSessions]:
    """The gateway's streamable HTTP ASGI app at `MCP_PATH`, behind bearer tokens (module docstring);
    ``web`` (the operator page and API, which authenticate for themselves) answers every other path,
    behind the same Host and Origin checks and a bounded request body."""
    sessions = ResumableSessions(
        gateway.server,
        log if log is not None else EventLog(),
        per_token=sessions_per_token,
        idle_s=session_idle_s,
        retry_interval=RETRY_INTERVAL_MS,
        security_settings=security,
    )

    gateway.http_sessions = sessions.open_count
    sessions.on_end = lambda session_id: gateway.searches.ended(("session", session_id))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with sessions.run():
            yield

    # The SDK's own auth pieces: the backend verifies the bearer value (no scope needed to get in: each
    # request's scope is the gateway's `ScopeGate`'s to check); without a verified token, 401.
    async def profiled(scope: Scope, receive: Receive, send: Send) -> None:
        refusal = _profile_refusal(gateway, scope)
        if refusal is None:
            await sessions.handle_bounded(scope, receive, send)
        else:
            await refusal(scope, receive, send)

    endpoint = RequireAuthMiddleware(profiled, required_scopes=[])
    middleware = [
        Middleware(AuthenticationMiddleware, backend=BearerAuthBackend(keyring)),
        Middleware(AuthContextMiddleware),
    ]
    routes: list[BaseRoute] = [Route(MCP_PATH, endpoint=endpoint), Route(PROFILE_PATH, endpoint=endpoint)]
    if web is not None:
        routes.append(Mount("/", app=_guarded(web, security)))
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan), sessions


def _guarded(app: ASGIApp, security: TransportSecuritySettings) -> ASGIApp:
    """``app`` behind the face's Host and Origin checks (DNS rebinding) and `WEB_BODY_MAX` bytes of body."""
    check = TransportSecurityMiddleware(security)
    bounded = RequestBodyLimitMiddleware(app, WEB_BODY_MAX)

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = await check.validate_request(Request(scope), is_post=False)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await bounded(scope, receive, send)

    return guarded


def _profile_refusal(gateway: Gateway, scope: Scope) -> Response | None:
    """Why a request may not use its path's profile (or its token's), as a response; None: it may."""
    user = scope.get("user")
    bound = principal_of_token(user.access_token).profile if isinstance(user, AuthenticatedUser) else None
    path = scope.get("path_params", {}).get("profile")
    if bound is not None and path is not None and path != bound:
        return jsonrpc_refusal(
            403, f"this token is bound to profile {bound!r}: use {PROFILE_PATH.format(profile=bound)}"
        )
    wanted = bound or path
    if wanted is not None and (gateway.profiles is None or gateway.profiles.profile(wanted) is None):
        if bound is not None:
            return jsonrpc_refusal(403, f"this token is bound to profile {bound!r}, which no longer exists")
        return jsonrpc_refusal(404, f"no profile named {wanted!r} (see `vsm-mcp profiles list`)")
    return None


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers (the gateway owns SIGTERM/SIGINT)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_http(
    gateway: Gateway,
    listen: HttpListen,
    keyring: Keyring,
    *,
    log: EventLog | None = None,
    sessions_per_token: int = MAX_SESSIONS_PER_TOKEN,
    session_idle_s: float = SESSION_IDLE_S,
    web: ASGIApp | None = None,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve streamable HTTP at ``SCHEME://HOST:PORT/mcp``; reports the bound port when started.

    Raises:
        ConfigError: ``listen`` is refused (`HttpListen.check`) or cannot be bound.
    """
    listen.check()
    sock = bind_socket(listen)
    port = int(sock.getsockname()[1])
    app, sessions = http_app(
        gateway,
        keyring,
        listen.security_settings(port),
        log,
        sessions_per_token=sessions_per_token,
        session_idle_s=session_idle_s,
        web=web,
    )
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=HTTP_SHUTDOWN_S,
        ssl_certfile=listen.tls_cert,
        ssl_keyfile=listen.tls_key,
    )
    server = _QuietServer(config)
    stopped = anyio.Event()
    # Shielded: a cancelled uvicorn leaves its lifespan task cancelled mid-receive (a logged
    # traceback), so it is stopped through should_exit; cancelling this scope is the last resort.
    serving = anyio.CancelScope(shield=True)

    async def serve() -> None:
        with serving:
            try:
                await server.serve(sockets=[sock])
            except SystemExit:
                pass  # uvicorn exits when its startup fails (it logged why); reported below
            finally:
                stopped.set()

    async with keyring.running(), anyio.create_task_group() as tg:
        tg.start_soon(serve)
        try:
            while not server.started:
                if stopped.is_set():
                    raise ConfigError(f"cannot serve on {listen.host}:{port} (see the error above)")
                await anyio.sleep(0.01)
            task_status.started(port)
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
            sock.close()
