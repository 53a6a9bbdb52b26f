"""The capability tools on the gateway's MCP face: ``vsm_find_capability`` and ``vsm_acquire_capability``.

The gateway may not import the acquisition layer, nor this layer the gateway,
so the composition root hands the gateway a `CapabilityFace` as its
`ExtraTools`, and the face the gateway's way of telling who sent a request. The face is listed at once;
the `CapabilityService` behind it (catalog, registries, installer, sandbox)
is attached when the runtime has built it, and a call waits for that.

Asking a person: when vetting says ``ask`` (S5 does not auto-approve), the
question goes to the user of the client that called, as MCP elicitation (one
yes/no form) on that client's request, if it declared the elicitation
capability on a connection that can carry a server-to-client request.
Otherwise nobody can be asked, and the call is refused with a message naming
the two ways to approve: ``vsm-mcp acquire "QUERY" --yes`` from a terminal,
or ``[acquisition] auto_approve = true`` for vetted catalog packages.

Asking the client's model: when the calling client declared the sampling
capability on a connection that can carry a server-to-client request, the
face lets its model choose among the top candidates of ``vsm_find_capability``
and of ``vsm_acquire_capability`` without a server or package (one bounded
``sampling/createMessage`` on the client's request; `rerank`), unless the
settings turn it off. The results say which order was used and why.

Only an operator approves: the caller's token must hold ``approve`` (the
gateway's scope gate refuses ``vsm_acquire_capability`` to any other, and
this face asks no one without it); on stdio the local user who started the
gateway is the operator. The stored decision names who answered (the token,
or the local user) and the question exactly as they were shown it.

Invariants:

* the approver is bound per call (a context variable), so concurrent calls
  from different clients each ask their own user, and the autonomous loop
  (outside any call) asks nobody;
* ``vsm_find_capability`` works offline (the shipped catalog);
* an acquisition returns once its unit is ready in the running fleet, so the
  new ``SERVER__tool`` names are listed (``tools/list_changed`` sent) by the
  time the client reads the result; acquiring a package that already runs
  installs nothing and names the unit that serves it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from vsm_mcp.acquisition.mcp_tools import CAPABILITY_TOOLS, VSM_ACQUIRE_CAPABILITY, CapabilityTools
from vsm_mcp.acquisition.pipeline import AcquisitionPlan, Answer
from vsm_mcp.acquisition.rerank import ClientModel, Reply, RerankPolicy
from vsm_mcp.acquisition.service import Ask, CapabilityService, PromptApprover
from vsm_mcp.acquisition.vetting import Verdict
from vsm_mcp.core.access import Principal, Scope, lacks_scope
from vsm_mcp.errors import AcquisitionRefusedError, ConfigError, VsmError
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.registry import FleetRegistry

#: Who sent a request (the gateway's `vsm_mcp.gateway.access.principal_of`, given by the runtime:
#: the acquisition layer sits below the gateway).
PrincipalOf = Callable[[ServerRequestContext[Any, Any]], Principal]

#: Building the service loads and indexes the shipped catalog (about 2 s on one core).
SERVICE_READY_TIMEOUT_S = 60.0
#: A unit just verified to start must be ready in the fleet within this.
UNIT_READY_TIMEOUT_S = 60.0

#: The one question put to the user: accepting the form approves (the box is ticked by default).
APPROVAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approve": {
            "type": "boolean",
            "title": "Install this server",
            "description": "untick or decline to refuse",
            "default": True,
        }
    },
    "required": ["approve"],
}


@dataclass(slots=True)
class _Caller:
    """Who called, for the approver: their principal, how to ask them (None: nobody) and why not."""

    principal: Principal
    ask: Ask | None
    why_not: str = ""


_CALLER: ContextVar[_Caller | None] = ContextVar("vsm_mcp_capability_caller", default=None)


class CallerApprover:
    """The `Approver` of the runtime's one `CapabilityService`: asks whoever is calling now, if anyone."""

    async def approve(self, plan: AcquisitionPlan, verdict: Verdict) -> Answer | None:
        caller = _CALLER.get()
        if caller is None:
            return None  # outside any client's call (the autonomous loop): nobody to ask
        if caller.ask is None:
            return Answer(None, caller.principal.label, why_not=caller.why_not)
        answer = await PromptApprover(caller.ask, caller.principal.label).approve(plan, verdict)
        return Answer(answer.approved, answer.by, answer.shown, caller.why_not)


