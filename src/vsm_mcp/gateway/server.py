"""The upstream face: one MCP server (the SDK's low-level `Server`) in front of the fleet.

Proxying is faithful: requests are forwarded with the client's raw params
(tool and prompt names translated), results and the servers' own JSON-RPC
errors come back unchanged, progress is relayed against the client's token,
a client's cancellation cancels the downstream request (the SDK sends
``notifications/cancelled``), and server-to-client requests (sampling,
elicitation, roots) and log messages are relayed to the client whose call the
unit is serving; outside a call, sampling and elicitation are refused (there is
no one to ask: the most recent client may be another person's) and roots come
from the most recent client (servers ask them at start). Invariants:

* every ``tools/call`` feeds the demand sink exactly once: a routed call is
  matched demand in its tool's category, an unknown name is unmatched demand;
* a search (`vsm_search_tools`, or an own tool called with a ``query``) is
  demand in its query's category, answered only when the same client then
  calls a tool it was shown (`gateway.search_demand`): answered, it adds
  nothing beyond that call; unanswered (no hit, its window over, the client
  gone), it is one unmatched event, so searches never raise coverage;
* ``clients`` in the status counts connected client sessions: the stdio
  client while it is connected, and the HTTP face's open sessions (a
  stateless 2026-07-28 client holds none between requests);
* the VSM tools' names are reserved and always win, and so are the names of
  the `ExtraTools` (capability acquisition), listed right after them; a call
  of one with a ``query`` is demand like a `vsm_search_tools` query;
* a unit's failure reaches the client as one JSON-RPC error naming the
  server and the reason (`REQUEST_TIMEOUT` for timeouts, `INTERNAL_ERROR`
  otherwise);
* every request passes the `ScopeGate` (`gateway.access`) first: a client
  whose token lacks the scope a method or tool needs gets one error naming
  the token, the scope and the tool, and nothing else runs;
* a request served through a profile (``/mcp/p/<name>``, a token bound to
  one, or ``serve --profile`` on stdio; `gateway.profiles`) lists, searches,
  calls and reads only what the profile admits; a tool outside it is unknown
  there, exactly as a name no server has, and a profile that does not exist
  admits nothing.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any, NoReturn

import anyio
import mcp_types as types
from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server.caching import CacheHint
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp.shared.subscriptions import (
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ToolsListChanged,
)
from mcp_types.methods import CACHEABLE_METHODS
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from vsm_mcp.core.access import Scope
from vsm_mcp.core.nesting import mark_own
from vsm_mcp.errors import UnitError, VsmError
from vsm_mcp.fleet.call import Outcome, ToolCall
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.routing import Route
from vsm_mcp.gateway.access import AccessAudit, ScopeGate, principal_of, profile_of
from vsm_mcp.gateway.express import ExpressRelay, unit_error_data
from vsm_mcp.gateway.ports import (
    DecisionSource,
    DemandSink,
    ExtraTools,
    LearnedRouting,
    SelfSource,
    StatusSource,
)
from vsm_mcp.gateway.profiles import ProfileSource, ProfileView
from vsm_mcp.gateway.search import ToolIndex
from vsm_mcp.gateway.search_demand import STDIO_CLIENT, PendingSearches, client_key
from vsm_mcp.gateway.upstream import Upstream
from vsm_mcp.gateway.vsm_tools import (
    DECISIONS_LISTED,
    RESOURCE_DECISIONS,
    RESOURCE_FLEET,
    RESOURCE_SELF,
    RESOURCE_STATUS,
    RESOURCE_VARIETY,
    VSM_PROMPTS,
    VSM_RESOURCES,
    VSM_SEARCH_TOOLS,
    VSM_SELF_BRIEF,
    VSM_STATUS,
    VSM_TEMPLATES,
    VSM_TOOL_NAMES,
    VSM_TOOLS,
    VSM_VARIETY,
)
from vsm_mcp.vsm.events import UnitState

RESOURCE_NOT_FOUND = -32002
#: Listen streams (2026-07-28 ``subscriptions/listen``) one principal (a token, the local
#: operator) may hold open at once; the SDK's own bound counts every principal's together, so
#: one token could otherwise take all of them.
MAX_LISTEN_STREAMS_PER_PRINCIPAL = 16
#: The first tools/list waits this long at most for the configured servers' first start
#: (npx/uvx launchers take seconds); clients' initialize timeouts are longer.
STARTUP_LIST_WAIT_S = 10.0
Ctx = ServerRequestContext[Any, Any]


class _GatewayServer(Server[Any]):
    """The SDK server, announcing list_changed for tools, resources and prompts on every transport."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options
            or NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True),
            experimental_capabilities,
            extensions,
        )


