"""What the gateway needs from the VSM, as small protocols the composition root wires.

The gateway never imports the running VSM systems' concrete classes: it feeds
demand into a `DemandSink` (S4's demand window in production) and reads
`StatusSource` dicts for its status tools and resources. Tools from layers the
gateway may not import (capability acquisition) reach it as `ExtraTools`. `WindowDemand` is a
real, minimal implementation over `core.window.DemandWindow`, used when the
gateway runs alone (tests, `vsm-mcp serve` without the full runtime).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, Protocol

from mcp.server.context import ServerRequestContext

from vsm_mcp.core.access import Scope
from vsm_mcp.core.variety import UNLIMITED
from vsm_mcp.core.window import DemandWindow
from vsm_mcp.gateway.search import ToolHit


class DemandSink(Protocol):
    """Receives one event per client request that expresses demand."""

    def record(self, category: str, matched: bool) -> None:
        """A request in ``category``; ``matched`` when some capability answered it."""
        ...

    def set_capabilities(self, categories: Iterable[str]) -> None:
        """The categories the fleet can answer now (called whenever the fleet changes)."""
        ...


class StatusSource(Protocol):
    """Read-only views of the viable system for `vsm_status` / `vsm_variety`."""

    def status(self) -> dict[str, Any]: ...

    def variety(self) -> dict[str, Any]: ...


class ExtraTools(Protocol):
    """More tools of the gateway's own, listed right after the VSM tools.

    Their names are reserved like the VSM tools' (the composition root
    reserves them in the fleet, so no downstream tool can take one). A call's
    ``query`` argument is demand exactly like a `vsm_search_tools` query.
    """

    def definitions(self) -> list[dict[str, Any]]:
        """The tools as ``tools/list`` shows them (wire dicts with name, description, inputSchema)."""
        ...

    def scope(self, name: str) -> Scope:
        """The scope a client's token needs to call tool ``name`` (`vsm_mcp.core.access`)."""
        ...

    async def call(
        self, name: str, arguments: dict[str, Any], ctx: ServerRequestContext[Any, Any]
    ) -> dict[str, Any]:
        """Run tool ``name`` for the client of ``ctx``; returns its structured result.

        The gateway returns it as text + ``structuredContent``; a raised `VsmError`
        becomes a tool result with ``isError`` and the error's message.
        """
        ...


class WindowDemand:
    """A `DemandSink` and `StatusSource` over one sliding `DemandWindow`."""

    def __init__(self, window: DemandWindow | None = None) -> None:
        self.window = window or DemandWindow(max_events=10_000)
        self.unmatched = 0
        self.matched = 0

    def record(self, category: str, matched: bool) -> None:
        self.window.observe(category)
        if matched:
            self.matched += 1
        else:
            self.unmatched += 1

    def set_capabilities(self, categories: Iterable[str]) -> None:
        self.window.set_capacity(dict.fromkeys(categories, UNLIMITED))

    def status(self) -> dict[str, Any]:
        return {
            "demand_events": self.window.total_observed,
            "matched": self.matched,
            "unmatched": self.unmatched,
        }

    def variety(self) -> dict[str, Any]:
        reading = dataclasses.asdict(self.window.reading())
        profile = self.window.profile()
        unmet = {c: n for c, n in profile.counts.items() if c not in profile.capacity}
        return {**reading, "unmatched_categories": dict(sorted(unmet.items(), key=lambda kv: -kv[1])[:20])}


class DecisionSource(Protocol):
    """Where the gateway reads the system's stored decisions as JSON documents (each acquisition
    with what followed it, in production: `bridge.reflection.DecisionRecords`)."""

    async def decisions(self, limit: int = 100) -> list[dict[str, Any]]: ...

    async def decision(self, decision_id: int) -> dict[str, Any] | None: ...


class LearnedRouting(Protocol):
    """Orders the hits of a tool search by what calls of each tool taught (`bridge.routing`): of
    tools that answer a query alike, the one that served better comes first; each time learning
    changes which tool comes first it is a stored decision."""

    async def rerank(self, query: str, hits: list[ToolHit]) -> list[ToolHit]: ...


class SelfSource(Protocol):
    """The system's computed account of itself (`bridge.self_model`): served as ``vsm://self`` and
    handed to a client's model by the ``vsm_self_brief`` prompt."""

    async def self_model(self) -> dict[str, Any]: ...

    async def self_brief(self) -> str: ...
