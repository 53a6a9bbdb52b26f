"""The MCP tools ``vsm_find_capability`` and ``vsm_acquire_capability``: definitions and handlers.

The gateway may not import this package (layer rule), so the composition
root hands a `CapabilityTools` to the gateway through a port; the gateway
lists `CAPABILITY_TOOLS` next to its own tools and routes calls of these
names to `CapabilityTools.call`, which returns the structured result (the
gateway wraps it as text + ``structuredContent``). A refusal or failure is a
`VsmError` whose message is the tool's error text. When the client supports
elicitation, the gateway builds the acquirer's approver as
``PromptApprover(ask)`` with ``ask`` eliciting a yes/no from the user.

Both tools' results say which order their candidates came from:
``reranked_by`` is ``client-sampling`` when the calling client's model chose
among the top candidates (``rerank`` names the model and its choice), else
``offline`` with ``rerank.reason`` saying why (`vsm_mcp.acquisition.rerank`).
``vsm_find_capability`` also says how strongly the catalog matched
(``match_strength``), whether the live sources were asked beside it
(``live_sources_asked``: only when that match is weak) and what failed
(``errors``); each candidate's ``origin`` is ``catalog`` or its live source.
"""

from __future__ import annotations

from typing import Any

from vsm_mcp.acquisition.pipeline import AcquisitionPlan
from vsm_mcp.acquisition.rerank import ClientModel, Ranking, RerankPolicy, rerank
from vsm_mcp.acquisition.service import CapabilityService
from vsm_mcp.acquisition.vetting import Candidate
from vsm_mcp.errors import ConfigError

VSM_FIND_CAPABILITY = "vsm_find_capability"
VSM_ACQUIRE_CAPABILITY = "vsm_acquire_capability"

CAPABILITY_TOOLS: list[dict[str, Any]] = [
    {
        "name": VSM_FIND_CAPABILITY,
        "title": "Find a capability",
        "description": "Rank installable MCP servers (from the offline catalog of real servers, and from "
        "the live registries when the catalog matches weakly; origin says which) for a need "
        "described in words, with the reasons for each rank. If this client supports sampling, its "
        "model may be asked once to pick the best of the top few (reranked_by says which order this "
        "is). Installs nothing.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "what you need to do, in words"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        "annotations": {"readOnlyHint": True, "openWorldHint": True},
    },
    {
        "name": VSM_ACQUIRE_CAPABILITY,
        "title": "Acquire a capability",
        "description": "Vet, install (pinned, isolated prefix), sandbox, verify and add an MCP server for "
        "a need; its tools then appear as SERVER__tool. Policy may ask the user first or refuse.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "the need, in words"},
                "server": {"type": "string", "description": "a catalog server among the matches"},
                "package": {"type": "string", "description": "exactly REGISTRY:NAME@VERSION instead"},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        "annotations": {"readOnlyHint": False, "destructiveHint": False, "openWorldHint": True},
    },
]

CAPABILITY_TOOL_NAMES = frozenset(t["name"] for t in CAPABILITY_TOOLS)


class CapabilityTools:
    """Handlers of the two tools over one `CapabilityService`; ``rerank`` says whether and how the
    calling client's model may choose among the top candidates."""

    def __init__(self, service: CapabilityService, rerank: RerankPolicy | None = None) -> None:
        self.service = service
        self.rerank = rerank if rerank is not None else RerankPolicy()

    async def call(
        self, name: str, arguments: dict[str, Any], *, model: ClientModel | None = None
    ) -> dict[str, Any]:
        """Run tool ``name``; returns its structured result. ``model``: the calling client's model
        (None: no client is calling).

        Raises:
            ConfigError: unknown tool or bad arguments.
            AcquisitionError: refused, or failed and rolled back (the message says why).
        """
        query = _query(name, arguments)
        if name == VSM_FIND_CAPABILITY:
            limit = arguments.get("limit", 5)
            if not isinstance(limit, int) or not 1 <= limit <= 20:
                raise ConfigError(f"{name}: 'limit' must be an integer from 1 to 20")
            found = await self.service.search(query, limit=limit)
            ranking = await self._rank(query, list(found.candidates), model)
            return {
                "query": query,
                "candidates": [self.service.describe(c) for c in ranking.candidates],
                **ranking.json(),
                **found.json(),
            }
        if name == VSM_ACQUIRE_CAPABILITY:
            plan, ranking = await self.plan(arguments, model=model)
            return await self.acquire(plan, ranking)
        raise ConfigError(f"unknown capability tool {name!r}")

    async def plan(
        self, arguments: dict[str, Any], *, model: ClientModel | None = None
    ) -> tuple[AcquisitionPlan, Ranking]:
        """The plan ``vsm_acquire_capability`` would run for ``arguments``, and where its order came from.

        Raises:
            ConfigError: bad arguments.
            AcquisitionRefusedError: nothing matches.
        """
        query = _query(VSM_ACQUIRE_CAPABILITY, arguments)
        server, package = arguments.get("server"), arguments.get("package")
        server = server if isinstance(server, str) else None
        package = package if isinstance(package, str) else None
        ranking = Ranking((), reason=f"the caller named the {'package' if package else 'server'}")

        async def reorder(query: str, candidates: list[Candidate]) -> list[Candidate]:
            nonlocal ranking
            ranking = await self._rank(query, candidates, model)
            return list(ranking.candidates)

        plan = await self.service.plan(query, server=server, package=package, reorder=reorder)
        return plan, ranking

    async def acquire(self, plan: AcquisitionPlan, ranking: Ranking) -> dict[str, Any]:
        """Run ``plan``; the result of ``vsm_acquire_capability``.

        Raises:
            AcquisitionError: refused, or failed and rolled back (the message says why).
        """
        acquired = await self.service.acquire(plan)
        return {
            "server": acquired.plan.unit,
            "package": acquired.plan.candidate.ref,
            "tools": [acquired.spec.public_name(str(t.get("name"))) for t in acquired.verification.tools],
            "sandbox": acquired.launch.detail,
            "category": acquired.plan.category,
            "timings_s": {k: round(v, 3) for k, v in acquired.timings_s.items()},
            **ranking.json(),
        }

    async def _rank(self, query: str, candidates: list[Candidate], model: ClientModel | None) -> Ranking:
        return await rerank(query, candidates, model, self.rerank, self.service.summary)


def _query(name: str, arguments: dict[str, Any]) -> str:
    query = arguments.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ConfigError(f"{name}: 'query' must be a non-empty string")
    return query
