"""The express lane: tool calls relayed on a stdio unit's wire without the SDK's request machinery.

A proxied ``tools/call`` normally crosses the SDK twice (the gateway's server
session, then the unit's client session): a task, a cancel scope and a memory
stream per call on each side. The lane instead sends the call as the SDK's
typed `JSONRPCRequest` on the unit's `LineWriter` and takes the answer off its
`LineReader` (the ``intercept`` hook) before the session sees it; everything
else on that wire (handshake, pings, listings, the server's own requests and
notifications) stays with the `ClientSession`. Invariants:

* a lane call's wire id is a string ``vsm-x<N>``, unique per lane, never an
  integer: the SDK's own requests on the same wire use integers, so the two
  can never take each other's answers;
* the call's progress token downstream is its wire id; the server's progress
  for it is handed back with the caller's own token, in wire order, before
  the result (one reader delivers both);
* every call ends exactly once: with the server's answer (result or JSON-RPC
  error), with `CallTimeoutError` (no answer within the idle timeout, which
  each progress notification resets, or the absolute timeout; the server is
  then told ``notifications/cancelled``), or with `UnitUnavailableError` when
  the session goes away (`close`); a call the caller cancelled ends silently;
* one loop timer per lane, not per call, watches the deadlines: it is armed
  for the earliest deadline under way (every call has the same timeouts, so a
  call started later never has an earlier one, and progress only moves a
  deadline later); when it fires it ends the calls that are due and re-arms
  for the next;
* nothing here waits: `start`, the hook and the timer are plain callbacks on
  the event loop, and so must the ``done`` and ``progress`` callbacks be.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mcp_types as types

from vsm_mcp.errors import CallTimeoutError, UnitError, UnitUnavailableError
from vsm_mcp.fleet.call import ProgressSink
from vsm_mcp.fleet.wire import LineWriter

#: What a lane call ends with: the server's answer, or why there is none.
LaneOutcome = types.JSONRPCResponse | types.JSONRPCError | UnitError
DoneFn = Callable[[LaneOutcome], None]

_PROGRESS = "notifications/progress"
_WIRE_ID_PREFIX = "vsm-x"
#: A loop timer may fire this much before its time; a deadline this close counts as reached.
_TIMER_SLACK_S = 1e-3


@dataclass(slots=True, eq=False)
class LaneCall:
    """One call on the lane, from `ExpressLane.start` until it ends."""

    wire_id: str
    done: DoneFn
    progress: ProgressSink | None
    token: types.ProgressToken | None
    #: Loop time by which the call must have ended (the absolute timeout).
    hard_deadline: float
    #: Loop time by which the next sign of life is due (the idle timeout, capped by the hard one).
    deadline: float


class ExpressLane:
    """Tool calls of one unit session, relayed on its wire; see the module docstring."""

    def __init__(
        self,
        unit: str,
        writer: LineWriter,
        *,
        idle_timeout_s: float,
        call_timeout_s: float,
        on_timeout: Callable[[], None],
    ) -> None:
        self.unit = unit
        self._writer = writer
        self._idle = idle_timeout_s
        self._absolute = call_timeout_s
        self._on_timeout = on_timeout
        self._loop = asyncio.get_running_loop()
        self._ids = itertools.count(1)
        self._pending: dict[str, LaneCall] = {}
        #: Calls sent on the lane so far.
        self.sent = 0
        self._timer: asyncio.TimerHandle | None = None
        self.closed = False

    @property
    def pending(self) -> int:
        """Calls under way."""
        return len(self._pending)

    def start(
        self,
        params: dict[str, Any],
        done: DoneFn,
        progress: ProgressSink | None = None,
        token: types.ProgressToken | None = None,
    ) -> LaneCall | None:
        """Send ``tools/call`` with ``params`` (as they go downstream); with a caller's progress
        ``token``, the server is asked for progress and ``progress`` gets it.

        Returns None, having sent nothing, when the lane cannot take a call now (closed, or
        the pipe is congested): the caller then takes the SDK's path, which waits.
        """
        if self.closed or self._writer.congested:
            return None
        wire_id = f"{_WIRE_ID_PREFIX}{next(self._ids)}"
        if token is not None:
            meta = params.get("_meta")
            params = {
                **params,
                "_meta": {**(meta if isinstance(meta, dict) else {}), "progressToken": wire_id},
            }
        request = types.JSONRPCRequest(jsonrpc="2.0", id=wire_id, method="tools/call", params=params)
        if not self._writer.send_nowait(request):
            return None
        now = self._loop.time()
        call = LaneCall(
            wire_id, done, progress, token, now + self._absolute, now + min(self._idle, self._absolute)
        )
        self._pending[wire_id] = call
        self.sent += 1
        if self._timer is None:
            self._arm(call.deadline)
        return call

    def cancel(self, call: LaneCall, reason: str | None = None) -> None:
        """The caller gave up: tell the server, and end the call without an outcome."""
        if self._pending.pop(call.wire_id, None) is None:
            return
        self._send_cancel(call, reason)

    def intercept(self, message: types.JSONRPCMessage) -> bool:
        """`LineReader.intercept`: take the answers and progress of lane calls."""
        if isinstance(message, types.JSONRPCResponse | types.JSONRPCError):
            key = message.id
            call = self._pending.pop(key, None) if isinstance(key, str) else None
            if call is None:
                return False
            call.done(message)
            return True
        if isinstance(message, types.JSONRPCNotification) and message.method == _PROGRESS:
            params = message.params or {}
            token = params.get("progressToken")
            call = self._pending.get(token) if isinstance(token, str) else None
            if call is None:
                return False
            call.deadline = min(self._loop.time() + self._idle, call.hard_deadline)
            if call.progress is not None:
                call.progress({**params, "progressToken": call.token})
            return True
        return False

    def close(self, why: str) -> None:
        """The session is gone: every call under way ends with `UnitUnavailableError`."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        calls, self._pending = list(self._pending.values()), {}
        for call in calls:
            call.done(
                UnitUnavailableError(
                    f"server {self.unit!r} went away during tools/call ({why}); it is being restarted"
                )
            )

    # -- internals -------------------------------------------------------------
    def _arm(self, deadline: float) -> None:
        self._timer = self._loop.call_at(deadline, self._sweep)

    def _sweep(self) -> None:
        """The timer fired: end the calls that are due, re-arm for the earliest other deadline."""
        self._timer = None
        now = self._loop.time() + _TIMER_SLACK_S
        due = [call for call in self._pending.values() if call.deadline <= now]
        for call in due:
            self._expire(call, now)
        if self._timer is not None:  # a call started by an expiry's callbacks armed it: maybe too late
            self._timer.cancel()
            self._timer = None
        if self._pending and not self.closed:
            self._arm(min(call.deadline for call in self._pending.values()))

    def _expire(self, call: LaneCall, now: float) -> None:
        if self._pending.pop(call.wire_id, None) is None:
            return  # ended meanwhile (an earlier expiry's callbacks can end others)
        which = (
            f"absolute timeout of {self._absolute:g}s"
            if now >= call.hard_deadline
            else f"{self._idle:g}s without progress"
        )
        self._send_cancel(call, f"timed out: {which}")
        self._on_timeout()
        call.done(CallTimeoutError(f"server {self.unit!r} did not answer tools/call ({which})"))

    def _send_cancel(self, call: LaneCall, reason: str | None) -> None:
        params: dict[str, Any] = {"requestId": call.wire_id}
        if reason:
            params["reason"] = reason
        self._writer.send_nowait(
            types.JSONRPCNotification(jsonrpc="2.0", method="notifications/cancelled", params=params)
        )
