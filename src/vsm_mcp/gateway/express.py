"""The upstream half of the express lane: plain tool calls on the stdio face skip the SDK's session.

`serve_stdio` installs `ExpressRelay.intercept` on the client's `LineReader`.
Once the client's handshake is done (the relay sees ``initialize`` with a
handshake-era protocol version, then ``notifications/initialized``, and passes
both on to the session), a ``tools/call`` of a routed tool
whose params are only ``name``, ``arguments`` and ``_meta`` is given to
`Fleet.start` (no task of its own: the answer is written from the callback
that ends the call) and answered on the client's
`LineWriter` as the SDK's typed `JSONRPCResponse` / `JSONRPCError` with the
client's own id; the server's progress goes back with the client's own token.
(How the fleet's unit sends it on, on its express lane or its SDK session, is
the unit's choice.) Every other message goes to the SDK's server session
unchanged. Invariants:

* a relayed call feeds the demand sink exactly once, as on the full path;
* a relayed call is answered exactly once, unless the client cancelled it
  (``notifications/cancelled`` for its id), which is passed downstream and
  then ends it silently, as the SDK's session does;
* a request id already in flight here is never taken twice (the SDK's session
  gets the duplicate and answers it as it answers any);
* a unit's failure reaches the client as the full path reports it
  (`unit_error_data`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Protocol

import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from vsm_mcp.errors import CallTimeoutError, UnitError
from vsm_mcp.fleet.call import PLAIN_CALL_PARAMS, CallControl, Outcome, ToolCall
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.routing import Route
from vsm_mcp.fleet.wire import LineWriter
from vsm_mcp.gateway.profiles import ProfileView
from vsm_mcp.gateway.search_demand import STDIO_CLIENT


class RelayedGateway(Protocol):
    """What the relay needs of the gateway (`vsm_mcp.gateway.server.Gateway`, which imports this module)."""

    fleet: Fleet
    default_profile: str | None

    def view(self, profile: str | None) -> ProfileView: ...

    def note_call(self, route: Route, client: Hashable = ..., shown: str | None = None) -> None: ...


class ExpressRelay:
    """Relays plain tool calls from the stdio client to the fleet's express lanes."""

    def __init__(self, gateway: RelayedGateway, writer: LineWriter) -> None:
        self._gateway = gateway
        self._writer = writer
        #: Set once the client's handshake is done (handshake-era connections only).
        self.armed = False
        self._handshake: object = None
        self._inflight: dict[types.RequestId, CallControl] = {}
        #: Calls taken on the lane so far.
        self.relayed = 0

    def intercept(self, message: types.JSONRPCMessage) -> bool:
        """`LineReader.intercept` on the client's input: take plain tool calls and their cancels."""
        if not self.armed:
            self._watch_handshake(message)
            return False
        if isinstance(message, types.JSONRPCRequest):
            return message.method == "tools/call" and self._call(message)
        if isinstance(message, types.JSONRPCNotification) and message.method == "notifications/cancelled":
            params = message.params or {}
            request_id = params.get("requestId")
            control = self._inflight.pop(request_id, None) if isinstance(request_id, str | int) else None
            if control is None:
                return False
            reason = params.get("reason")
            control.cancel(reason if isinstance(reason, str) else None)
            return True
        return False

    def _watch_handshake(self, message: types.JSONRPCMessage) -> None:
        if isinstance(message, types.JSONRPCRequest) and message.method == "initialize":
            self._handshake = (message.params or {}).get("protocolVersion")
        elif (
            isinstance(message, types.JSONRPCNotification)
            and message.method == "notifications/initialized"
            and isinstance(self._handshake, str)
            and self._handshake not in MODERN_PROTOCOL_VERSIONS
        ):
            self.armed = True

    def _call(self, request: types.JSONRPCRequest) -> bool:
        params = request.params
        request_id = request.id
        if (
            not isinstance(params, dict)
            or request_id in self._inflight
            or not params.keys() <= PLAIN_CALL_PARAMS
        ):
            return False
        name, meta = params.get("name"), params.get("_meta")
        if not isinstance(name, str) or not isinstance(params.get("arguments", {}), dict):
            return False
        if meta is not None and not isinstance(meta, dict):
            return False
        gateway = self._gateway
        try:
            exposed = gateway.view(gateway.default_profile).resolve(name)
        except MCPError:
            return False  # the profile is gone: the full path refuses the call
        if exposed is None:
            return False  # unknown: the full path says so and records unmatched demand
        route = exposed.route
        shown = name
        if exposed.public != name:  # renamed by the stdio face's profile
            name, params = exposed.public, {**params, "name": exposed.public}
        call = ToolCall(name, params, progress=self._progress, client=STDIO_CLIENT)
        unit = route.unit
        tracer = gateway.fleet.tracer
        token: object = None
        end_span: Callable[[bool, str], None] | None = None
        if tracer is not None:  # the SDK's server span is not there on this path: this is it
            token, end_span = tracer.serve(shown, meta)
            ending = end_span
            call.control.also(lambda: ending(False, "cancelled by the client"))

        def reply(outcome: Outcome) -> None:
            if self._inflight.pop(request_id, None) is None:
                return  # cancelled by the client: no answer
            message: types.JSONRPCMessage
            if isinstance(outcome, dict):
                message = types.JSONRPCResponse(jsonrpc="2.0", id=request_id, result=outcome)
            else:
                error = outcome if isinstance(outcome, types.ErrorData) else unit_error_data(outcome, unit)
                message = types.JSONRPCError(jsonrpc="2.0", id=request_id, error=error)
            self._writer.send_nowait(message)
            if end_span is not None:
                failed = not isinstance(outcome, dict) or outcome.get("isError") is True
                end_span(not failed, "" if not failed else "the call failed")

        self._inflight[request_id] = call.control
        try:
            gateway.fleet.start(call, reply)
        except KeyError:
            del self._inflight[request_id]
            if end_span is not None:
                end_span(False, "not routed")
            return False  # not the fleet's now (routes change): the full path says why
        finally:
            if tracer is not None:
                tracer.detach(token)
        self.relayed += 1
        gateway.note_call(route, STDIO_CLIENT, shown)
        return True

    def close(self) -> None:
        """The client is gone: the calls under way have nobody to answer (their servers are told)."""
        controls, self._inflight = list(self._inflight.values()), {}
        for control in controls:
            control.cancel("the client went away")

    def _progress(self, params: dict[str, Any]) -> None:
        self._writer.send_nowait(
            types.JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params=params)
        )


def unit_error_data(error: UnitError, unit: str) -> types.ErrorData:
    """A unit's failure as the client sees it: `REQUEST_TIMEOUT` for timeouts, else `INTERNAL_ERROR`."""
    code = types.REQUEST_TIMEOUT if isinstance(error, CallTimeoutError) else types.INTERNAL_ERROR
    return types.ErrorData(code=code, message=str(error), data={"server": unit})