class Gateway:
    """VSM-MCP as one MCP server; attach it to a running `Fleet`."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        demand: DemandSink | None = None,
        status: StatusSource | None = None,
        extra: ExtraTools | None = None,
        audit: AccessAudit | None = None,
        profiles: ProfileSource | None = None,
        profile: str | None = None,
        decisions: DecisionSource | None = None,
        self_source: SelfSource | None = None,
        routing: LearnedRouting | None = None,
        name: str = "vsm-mcp",
        version: str = "0.1.0",
        tracing: bool = False,
    ) -> None:
        self.fleet = fleet
        self.profiles = profiles
        #: The profile of requests that name none (stdio's ``serve --profile``); None: every tool.
        self.default_profile = profile
        self._views: dict[str | None, tuple[tuple[int, int], ProfileView]] = {}
        self._routes_generation = 0
        self.demand = demand
        self.status_source = status
        #: Where ``vsm://decisions`` is read (the store); None: not served.
        self.decisions = decisions
        #: The self-model behind ``vsm://self`` and the ``vsm_self_brief`` prompt; None: not served.
        self.self_source = self_source
        #: Orders search hits by what calls taught (`bridge.routing`); None: by their words alone.
        self.routing = routing
        self.extra = extra
        self.extra_tools = [mark_own(t) for t in extra.definitions()] if extra is not None else []
        self.extra_names = frozenset(str(t["name"]) for t in self.extra_tools)
        #: Scopes of the gateway's own tools beyond ``call`` (a fleet-changing tool registers ``manage``).
        self.tool_scopes: dict[str, Scope] = {}
        self.gate = ScopeGate(self.tool_scope, audit)
        self.upstream = Upstream()
        #: Searches waiting for the call that answers them (`gateway.search_demand`).
        self.searches = PendingSearches(lambda category, matched: self._record(category, matched=matched))
        #: Clients connected over stdio now (0 or 1), and the HTTP face's open sessions when it serves.
        self.stdio_clients = 0
        self.http_sessions: Callable[[], int] | None = None
        #: The stdio face's express relay while one is serving (`gateway.express`).
        self.express: ExpressRelay | None = None
        self.index = ToolIndex(())
        self.started_at = time.time()
        self.list_changed_sent = 0
        self.server = _GatewayServer(
            name,
            version=version,
            # 2026-07-28 clients: results may be cached, but the fleet can change at any moment.
            cache_hints={m: CacheHint(ttl_ms=0, scope="private") for m in CACHEABLE_METHODS},  # type: ignore[misc]
            instructions="VSM-MCP: many MCP servers behind one. Use vsm_search_tools to find a tool "
            "across all of them, then call it by name (or via vsm_call_tool).",
            get_tool_input_schema=self._input_schema,
        )
        self._own_schemas: dict[str, Mapping[str, Any]] = {
            str(t["name"]): t["inputSchema"] for t in (*VSM_TOOLS, *self.extra_tools) if "inputSchema" in t
        }

        # Registered by method: handlers return wire dicts, passed through as the servers sent them
        # (and logging/setLevel this way avoids the constructor keyword's deprecation warning, SEP-2577).
        def add(method: str, params_type: type[Any], handler: Callable[[Ctx, Any], Awaitable[Any]]) -> None:
            self.server.add_request_handler(method, params_type, _envelope(handler))

        add("tools/list", types.PaginatedRequestParams, self._list_tools)
        add("tools/call", types.CallToolRequestParams, self._call_tool)
        add("resources/list", types.PaginatedRequestParams, self._list_resources)
        add("resources/templates/list", types.PaginatedRequestParams, self._list_templates)
        add("resources/read", types.ReadResourceRequestParams, self._read_resource)
        add("resources/subscribe", types.SubscribeRequestParams, self._subscribe)
        add("resources/unsubscribe", types.UnsubscribeRequestParams, self._unsubscribe)
        add("prompts/list", types.PaginatedRequestParams, self._list_prompts)
        add("prompts/get", types.GetPromptRequestParams, self._get_prompt)
        add("completion/complete", types.CompleteRequestParams, self._complete)
        add("logging/setLevel", types.SetLevelRequestParams, self._set_level)
        # 2026-07-28 clients hear about changes on a subscriptions/listen stream instead.
        self.events = InMemorySubscriptionBus()
        self.listen = ListenHandler(self.events)  # `close()` ends the listen streams when the face stops
        self._listening: dict[str, int] = {}  # open listen streams per principal
        self.server.add_request_handler(
            "subscriptions/listen", types.SubscriptionsListenRequestParams, self._listen
        )
        self.server.add_notification_handler(
            "notifications/initialized", types.NotificationParams, self._initialized
        )
        # The SDK's OpenTelemetry middleware is a no-op without an exporter but costs a span per
        # message; a proxy pays it twice per call, so it is dropped (documented opt-out) unless
        # traces are exported (``tracing``): then it is each request's SERVER span, first of all.
        if not tracing:
            self.server.middleware = [
                m for m in self.server.middleware if not isinstance(m, OpenTelemetryMiddleware)
            ]
        # The scope gate first: nothing, the fast path for proxied calls included, runs before it.
        self.server.middleware.append(self.gate)
        self.server.middleware.append(self._direct_route)
        fleet.listener = self
        self._reindex()

    # -- fleet -> clients ----------------------------------------------------
    def _reindex(self) -> None:
        routes = self.fleet.routes
        self._routes_generation += 1
        self.index = ToolIndex(routes.tools.values())
        if self.demand is not None:
            self.demand.set_capabilities({self._category(r) for r in routes.tools.values()})

    async def fleet_changed(self) -> None:
        self._reindex()
        for event in (ToolsListChanged(), ResourcesListChanged(), PromptsListChanged()):
            await self.events.publish(event)
        self.list_changed_sent += await self.upstream.broadcast(lambda s: s.send_tool_list_changed())
        await self.upstream.broadcast(lambda s: s.send_resource_list_changed())
        await self.upstream.broadcast(lambda s: s.send_prompt_list_changed())

    async def unit_notification(self, unit: str, notification: types.ServerNotification) -> None:
        if isinstance(notification, types.ResourceUpdatedNotification):
            await self.upstream.to_subscribers(notification.params.uri, notification)
            await self.events.publish(ResourceUpdated(uri=notification.params.uri))
        elif isinstance(notification, types.LoggingMessageNotification | types.ElicitCompleteNotification):
            call = self.upstream.current(unit)
            if call is not None:
                await call.session.send_notification(notification, related_request_id=call.request_id)
            else:
                await self.upstream.broadcast(lambda s: s.send_notification(notification))

    async def unit_request(
        self, unit: str, request: types.CreateMessageRequest | types.ElicitRequest | types.ListRootsRequest
    ) -> Any:
        call = self.upstream.current(unit)
        if call is not None:
            session, related = call.session, call.request_id
        elif not isinstance(request, types.ListRootsRequest):
            # Outside a call there is no one to ask: the most recent client may be another
            # person's, who never used this server (a hostile one would phish them).
            what = "sampling" if isinstance(request, types.CreateMessageRequest) else "elicitation"
            return types.ErrorData(
                code=types.INVALID_REQUEST,
                message=f"the gateway relays {what} only for a call this server is serving, "
                "and none is in progress",
            )
        elif self.upstream.sessions:
            session, related = self.upstream.sessions[-1], None  # roots: a server asks them at start
        else:
            return types.ErrorData(
                code=types.INVALID_REQUEST, message="no client is connected to the gateway"
            )
        result_type: type[Any]
        if isinstance(request, types.CreateMessageRequest):
            p = request.params
            with_tools = p.tools is not None or p.tool_choice is not None
            result_type = types.CreateMessageResultWithTools if with_tools else types.CreateMessageResult
        elif isinstance(request, types.ElicitRequest):
            result_type = types.ElicitResult
        else:
            result_type = types.ListRootsResult
        try:
            return await session.send_request(
                request, result_type, metadata=ServerMessageMetadata(related_request_id=related)
            )
        except MCPError as exc:
            return exc.error

    # -- profiles --------------------------------------------------------------
    def view(self, profile: str | None) -> ProfileView:
        """The fleet as ``profile`` shows it (None: everything), rebuilt only when routes or profiles change.

        Raises:
            MCPError: ``profile`` does not exist (it admits nothing).
        """
        key = (self._routes_generation, self.profiles.generation if self.profiles is not None else 0)
        cached = self._views.get(profile)
        if cached is not None and cached[0] == key:
            return cached[1]
        found = None
        if profile is not None:
            found = self.profiles.profile(profile) if self.profiles is not None else None
            if found is None:
                raise MCPError(
                    code=types.INVALID_REQUEST,
                    message=f"profile {profile!r} does not exist (see `vsm-mcp profiles list`)",
                )
        view = ProfileView(found, self.fleet.routes, [*VSM_TOOLS, *self.extra_tools])
        if len(self._views) > 256:  # profiles removed long ago
            self._views.clear()
        self._views[profile] = (key, view)
        return view

    def view_of(self, ctx: Ctx) -> ProfileView:
        """The view of the request of ``ctx`` (see `gateway.access.profile_of`)."""
        return self.view(profile_of(ctx, self.default_profile))

    # -- handlers: tools -----------------------------------------------------
    def tool_scope(self, name: str) -> Scope:
        """The scope a token needs to call tool ``name``: an own tool's registered one, else ``call``."""
        if self.extra is not None and name in self.extra_names:
            return self.extra.scope(name)
        return self.tool_scopes.get(name, Scope.CALL)

    def _input_schema(self, name: str) -> Mapping[str, Any] | None:
        """A tool's input schema by public name (None: unknown, dispatch says so).

        The SDK asks on every 2026-07-28 streamable HTTP ``tools/call`` (to check its
        ``Mcp-Param-*`` headers); without this it builds the whole ``tools/list`` each time.
        """
        route = self.fleet.routes.tools.get(name)
        if route is None:
            own = self._own_schemas.get(name)
            if own is not None:
                return own
            # A profile's new name for a tool: its schema when exactly one view knows that name.
            routes = {
                id(c[1].exposed[name].route): c[1].exposed[name].route
                for c in self._views.values()
                if name in c[1].exposed
            }
            if len(routes) != 1:
                return None
            (route,) = routes.values()
        schema = route.definition.get("inputSchema")
        return schema if isinstance(schema, Mapping) else None

    async def _initialized(self, ctx: Ctx, params: types.NotificationParams) -> None:
        self.upstream.connected(ctx.session)

    async def _list_tools(self, ctx: Ctx, params: types.PaginatedRequestParams | None) -> dict[str, Any]:
        # A client that lists once at start (and ignores list_changed) sees the configured
        # servers' tools, not an empty fleet that is still starting.
        await self.fleet.settled(STARTUP_LIST_WAIT_S)
        return {"tools": list(self.view_of(ctx).tools)}

    async def _direct_route(self, ctx: Ctx, call_next: CallNext) -> HandlerResult:
        """Forward a well-formed call of a routed tool as it came, and its result as it comes back.

        Only for initialized handshake-era connections and params whose shape is beyond doubt;
        everything else takes the SDK's full path (validation, ``_call_tool``). The client on the
        other side validates the result, as it would talking to the server directly.
        """
        params = ctx.params
        if (
            ctx.method != "tools/call"
            or ctx.request_id is None
            or ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
            or ctx.session.client_params is None
            or not isinstance(params, dict)
        ):
            return await call_next(ctx)
        name, arguments, meta = params.get("name"), params.get("arguments", {}), params.get("_meta")
        if (
            not isinstance(name, str)
            or not isinstance(arguments, dict)
            # The SDK's send path takes ``_meta`` as an object: any other (``[5]``, ``"x"``) raised there.
            or not (meta is None or isinstance(meta, dict))
        ):
            return await call_next(ctx)
        view = self.view_of(ctx)
        if view.resolve(name) is None:
            return await call_next(ctx)
        result: HandlerResult = await self._proxy_call(ctx, view, name, arguments, params)
        return result

    async def _call_tool(self, ctx: Ctx, params: types.CallToolRequestParams) -> Any:
        arguments = dict(params.arguments or {})
        view = self.view_of(ctx)
        if view.admits_own(params.name):
            if params.name in VSM_TOOL_NAMES:
                return await self._vsm_tool(ctx, view, params.name, arguments)
            return await self._extra_tool(ctx, params.name, arguments)
        return await self._proxy_call(ctx, view, params.name, arguments, dict(ctx.params or {}))

    async def _proxy_call(
        self, ctx: Ctx, view: ProfileView, name: str, arguments: dict[str, Any], raw: dict[str, Any]
    ) -> Any:
        exposed = view.resolve(name)
        if exposed is None:
            self._unknown_tool(view, name)
        route = exposed.route
        self.note_call(route, self._client(ctx), name)
        if exposed.public != name:
            name, raw = exposed.public, {**raw, "name": exposed.public}

        call = ToolCall(name, raw, client=self._client(ctx))
        with self.upstream.serving(route.unit, ctx.session, ctx.request_id):
            if call.token is None:
                outcome = await self.fleet.call(call)
            else:
                outcome = await _reporting_progress(ctx, call, self.fleet)
        if isinstance(outcome, dict):
            return outcome
        if isinstance(outcome, types.ErrorData):
            raise MCPError.from_error_data(outcome)
        raise MCPError.from_error_data(unit_error_data(outcome, route.unit)) from outcome

    def _unknown_tool(self, view: ProfileView, name: str) -> NoReturn:
        """Refuse a call of ``name``, which ``view`` does not have, saying why.

        A name no server has is unmatched demand; a tool outside the view's profile is not (the
        fleet has it: acquiring it again would not help), and the refusal does not say it exists.

        Raises:
            MCPError: always.
        """
        if name not in self.fleet.routes.tools:
            self._record(name, matched=False)
        where = f"profile {view.profile.name!r}" if view.profile is not None else "this gateway"
        if view.profile is None:
            why = self.fleet.why_unrouted(name)
            if why is not None:  # a unit that cannot start is never just "unknown tool"
                raise MCPError(code=types.INVALID_PARAMS, message=f"Tool {name!r} is not available: {why}")
        raise MCPError(
            code=types.INVALID_PARAMS,
            message=f"Unknown tool: {name!r}. Use {VSM_SEARCH_TOOLS} to find one of the "
            f"{len(view.exposed)} tools of {where}.",
        )

    async def _vsm_tool(self, ctx: Ctx, view: ProfileView, name: str, arguments: dict[str, Any]) -> Any:
        if name == VSM_STATUS:
            return _json_result(self.status(view))
        if name == VSM_VARIETY:
            return _json_result(self.variety())
        if name == VSM_SEARCH_TOOLS:
            query = str(arguments.get("query", ""))
            limit = max(1, min(int(arguments.get("limit", 10)), 50))
            hits = view.index.search(query, limit=max(limit, 10))  # learning may lift one from below
            if self.routing is not None:
                hits = await self.routing.rerank(query, hits)
            hits = hits[:limit]
            best = view.exposed[hits[0].name].route if hits else None
            self._record_query(self._client(ctx), query, best, [h.name for h in hits])
            tools = [
                {
                    "name": h.name,
                    "server": h.unit,
                    "score": h.score,
                    **({"reliability": h.reliability} if h.reliability is not None else {}),
                    "description": h.description,
                    "inputSchema": view.exposed[h.name].route.definition.get("inputSchema", {}),
                }
                for h in hits
            ]
            return _json_result({"query": query, "matches": len(tools), "tools": tools})
        # vsm_call_tool
        target = str(arguments.get("name", ""))
        inner = arguments.get("arguments") or {}
        if view.admits_own(target):
            if target in VSM_TOOL_NAMES:
                return await self._vsm_tool(ctx, view, target, dict(inner))
            return await self._extra_tool(ctx, target, dict(inner))
        raw = {"name": target, "arguments": inner}
        meta = (ctx.params or {}).get("_meta")
        if meta is not None:
            raw["_meta"] = meta
        return await self._proxy_call(ctx, view, target, dict(inner), raw)

    async def _extra_tool(self, ctx: Ctx, name: str, arguments: dict[str, Any]) -> Any:
        assert self.extra is not None
        query = arguments.get("query")
        if isinstance(query, str):
            view = self.view_of(ctx)
            hits = view.index.search(query, limit=10)
            best = view.exposed[hits[0].name].route if hits else None
            self._record_query(self._client(ctx), query, best, [h.name for h in hits])
        try:
            return _json_result(await self.extra.call(name, arguments, ctx))
        except VsmError as exc:
            return {"content": [{"type": "text", "text": str(exc)}], "isError": True}

    # -- handlers: resources -------------------------------------------------
    async def _list_resources(self, ctx: Ctx, params: types.PaginatedRequestParams | None) -> dict[str, Any]:
        await self.fleet.settled(STARTUP_LIST_WAIT_S)
        view, routes = self.view_of(ctx), self.fleet.routes
        listed = [
            r for r in routes.resource_list if view.admits_unit(routes.resources.get(str(r.get("uri")), ""))
        ]
        absent = {RESOURCE_DECISIONS} if self.decisions is None else set()
        if self.self_source is None:
            absent.add(RESOURCE_SELF)
        own = [r for r in VSM_RESOURCES if r["uri"] not in absent]
        return {"resources": [*own, *listed]}

    async def _list_templates(self, ctx: Ctx, params: types.PaginatedRequestParams | None) -> dict[str, Any]:
        await self.fleet.settled(STARTUP_LIST_WAIT_S)
        view = self.view_of(ctx)
        own = VSM_TEMPLATES if self.decisions is not None else []
        return {
            "resourceTemplates": [
                *own,
                *(d for _, unit, d in self.fleet.routes.templates if view.admits_unit(unit)),
            ]
        }

    async def _read_resource(self, ctx: Ctx, params: types.ReadResourceRequestParams) -> Any:
        uri = str(params.uri)
        view = self.view_of(ctx)
        documents: dict[str, Callable[[], dict[str, Any]]] = {
            RESOURCE_STATUS: lambda: self.status(view),
            RESOURCE_VARIETY: self.variety,
            RESOURCE_FLEET: lambda: self.fleet_view(view),
        }
        if uri in documents:
            text = json.dumps(documents[uri](), indent=2, default=str)
            return {"contents": [{"uri": uri, "mimeType": "application/json", "text": text}]}
        record = await self._decision_document(uri)
        if record is None and uri == RESOURCE_SELF and self.self_source is not None:
            record = await self.self_source.self_model()
        if record is not None:
            text = json.dumps(record, indent=2, default=str)
            return {"contents": [{"uri": uri, "mimeType": "application/json", "text": text}]}
        unit = self._resource_unit(view, uri)
        return await self._forward(ctx, unit, "resources/read", dict(ctx.params or {}))

    async def _decision_document(self, uri: str) -> Any:
        """``vsm://decisions`` or ``vsm://decisions/{id}`` from the store; None for any other URI.

        Raises:
            MCPError: a decision number that is not stored (resource not found).
        """
        if self.decisions is None or not uri.startswith(RESOURCE_DECISIONS):
            return None
        if uri == RESOURCE_DECISIONS:
            return {"decisions": await self.decisions.decisions(DECISIONS_LISTED)}
        number = uri.removeprefix(RESOURCE_DECISIONS + "/")
        found = await self.decisions.decision(int(number)) if number.isdigit() else None
        if found is None:
            raise MCPError(code=RESOURCE_NOT_FOUND, message=f"Resource not found: {uri}", data={"uri": uri})
        return found

    async def _subscribe(self, ctx: Ctx, params: types.SubscribeRequestParams) -> dict[str, Any]:
        uri = str(params.uri)
        if uri in {r["uri"] for r in VSM_RESOURCES}:
            return {}
        unit = self._resource_unit(self.view_of(ctx), uri)
        if self.upstream.subscribe(uri, ctx.session):
            await self._forward(ctx, unit, "resources/subscribe", dict(ctx.params or {}))
        return {}

    async def _unsubscribe(self, ctx: Ctx, params: types.UnsubscribeRequestParams) -> dict[str, Any]:
        uri = str(params.uri)
        unit = self.fleet.routes.resource_unit(uri)
        if self.upstream.unsubscribe(uri, ctx.session) and unit is not None:
            await self._forward(ctx, unit, "resources/unsubscribe", dict(ctx.params or {}))
        return {}

    def _resource_unit(self, view: ProfileView, uri: str) -> str:
        unit = self.fleet.routes.resource_unit(uri)
        if unit is None or not view.admits_unit(unit):
            raise MCPError(code=RESOURCE_NOT_FOUND, message=f"Resource not found: {uri}", data={"uri": uri})
        return unit

    # -- handlers: prompts, completion, logging ----------------------------
    async def _list_prompts(self, ctx: Ctx, params: types.PaginatedRequestParams | None) -> dict[str, Any]:
        await self.fleet.settled(STARTUP_LIST_WAIT_S)
        view = self.view_of(ctx)
        own = VSM_PROMPTS if self.self_source is not None else []
        return {
            "prompts": [
                *own,
                *(r.definition for r in self.fleet.routes.prompts.values() if view.admits_unit(r.unit)),
            ]
        }

    async def _get_prompt(self, ctx: Ctx, params: types.GetPromptRequestParams) -> Any:
        if params.name == VSM_SELF_BRIEF and self.self_source is not None:
            return {
                "description": "what this gateway can and cannot do now, computed",
                "messages": [
                    {"role": "user", "content": {"type": "text", "text": await self.self_source.self_brief()}}
                ],
            }
        route = self._prompt(self.view_of(ctx), params.name)
        return await self._forward(
            ctx, route.unit, "prompts/get", {**dict(ctx.params or {}), "name": route.name}
        )

    async def _complete(self, ctx: Ctx, params: types.CompleteRequestParams) -> Any:
        raw = dict(ctx.params or {})
        ref = dict(raw.get("ref") or {})
        view = self.view_of(ctx)
        if ref.get("type") == "ref/prompt":
            route = self._prompt(view, str(ref.get("name", "")))
            unit = route.unit
            raw["ref"] = {**ref, "name": route.name}
        else:
            unit = self._resource_unit(view, str(ref.get("uri", "")))
        return await self._forward(ctx, unit, "completion/complete", raw)

    def _prompt(self, view: ProfileView, name: str) -> Route:
        route = self.fleet.routes.prompts.get(name)
        if route is None or not view.admits_unit(route.unit):
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown prompt: {name!r}")
        return route

    async def _set_level(self, ctx: Ctx, params: types.SetLevelRequestParams) -> dict[str, Any]:
        for unit in self.fleet.units.values():
            if unit.state is UnitState.READY and "logging" in unit.catalog.capabilities:
                try:
                    await self._forward(ctx, unit.name, "logging/setLevel", dict(ctx.params or {}))
                except (MCPError, UnitError):
                    continue  # one unit's refusal does not fail the client's request
        return {}

    async def _forward(self, ctx: Ctx, unit: str, method: str, raw: dict[str, Any]) -> Any:
        with self.upstream.serving(unit, ctx.session, ctx.request_id):
            try:
                return await self.fleet.forward(unit, method, raw)
            except UnitError as exc:
                raise MCPError.from_error_data(unit_error_data(exc, unit)) from exc

    async def _listen(
        self, ctx: Ctx, params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        """One listen stream, within `MAX_LISTEN_STREAMS_PER_PRINCIPAL` of its principal's."""
        who = principal_of(ctx).name
        held = self._listening.get(who, 0)
        if held >= MAX_LISTEN_STREAMS_PER_PRINCIPAL:
            raise MCPError(
                types.INTERNAL_ERROR,
                f"{who} holds {held} listen streams already, as many as one principal may; "
                "close one before opening another",
            )
        self._listening[who] = held + 1
        try:
            return await self.listen(ctx, params)
        finally:
            left = self._listening[who] - 1
            if left:
                self._listening[who] = left
            else:
                del self._listening[who]

    # -- views -------------------------------------------------------------
    def note_call(self, route: Route, client: Hashable = STDIO_CLIENT, shown: str | None = None) -> None:
        """A call of ``route``'s tool (by the name ``client`` was shown) is matched demand in its
        category, and may answer that client's pending searches."""
        self._record(self._category(route), matched=True)
        self.searches.called(client, shown if shown is not None else route.public)

    def _client(self, ctx: Ctx) -> Hashable:
        return client_key(ctx.request, principal_of(ctx).name if ctx.request is not None else "")

    def client_count(self) -> int:
        """Connected client sessions (module docstring)."""
        return self.stdio_clients + (self.http_sessions() if self.http_sessions is not None else 0)

    def _record(self, category: str, *, matched: bool) -> None:
        if self.demand is not None:
            self.demand.record(category, matched)

    def _record_query(self, client: Hashable, query: str, best: Route | None, shown: list[str]) -> None:
        """A need in words, in the best hit's category (else ``search:<words>``): pending until
        ``client`` calls one of the ``shown`` tools, unmatched at once when nothing was shown."""
        category = self._category(best) if best is not None else f"search:{' '.join(query.lower().split())}"
        self.searches.searched(client, category, shown)

    def _category(self, route: Route) -> str:
        unit = self.fleet.units.get(route.unit)
        return unit.spec.category if unit is not None and unit.spec.category else route.public

    def status(self, view: ProfileView | None = None) -> dict[str, Any]:
        """Gateway, fleet and (when wired) VSM status as one JSON-able dict; ``view``'s units only."""
        gateway: dict[str, Any] = {
            "uptime_s": round(time.time() - self.started_at, 3),
            "clients": self.client_count(),
            "searches": self.searches.summary(),
            "tools": len(self.fleet.routes.tools),
            "name_collisions_resolved": self.fleet.routes.collisions,
            "dead_lettered": self.fleet.dead_lettered,
        }
        if view is not None and view.profile is not None:
            gateway["profile"] = {"name": view.profile.name, "tools": len(view.exposed)}
        out: dict[str, Any] = {
            "gateway": gateway,
            "units": [u for u in self.fleet.status() if view is None or view.admits_unit(u["name"])],
        }
        if self.status_source is not None:
            out["vsm"] = self.status_source.status()
        return out

    def variety(self) -> dict[str, Any]:
        if self.status_source is None:
            return {"detail": "no demand model is wired to this gateway"}
        return self.status_source.variety()

    def fleet_view(self, view: ProfileView | None = None) -> dict[str, Any]:
        """Units with their public tool names, and each name's tool as its server calls it."""
        by_unit: dict[str, dict[str, str]] = {}
        routes = (
            self.fleet.routes.tools.values() if view is None else (e.route for e in view.exposed.values())
        )
        for route in routes:
            by_unit.setdefault(route.unit, {})[route.public] = route.name
        return {
            "units": [
                {
                    "name": u["name"],
                    "state": u["state"],
                    "target": u["target"],
                    "tools": list(by_unit.get(u["name"], {})),
                    "downstream": by_unit.get(u["name"], {}),
                }
                for u in self.fleet.status()
                if view is None or view.admits_unit(u["name"])
            ]
        }


def _envelope(handler: Callable[[Ctx, Any], Awaitable[Any]]) -> Callable[[Ctx, Any], Awaitable[Any]]:
    """Complete a forwarded (handshake-era) wire result for a 2026-07-28 client: it needs ``resultType``."""

    async def wrapped(ctx: Ctx, params: Any) -> Any:
        result = await handler(ctx, params)
        if isinstance(result, dict) and ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            result.setdefault("resultType", "complete")
        return result

    return wrapped


def _json_result(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "content": [{"type": "text", "text": json.dumps(payload, indent=2, default=str)}],
        "structuredContent": payload,
        "isError": False,
    }


async def _reporting_progress(ctx: Ctx, call: ToolCall, fleet: Fleet) -> Outcome:
    """`Fleet.call` of ``call`` (which asked for progress), the server's progress reported to
    the client in order, every notification sent before the outcome is returned."""
    send, receive = anyio.create_memory_object_stream[dict[str, Any]](math.inf)

    async def report() -> None:
        async with receive:
            async for sent in receive:
                await ctx.session.report_progress(sent["progress"], sent.get("total"), sent.get("message"))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(report)
        with send:
            outcome = await fleet.call(
                ToolCall(call.public, call.params, progress=send.send_nowait, client=call.client)
            )
    return outcome
