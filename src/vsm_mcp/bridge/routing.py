"""Learning reaches routing: of tools that answer a search alike, the one that served better comes first.

Every call the fleet ends is one outcome of its tool in the outcome ledger
(`OutcomeRecorder`, category ``tool:<name>``). `LearnedRouting.rerank` weighs
each hit of a tool search by that record: the text score times
``1 + WEIGHT * boost``, the boost being the ledger's (in [-1, 1]: 0 with no
evidence, toward +1 or -1 after many successes or failures, a Beta prior
keeping one call from moving it far). The hits' text scores decide whether a
tool matches at all (unmatched demand is measured on them alone); learning only
reorders what matched.

When learning changes which tool comes first, S2 records the choice as a
decision: the tools it chose between, their text scores and records, the rule,
and the success it predicts for the chosen tool (the posterior mean) with the
ledger's tally then, so what followed can be read like an acquisition's
(`bridge.reflection`). The same choice (first tool over the same runner-up) is
recorded at most once per `RECORD_EVERY_S`.

Invariants: deterministic for a given ledger; a tool never seen keeps its text
score; the order of hits with equal weighted scores is the text order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace

from vsm_mcp.core.messages import Decision
from vsm_mcp.core.ports import Store
from vsm_mcp.discovery.outcomes import OutcomeLedger, tool_key
from vsm_mcp.fleet.routing import Route
from vsm_mcp.gateway.search import ToolHit

#: How far a tool's record moves its score: x0.5 (always failing) to x1.5 (always serving).
WEIGHT = 0.5
#: The same routing choice is recorded at most this often.
RECORD_EVERY_S = 3600.0
RULE = "tools that answer a search alike: the one whose calls served better first"


class LearnedRouting:
    """`gateway.ports.LearnedRouting` over the live outcome ledger (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        ledger: Callable[[], OutcomeLedger],
        routes: Callable[[], Mapping[str, Route]],
        server_of: Callable[[str], str],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``routes``: the fleet's public tool names to routes; ``server_of``: a unit's name in the
        ledger (the catalog server it was acquired as, else its own)."""
        self._store = store
        self._ledger = ledger
        self._routes = routes
        self._server_of = server_of
        self._clock = clock
        self._recorded: dict[tuple[str, str], float] = {}

    def _key(self, hit: ToolHit) -> tuple[str, str] | None:
        route = self._routes().get(hit.name)
        return None if route is None else (self._server_of(route.unit), tool_key(route.name))

    async def rerank(self, query: str, hits: list[ToolHit]) -> list[ToolHit]:
        if len(hits) < 2:
            return hits
        ledger = self._ledger()
        keys = [self._key(h) for h in hits]
        weighed = [
            replace(h, reliability=round(ledger.boost(*k), 4)) if k is not None else h
            for h, k in zip(hits, keys, strict=True)
        ]
        order = sorted(
            range(len(weighed)),
            key=lambda i: (-weighed[i].score * (1.0 + WEIGHT * (weighed[i].reliability or 0.0)), i),
        )
        ranked = [weighed[i] for i in order]
        if order[0] != 0:
            await self._record(query, ranked, weighed, keys[order[0]], ledger)
        return ranked

    async def _record(
        self,
        query: str,
        ranked: list[ToolHit],
        by_text: list[ToolHit],
        key: tuple[str, str] | None,
        ledger: OutcomeLedger,
    ) -> None:
        chosen, passed_over = ranked[0], by_text[0]
        now = self._clock()
        pair = (chosen.name, passed_over.name)
        if key is None or now - self._recorded.get(pair, -RECORD_EVERY_S) < RECORD_EVERY_S:
            return
        self._recorded[pair] = now
        tally = ledger.tallies.get(key)
        before = [tally.successes, tally.failures] if tally is not None else [0, 0]
        p = ledger.posterior_mean(*key)

        def record(hit: ToolHit) -> dict[str, object]:
            k = self._key(hit)
            t = ledger.tallies.get(k) if k is not None else None
            return {
                "tool": hit.name,
                "text_score": hit.score,
                "reliability": hit.reliability,
                "successes": t.successes if t is not None else 0,
                "failures": t.failures if t is not None else 0,
            }

        alternatives = [record(h) for h in by_text[:5]]
        await self._store.record_decision(
            Decision(
                at=now,
                system="s2",
                subject=f"route:{chosen.name}",
                choice="route_first",
                rule=RULE,
                rationale=(
                    f"for {query!r}, {chosen.name} ({_served(ledger, key)}) comes before "
                    f"{passed_over.name}, which matched the words better ({passed_over.score:g} against "
                    f"{chosen.score:g})"
                ),
                inputs={
                    "query": query,
                    "chosen": chosen.name,
                    "passed_over": passed_over.name,
                    "predicted_success": p,
                    "outcome_key": list(key),
                    "tally_at_decision": before,
                },
                alternatives=alternatives,
            )
        )


def _served(ledger: OutcomeLedger, key: tuple[str, str]) -> str:
    """``7 of 8 calls served``: the record of one tool's key."""
    tally = ledger.tallies.get(key)
    if tally is None:
        return "no calls yet"
    return f"{tally.successes} of {tally.successes + tally.failures} calls served"