def _caller(ctx: ServerRequestContext[Any, Any], principal: Principal) -> _Caller:
    """How to ask the client of ``ctx`` (sent by ``principal``), through MCP elicitation on its
    request, if it may answer."""
    if not principal.allows(Scope.APPROVE):  # the scope gate refuses such a call before it gets here
        return _Caller(principal, None, lacks_scope(principal, Scope.APPROVE, "an approval"))
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return _Caller(
            principal, None, f"a {ctx.protocol_version} connection carries no server-to-client request"
        )
    wants = types.ClientCapabilities(elicitation=types.ElicitationCapability())
    if not ctx.session.check_client_capability(wants):
        return _Caller(principal, None, "this client did not declare the MCP elicitation capability")
    caller = _Caller(principal, None)

    async def ask(question: str) -> bool | None:
        try:
            answer = await ctx.session.elicit_form(
                question, APPROVAL_SCHEMA, related_request_id=ctx.request_id
            )
        except MCPError as exc:
            caller.why_not = f"the client could not ask its user ({exc.message})"
            return None
        if answer.action != "accept":
            return False  # declined, or dismissed without an answer
        return (answer.content or {}).get("approve", True) is True

    caller.ask = ask
    return caller


def _client_model(ctx: ServerRequestContext[Any, Any]) -> ClientModel:
    """How to ask the model of the client of ``ctx``, through MCP sampling on its request, if it may answer."""
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return ClientModel(None, f"a {ctx.protocol_version} connection carries no server-to-client request")
    if not ctx.session.check_client_capability(types.ClientCapabilities(sampling=types.SamplingCapability())):
        return ClientModel(None, "this client did not declare the MCP sampling capability")

    async def sample(system: str, prompt: str, max_tokens: int) -> Reply:
        # The request itself, not the session's create_message: that helper is marked deprecated
        # (sampling leaves the 2026-07-28 protocol), and this face only asks handshake-era clients.
        request = types.CreateMessageRequest(
            params=types.CreateMessageRequestParams(
                messages=[types.SamplingMessage(role="user", content=types.TextContent(text=prompt))],
                system_prompt=system,
                max_tokens=max_tokens,
                temperature=0.0,
            )
        )
        try:
            result = await ctx.session.send_request(
                request,
                types.CreateMessageResult,
                metadata=ServerMessageMetadata(related_request_id=ctx.request_id),
            )
        except MCPError as exc:
            return Reply(failure=f"the client did not sample ({exc.message})")
        except ValidationError:
            return Reply(failure="the client's answer was not a sampling result")
        if not isinstance(result.content, types.TextContent):
            return Reply(
                model=result.model, failure=f"the client's model ({result.model}) answered without text"
            )
        return Reply(result.content.text, result.model)

    return ClientModel(sample)


#: How a refusal says its question was kept for an operator (`approvals.QueuedApprover`).
_KEPT = re.compile(r"kept for an operator as approval (\d+)")


