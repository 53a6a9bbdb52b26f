"""The SDK's streamable HTTP session manager, resumable and bounded per token: `ResumableSessions`.

Resumability: the SDK reads ``event_store`` once per session it admits; a
property makes that read a fresh `SessionEvents` view of one `EventLog`, so a
session replays only its own events.

Bounds, so one caller cannot lock the others out (the SDK's only bound is
10,000 sessions in all, which one client can fill):

* a token (one value of it: the SDK binds a session to the credential that
  opened it) holds at most `MAX_SESSIONS_PER_TOKEN` sessions; the next
  ``initialize`` gets HTTP 429 with a JSON-RPC error naming the token and
  the bound, and every other token's clients go on as before;
* a session with no request in flight and no open stream for `SESSION_IDLE_S`
  is closed (the SDK's idle timeout), which frees its place.

The SDK's manager has no public hook for the first: `_admit_session` is
extended and `_session_owners` / `_server_instances` are read as of mcp 2.3
(`tests/gateway/test_auth.py` fails if they change).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.streamable_http import EventStore, StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types import INVALID_REQUEST, ErrorData, JSONRPCError
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from vsm_mcp.gateway.events import EventLog

#: A client holds one session per connection; an IDE running several agents, a few. 32 leaves room for
#: that and keeps a token far below the SDK's 10,000 sessions in all.
MAX_SESSIONS_PER_TOKEN: Final = 32
#: Longer than a person's pause between two tool calls (a client that keeps its GET stream open is never
#: idle); short enough that a flood's abandoned sessions are gone within minutes, not the SDK's 30.
SESSION_IDLE_S: Final = 600.0


class SessionBoundError(Exception):
    """A token opening a session beyond `MAX_SESSIONS_PER_TOKEN` (answered with HTTP 429)."""

    def __init__(self, token: str, held: int, idle_s: float) -> None:
        super().__init__(
            f"token {token!r} holds {held} sessions, the most one token may hold; end one "
            f"(DELETE with its Mcp-Session-Id) or wait: a session idle for {idle_s:g} s is closed"
        )


def jsonrpc_refusal(status: int, message: str) -> Response:
    """An HTTP refusal with a JSON-RPC error body (no id: it answers no request the SDK read)."""
    body = JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=INVALID_REQUEST, message=message))
    return Response(
        body.model_dump_json(by_alias=True, exclude_unset=True),
        status_code=status,
        media_type="application/json",
    )


class ResumableSessions(StreamableHTTPSessionManager):
    """The SDK's session manager with per-session event views and per-token bounds (module docstring)."""

    def __init__(
        self,
        app: Any,
        log: EventLog,
        *,
        per_token: int = MAX_SESSIONS_PER_TOKEN,
        idle_s: float = SESSION_IDLE_S,
        **kwargs: Any,
    ) -> None:
        self.log = log
        self.per_token = per_token
        #: Told the id of each session that ended (closed by its client, idle, or terminated).
        self.on_end: Callable[[str], None] | None = None
        super().__init__(app, event_store=log.session(), session_idle_timeout=idle_s, **kwargs)

    @property
    def event_store(self) -> EventStore:
        return self.log.session()

    @event_store.setter
    def event_store(self, value: EventStore | None) -> None:
        """The SDK's constructor assigns its argument; every session gets a view of `log` instead."""

    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        await super()._discard_session(session_id, transport)
        if self.on_end is not None:
            self.on_end(session_id)

    def open_count(self) -> int:
        """The sessions open now."""
        return len(self._server_instances)

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        if requestor is not None:
            held = sum(1 for owner in self._session_owners.values() if owner == requestor)
            if held >= self.per_token:
                assert self.session_idle_timeout is not None
                raise SessionBoundError(requestor["client_id"], held, self.session_idle_timeout)
        return super()._admit_session(requestor)

    async def handle_bounded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app: the SDK's handling, with a session beyond the token's bound answered 429."""
        try:
            await self.handle_request(scope, receive, send)
        except SessionBoundError as exc:
            await jsonrpc_refusal(429, str(exc))(scope, receive, send)

    async def end_sessions(self) -> None:
        """Terminate every open session, which ends its SSE streams (clients then get 404 and re-open)."""
        for transport in list(self._server_instances.values()):
            await transport.terminate()
