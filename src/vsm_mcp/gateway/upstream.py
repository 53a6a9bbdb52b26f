"""The gateway's clients: who is connected, which call each unit is serving, who subscribed.

A `ServerSession` handed to a request handler is per request, but its
non-request-scoped sends go to the connection's standalone channel, which
outlives the request; so the session seen on ``notifications/initialized``
is kept as that connection's handle for broadcasts (``list_changed``, logs
outside any call, resource updates). Invariants:

* a connection whose send fails is forgotten (it went away);
* every broadcast send is bounded by `SEND_TIMEOUT_S`, so one stuck client
  cannot stall the fleet's notifications to the others;
* ``inflight[unit]`` holds the upstream calls being served by ``unit``, most
  recent last: a server-to-client request or log message from that unit is
  related to the most recent one (stdio carries no request correlation).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio
import mcp_types as types
from mcp.server.session import ServerSession

#: A client that does not take a notification within this time is skipped for it.
SEND_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class InflightCall:
    """An upstream request being served by a unit."""

    session: ServerSession
    request_id: types.RequestId | None


class Upstream:
    """Registry of connected clients, in-flight calls and resource subscriptions."""

    def __init__(self) -> None:
        self.sessions: list[ServerSession] = []
        self.inflight: dict[str, list[InflightCall]] = {}
        self.subscriptions: dict[str, list[ServerSession]] = {}

    def connected(self, session: ServerSession) -> None:
        self.sessions.append(session)

    def serving(self, unit: str, session: ServerSession, request_id: types.RequestId | None) -> _Serving:
        """Mark a call as being served by ``unit`` for the duration of a ``with`` block.

        A plain context manager object, not a generator: this runs on every proxied call.
        """
        return _Serving(self.inflight.setdefault(unit, []), InflightCall(session, request_id))

    def current(self, unit: str) -> InflightCall | None:
        """The most recent call ``unit`` is serving, else None."""
        calls = self.inflight.get(unit)
        return calls[-1] if calls else None

    def subscribe(self, uri: str, session: ServerSession) -> bool:
        """Add a subscriber; True when it is the first for ``uri``."""
        subscribers = self.subscriptions.setdefault(uri, [])
        subscribers.append(session)
        return len(subscribers) == 1

    def unsubscribe(self, uri: str, session: ServerSession) -> bool:
        """Remove subscribers of that connection; True when nobody is left for ``uri``."""
        subscribers = self.subscriptions.get(uri, [])
        self.subscriptions[uri] = [s for s in subscribers if not _same_connection(s, session)]
        if not self.subscriptions[uri]:
            del self.subscriptions[uri]
            return True
        return False

    async def broadcast(self, send: Callable[[ServerSession], Coroutine[Any, Any, None]]) -> int:
        """Send to every connected client; returns how many took it."""
        delivered = 0
        for session in list(self.sessions):
            if await _deliver(send, session):
                delivered += 1
            else:
                with suppress(ValueError):
                    self.sessions.remove(session)
        return delivered

    async def to_subscribers(self, uri: str, notification: types.ServerNotification) -> int:
        delivered = 0
        for session in list(self.subscriptions.get(uri, [])):
            delivered += await _deliver(lambda s: s.send_notification(notification), session)
        return delivered


class _Serving:
    """The ``with`` block of `Upstream.serving`: the call is in ``calls`` inside it."""

    __slots__ = ("_call", "_calls")

    def __init__(self, calls: list[InflightCall], call: InflightCall) -> None:
        self._calls = calls
        self._call = call

    def __enter__(self) -> None:
        self._calls.append(self._call)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self._calls.remove(self._call)


async def _deliver(
    send: Callable[[ServerSession], Coroutine[Any, Any, None]], session: ServerSession
) -> bool:
    with anyio.move_on_after(SEND_TIMEOUT_S):
        try:
            await send(session)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, RuntimeError, OSError):
            return False
        return True
    return False


def _same_connection(a: ServerSession, b: ServerSession) -> bool:
    # Each request gets its own ServerSession over the connection's shared client params object.
    return a is b or (a.client_params is not None and a.client_params is b.client_params)