class CapabilityFace:
    """`ExtraTools` for the gateway: the capability tools over the runtime's service and fleet."""

    def __init__(
        self,
        fleet: Fleet,
        registry: FleetRegistry,
        principal_of: PrincipalOf,
        rerank: RerankPolicy | None = None,
    ) -> None:
        """``rerank``: whether and how the calling client's model may choose among the top
        candidates (default: asked, `RerankPolicy`)."""
        self.fleet = fleet
        self.registry = registry
        self._principal_of = principal_of
        self.rerank = rerank if rerank is not None else RerankPolicy()
        self.approver = CallerApprover()
        self.service: CapabilityService | None = None
        self._tools: CapabilityTools | None = None
        self._ready = anyio.Event()
        self._unavailable = ""

    def attach(self, service: CapabilityService) -> None:
        """The service is built: calls may run."""
        self.service = service
        self._tools = CapabilityTools(service, self.rerank)
        self._ready.set()

    def fail(self, reason: str) -> None:
        """The service cannot be built: every call says ``reason``."""
        self._unavailable = reason
        self._ready.set()

    def definitions(self) -> list[dict[str, Any]]:
        return CAPABILITY_TOOLS

    def scope(self, name: str) -> Scope:
        """Acquiring needs ``approve`` (it changes the fleet on an answer); finding needs ``call``."""
        return Scope.APPROVE if name == VSM_ACQUIRE_CAPABILITY else Scope.CALL

    async def call(
        self, name: str, arguments: dict[str, Any], ctx: ServerRequestContext[Any, Any]
    ) -> dict[str, Any]:
        """Run a capability tool for the client of ``ctx``.

        Raises:
            VsmError: bad arguments, refused (the message says how to approve), or failed and rolled back.
        """
        with anyio.move_on_after(SERVICE_READY_TIMEOUT_S):
            await self._ready.wait()
        if self._tools is None or self.service is None:
            raise VsmError(
                f"{name}: capability acquisition is unavailable: {self._unavailable or 'not ready'}"
            )
        model = _client_model(ctx) if self.rerank.enabled else None
        if name != VSM_ACQUIRE_CAPABILITY:
            return await self._tools.call(name, arguments, model=model)
        caller = _caller(ctx, self._principal_of(ctx))
        token = _CALLER.set(caller)
        try:
            return await self._acquire(self.service, self._tools, arguments, caller, model)
        finally:
            _CALLER.reset(token)

    async def _acquire(
        self,
        service: CapabilityService,
        tools: CapabilityTools,
        arguments: dict[str, Any],
        caller: _Caller,
        model: ClientModel | None,
    ) -> dict[str, Any]:
        query = arguments.get("query")
        plan, ranking = await tools.plan(arguments, model=model)
        existing = await service.acquirer.installed_unit(plan.candidate)
        if existing is not None:
            return {
                "server": existing,
                "package": plan.candidate.ref,
                "already_installed": True,
                "tools": [r.public for r in self.fleet.routes.tools.values() if r.unit == existing],
                **ranking.json(),
            }
        try:
            result = await tools.acquire(plan, ranking)
        except AcquisitionRefusedError as exc:
            if exc.rule == "operator" and (caller.ask is None or caller.why_not):
                kept = _KEPT.search(str(exc))
                how = (
                    f"the question waits for an operator as approval {kept.group(1)} (the operator "
                    f"page, or `vsm-mcp approvals approve {kept.group(1)}`)"
                    if kept
                    else f'approve it with `vsm-mcp acquire "{query}" --yes`'
                )
                raise AcquisitionRefusedError(
                    "operator",
                    f"S5 asks a person to approve this, but nobody can be asked here: "
                    f"{caller.why_not or 'this client cannot be asked'}. {how[0].upper()}{how[1:]}; "
                    "or let S5 approve vetted catalog packages with `[acquisition] auto_approve = true` "
                    "in the settings file",
                ) from exc
            raise
        await self._wait_ready(str(result["server"]))
        return {**result, "already_installed": False}

    async def _wait_ready(self, unit: str) -> None:
        """Start ``unit`` in the running fleet now (the registry sync would within a second) and wait."""
        spec = (await self.registry.desired()).get(unit)
        if spec is None:
            raise VsmError(f"{unit!r} was acquired but is not in the fleet registry")
        if unit not in self.fleet.units:
            with contextlib.suppress(ConfigError):  # the registry sync added it first
                await self.fleet.add(spec)
        try:
            with anyio.fail_after(UNIT_READY_TIMEOUT_S):
                await self.fleet.wait_ready(unit)
        except TimeoutError:
            raise VsmError(
                f"{unit!r} was acquired but did not become ready within {UNIT_READY_TIMEOUT_S:g} s; "
                f"see `vsm-mcp servers logs {unit}`"
            ) from None
