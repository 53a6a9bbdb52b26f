"""One tool call through the fleet: what goes in (`ToolCall`), what comes out (`Outcome`).

Every tool call a client makes, whichever face it comes in on, is one
`ToolCall` given to `Fleet.call`, which ends it with one `Outcome`. How it
travels to the server (the unit's express lane or its SDK session) is the
unit's choice (`Unit.call_tool`), never the caller's. Invariants:

* an outcome is a value, never raised: the server's result (``isError`` or
  not), the server's own JSON-RPC error, or the unit's failure;
* the caller's progress token stays the caller's: the server's progress
  reaches ``progress`` carrying it, in wire order, before the outcome;
* a call whose awaiting task is cancelled (`CallControl.cancel` stops it as
  its caller attached) ends with no outcome, and the server is told, with the
  caller's reason.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
from mcp.shared.exceptions import MCPError

from vsm_mcp.errors import UnitError

#: How a tool call ends: the server's result, the server's own error, or the unit's failure.
Outcome = dict[str, Any] | types.ErrorData | UnitError
#: Called once with a call's outcome (`vsm_mcp.fleet.fleet.Fleet.start`).
Done = Callable[[Outcome], None]
#: Receives the server's progress params, already carrying the caller's own token.
ProgressSink = Callable[[dict[str, Any]], None]
#: The params of a plain call, which a unit may send on its express lane; anything else (a task
#: request, ...) goes through its SDK session.
PLAIN_CALL_PARAMS = frozenset({"name", "arguments", "_meta"})


@dataclass(slots=True, eq=False)
class CallControl:
    """The caller's handle on a call under way: `cancel` stops the task awaiting it (as the caller
    said with `attach`) and gives the server the reason."""

    #: Why the caller gave up (passed to the server); set by `cancel`.
    reason: str | None = None
    cancelled: bool = False
    _stop: Callable[[], object] | None = field(default=None, repr=False)
    _also: list[Callable[[], object]] | None = field(default=None, repr=False)

    def attach(self, stop: Callable[[], object]) -> None:
        """How to stop the task awaiting the call (its ``cancel``, or a cancel scope's); called at
        once if the call was already cancelled."""
        self._stop = stop
        if self.cancelled:
            stop()

    def also(self, then: Callable[[], object]) -> None:
        """Call ``then`` too when the call is cancelled (after stopping it), after any registered
        before: its slot is freed, its span ended."""
        if self._also is None:
            self._also = [then]  # most calls register nothing: no list for them
        else:
            self._also.append(then)

    def cancel(self, reason: str | None = None) -> None:
        """The caller gave up: the call stops, the server is told ``reason``, no outcome follows."""
        self.cancelled, self.reason = True, reason
        if self._stop is not None:
            self._stop()
        for then in self._also or ():
            then()


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A client's ``tools/call`` for the tool published as ``public``."""

    public: str
    #: The caller's raw ``tools/call`` params (``name``, ``arguments``, ``_meta`` and anything else).
    params: dict[str, Any]
    #: Where the server's progress goes (asked for only when ``params`` carry a progress token).
    progress: ProgressSink | None = None
    control: CallControl = field(default_factory=CallControl)
    #: Who asks (a client session): calls waiting at a unit's door take turns by client.
    client: Hashable = None

    @classmethod
    def of(cls, public: str, arguments: dict[str, Any] | None = None) -> ToolCall:
        """A plain call of ``public`` with ``arguments``."""
        return cls(public, {"name": public, "arguments": arguments or {}})

    @property
    def token(self) -> types.ProgressToken | None:
        """The caller's progress token, if it asked for progress."""
        meta = self.params.get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        return token if isinstance(token, str | int) else None


def unwrap(outcome: Outcome) -> dict[str, Any]:
    """The result of a call that ended with one.

    Raises:
        MCPError: the server answered with an error.
        UnitError: the unit failed the call.
    """
    if isinstance(outcome, dict):
        return outcome
    if isinstance(outcome, types.ErrorData):
        raise MCPError.from_error_data(outcome)
    raise outcome
