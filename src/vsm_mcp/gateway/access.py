"""Who is asking, and may they: the principal of a request and the scope gate in front of every handler.

The HTTP face authenticates every request before the SDK sees it (Starlette's
`AuthenticationMiddleware` with the SDK's `BearerAuthBackend` over a
`vsm_mcp.gateway.keyring.Keyring`); the verified token rides on the request
(``ctx.request.scope["user"]``, the SDK's `AuthenticatedUser`). `principal_of`
reads it back inside any handler. A request with no HTTP request behind it
came over stdio (or an in-process client): its principal is the local user who
started the gateway, who holds every scope.

`ScopeGate` is a server middleware that runs before every request handler
(the gateway's fast path for proxied calls included):

* ``initialize``, ``ping``, ``server/discover`` and ``tools/list`` need no scope
  (`UNSCOPED_METHODS`); a
  ``tools/call`` needs its tool's scope (`Gateway.tool_scope`; through
  ``vsm_call_tool``, its target's); every other request needs ``call``;
* a request outside its principal's scopes fails with one JSON-RPC error whose
  message names the token, the scope and the tool or method
  (`vsm_mcp.core.access.lacks_scope`), and the denial goes to the `AccessAudit`
  when one is wired; `StoreAudit` stores it as a refused decision naming the
  token, at most once per token and target per `DENIAL_RECORD_EVERY_S` (with
  the count of attempts since), so a flood of attempts cannot fill the store;
* a request let through by ``manage`` or ``approve`` (it may change the fleet
  or answer S5) goes to the audit log by its token (`AccessAudit.allowed`;
  ``vsm-mcp audit``).
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import mcp_types as types
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from starlette.requests import HTTPConnection

from vsm_mcp.core.access import ALL_SCOPES, Principal, Scope, lacks_scope
from vsm_mcp.core.messages import Decision, OperatorAction
from vsm_mcp.core.ports import Store
from vsm_mcp.gateway.keyring import principal_of_token
from vsm_mcp.gateway.vsm_tools import VSM_CALL_TOOL

#: Requests any authenticated client may make: they open or probe a connection, or list the tools (what
#: exists, not what it may call: the SDK's client lists them to validate every call's result, so a token
#: holding only ``approve`` could not call ``vsm_acquire_capability`` through it otherwise).
UNSCOPED_METHODS = frozenset({"initialize", "ping", "server/discover", "tools/list"})
#: A stored denial per token and target at most this often; the attempts between are counted.
DENIAL_RECORD_EVERY_S = 10.0
#: Token-and-target pairs remembered for that; past it the stale ones go (tool names are the caller's).
DENIAL_KEYS = 1024
#: An HTTP request that reached a handler without a verified token (never, behind `http_app`): no scope.
NOBODY = Principal("anonymous", frozenset())


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (a bare container)
        return "unknown"


#: The principal of the stdio face: the local user who started the gateway.
LOCAL_OPERATOR = Principal(_local_user(), ALL_SCOPES, local=True)


def principal_of(ctx: ServerRequestContext[Any, Any]) -> Principal:
    """Who sent the request of ``ctx`` (see the module docstring)."""
    request = ctx.request
    if isinstance(request, HTTPConnection):
        user = request.scope.get("user")
        return principal_of_token(user.access_token) if isinstance(user, AuthenticatedUser) else NOBODY
    token = get_access_token()  # an HTTP handler running outside its request's scope
    return principal_of_token(token) if token is not None else LOCAL_OPERATOR


def profile_of(ctx: ServerRequestContext[Any, Any], default: str | None = None) -> str | None:
    """The profile a request is served through: its token's binding, else its path's
    (``/mcp/p/<name>``), else ``default`` (stdio's ``serve --profile``); None: every tool.

    The HTTP face refuses a bound token on another profile's path before any handler runs
    (`gateway.transport`); here the binding wins either way.
    """
    request = ctx.request
    if isinstance(request, HTTPConnection):
        principal = principal_of(ctx)
        path = request.path_params.get("profile")
        return principal.profile or (path if isinstance(path, str) else None)
    token = get_access_token()
    if token is not None:
        return principal_of_token(token).profile
    return default


def required_scope(
    method: str, params: Mapping[str, Any] | None, tool_scope: Callable[[str], Scope]
) -> tuple[Scope, str] | None:
    """The scope a request needs and what it is for (a tool's name, else the method); None: no scope."""
    if method in UNSCOPED_METHODS:
        return None
    if method == "tools/call" and isinstance(params, Mapping):
        name, arguments = params.get("name"), params.get("arguments")
        while name == VSM_CALL_TOOL and isinstance(arguments, Mapping):
            name, arguments = arguments.get("name"), arguments.get("arguments")
        if isinstance(name, str):
            return tool_scope(name), name
    return Scope.CALL, method


@dataclass(frozen=True, slots=True)
class Denial:
    """A request refused for want of a scope."""

    principal: Principal
    scope: Scope
    what: str
    method: str
    arguments: Any = None


class AccessAudit(Protocol):
    """Where denials go (the store's decisions, in production), and the requests a managing scope
    (``manage``, ``approve``) let through (the audit log)."""

    async def denied(self, denial: Denial) -> None: ...

    async def allowed(self, principal: Principal, scope: Scope, what: str, method: str) -> None: ...


class ScopeGate:
    """The server middleware that refuses requests outside their principal's scopes."""

    def __init__(self, tool_scope: Callable[[str], Scope], audit: AccessAudit | None = None) -> None:
        self.tool_scope = tool_scope
        self.audit = audit

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.request_id is None:  # a notification
            return await call_next(ctx)
        needed = required_scope(ctx.method, ctx.params, self.tool_scope)
        if needed is None:
            return await call_next(ctx)
        principal = principal_of(ctx)
        scope, what = needed
        if principal.allows(scope):
            if scope is not Scope.CALL and self.audit is not None:  # who changed the system, and how
                await self.audit.allowed(principal, scope, what, ctx.method)
            return await call_next(ctx)
        if self.audit is not None:
            arguments = ctx.params.get("arguments") if isinstance(ctx.params, Mapping) else None
            await self.audit.denied(Denial(principal, scope, what, ctx.method, arguments))
        raise MCPError(
            code=types.INVALID_REQUEST,
            message=lacks_scope(principal, scope, what),
            data={"token": principal.name, "scope": scope.value},
        )


class StoreAudit:
    """`AccessAudit` storing denials as refused decisions of the gateway (see the module docstring)."""

    def __init__(self, store: Store, wall_clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._wall_clock = wall_clock
        self._last: dict[tuple[str, str], float] = {}
        self._since: dict[tuple[str, str], int] = {}

    async def allowed(self, principal: Principal, scope: Scope, what: str, method: str) -> None:
        """A request that needed ``manage`` or ``approve`` goes to the audit log, by its token."""
        await self.store.record_action(
            OperatorAction(self._wall_clock(), principal.label, method, what, "mcp", f"scope {scope.value}")
        )

    async def denied(self, denial: Denial) -> None:
        key = (denial.principal.name, denial.what)
        now = self._wall_clock()
        attempts = self._since.get(key, 0) + 1
        if now - self._last.get(key, -DENIAL_RECORD_EVERY_S) < DENIAL_RECORD_EVERY_S:
            self._since[key] = attempts
            return
        if len(self._last) >= DENIAL_KEYS:
            for stale in [k for k, at in self._last.items() if now - at >= DENIAL_RECORD_EVERY_S]:
                del self._last[stale], self._since[stale]
        self._last[key], self._since[key] = now, 0
        await self.store.record_decision(
            Decision(
                at=now,
                system="gateway",
                subject=f"access:{denial.what}",
                choice="refuse",
                rule="scope",
                rationale=lacks_scope(denial.principal, denial.scope, denial.what),
                inputs={
                    "token": denial.principal.name,
                    "scopes": sorted(s.value for s in denial.principal.scopes),
                    "needed": denial.scope.value,
                    "method": denial.method,
                    "arguments": denial.arguments,
                    "attempts": attempts,
                },
            )
        )
