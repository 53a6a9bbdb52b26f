"""Find and acquire capabilities on demand: what `vsm-mcp acquire` and the MCP tools
``vsm_find_capability`` / ``vsm_acquire_capability`` call.

`CapabilityService.find` ranks installable catalog servers for a query, with
reasons, offline; `CapabilityService.search` does the same and, when the
catalog's best match is weak (`vsm_mcp.discovery.strength`: it covers less
than half of the query's content terms), puts the live sources' candidates
beside the catalog's, ranked by the same matcher, each marked with its origin
(``catalog``, ``npm``, ``mcp-registry``; `candidate_origin`).
`CapabilityService.acquire` runs the `Acquirer` on the best one (or
on a package named explicitly) for the demand category of the query. The
category of a free-text query is ``search:<words>`` (lower-cased, single
spaces), the gateway's category for a tool search nothing answered, so an
acquisition made from the CLI answers the same demand a client expressed.
When neither a package nor a server is named, `CapabilityService.plan` may
`Reorder` the candidates first (the calling client's model, `rerank`).

`PromptApprover` is the `Approver` of an interactive front end: it asks one
yes/no question (the CLI's ``typer.confirm``, or MCP elicitation through the
gateway) and returns None when nobody can be asked.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from vsm_mcp.acquisition.candidates import (
    RANK_POOL,
    SEARCH_PREFIX,
    candidate_origin,
    entry_candidate,
    live_reason,
    parse_ref,
    rank_candidates,
    summarize,
)
from vsm_mcp.acquisition.pipeline import Acquired, Acquirer, AcquisitionPlan, Answer, StepProgress
from vsm_mcp.acquisition.rerank import Summary
from vsm_mcp.acquisition.vetting import Candidate, Verdict
from vsm_mcp.discovery.catalog import Catalog, ServerEntry
from vsm_mcp.discovery.matcher import Matcher
from vsm_mcp.discovery.sources import CATALOG_ORIGIN, CandidateSource, beside_catalog, gather
from vsm_mcp.discovery.strength import MatchStrength, match_strength
from vsm_mcp.errors import AcquisitionRefusedError, ConfigError

Ask = Callable[[str], Awaitable[bool | None]]
#: Reorders the candidates for a query before the first is planned (the client's model, `rerank`).
Reorder = Callable[[str, list[Candidate]], Awaitable[list[Candidate]]]


def search_category(query: str) -> str:
    """The demand category of a free-text query (the gateway's ``search:`` category)."""
    return SEARCH_PREFIX + " ".join(query.lower().split())


def describe_plan(plan: AcquisitionPlan, verdict: Verdict) -> str:
    """The question put to a person: what would be installed, as what, and why it is asked."""
    c = plan.candidate
    return (
        f"Install {c.ref} as server {plan.unit!r} (into {plan.prefix}) to answer {plan.category!r}? "
        f"{verdict.rationale}" + (f" ({'; '.join(verdict.notes)})" if verdict.notes else "")
    )


class PromptApprover:
    """Asks a person through ``ask`` (True/False, or None when nobody answered); ``who`` names them."""

    def __init__(self, ask: Ask, who: str = "operator") -> None:
        self._ask = ask
        self.who = who

    async def approve(self, plan: AcquisitionPlan, verdict: Verdict) -> Answer:
        question = describe_plan(plan, verdict)
        return Answer(await self._ask(question), self.who, question)


def candidate_json(
    candidate: Candidate, matcher: Matcher | None = None, *, entry: ServerEntry | None = None
) -> dict[str, Any]:
    """A candidate as ``vsm_find_capability`` returns it; ``entry`` (else the one of ``matcher``'s
    catalog) describes it. ``origin`` says where it came from (`candidate_origin`)."""
    if entry is None and matcher is not None:
        entry = matcher.catalog.get(candidate.server)
    return {
        "server": candidate.server,
        "package": candidate.ref,
        "registry": candidate.registry_type,
        "origin": candidate_origin(candidate),
        "score": candidate.score,
        "reasons": list(candidate.reasons),
        "license": entry.license if entry is not None else None,
        "description": entry.description if entry is not None else "",
        "tools": [t.name for t in entry.tools] if entry is not None else [],
    }


@dataclass(frozen=True, slots=True)
class Found:
    """The candidates for a query, best first, and how they were found."""

    candidates: tuple[Candidate, ...]
    strength: MatchStrength  # of the catalog's best installable match
    live_asked: bool  # the live sources were asked (the match was weak and they are configured)
    errors: dict[str, str] = field(default_factory=dict)  # live source -> what went wrong

    def json(self) -> dict[str, Any]:
        """What ``vsm_find_capability`` adds to its candidates: the match's strength and the live round."""
        return {
            "match_strength": self.strength.json(),
            "live_sources_asked": self.live_asked,
            "errors": self.errors,
        }


#: Live entries the service remembers to describe the candidates it proposed (`CapabilityService.entry`).
LIVE_ENTRIES_KEPT = 256


class CapabilityService:
    """Ranked candidates and acquisitions over one `Acquirer` and the catalog matcher."""

    def __init__(
        self,
        acquirer: Acquirer,
        matcher: Matcher,
        *,
        registry_types: Collection[str] = ("npm", "pypi"),
        live_sources: Sequence[CandidateSource] = (),
    ) -> None:
        """``live_sources``: asked beside the catalog when its best match is weak (`search`)."""
        self.acquirer = acquirer
        self.matcher = matcher
        self.registry_types = tuple(registry_types)
        self.live_sources = tuple(live_sources)
        self._live_entries: dict[str, ServerEntry] = {}

    def find(self, query: str, *, limit: int = 5, category: str | None = None) -> list[Candidate]:
        """Installable catalog servers for ``query``, best first, offline; the servers that answered
        demand ``category`` well before rise for it (the outcome ledger's boost; the query's own
        ``search:`` category when none is given)."""
        return rank_candidates(
            self.matcher,
            query,
            registry_types=self.registry_types,
            top_k=limit,
            category=category if category is not None else search_category(query),
        )

    async def search(self, query: str, *, limit: int = 5, category: str | None = None) -> Found:
        """The catalog's candidates for ``query`` (`find`), and, when its best installable match is
        weak (`strength`) and live sources are configured, the live sources' beside them.

        The live sources are asked concurrently; their answers and the catalog's top matches are
        ranked together by the same matcher (one built over that union, with the same outcome
        ledger), and each live candidate is marked with its source and as not in the catalog
        (vetting treats it as unlisted). A source that fails is in ``errors`` and hides nothing.
        """
        category = category if category is not None else search_category(query)
        result = self.matcher.match(query, top_k=RANK_POOL, category=category)
        catalog = self.matcher.catalog
        best = next((m for m in result.servers if m.score > 0.0 and self._installable(m.name)), None)
        strength = match_strength(query, best, catalog)
        if not (strength.weak and self.live_sources):
            return Found(tuple(self.find(query, limit=limit, category=category)), strength, False)
        found = await gather(self.live_sources, query, limit)
        pool = [entry for m in result.servers if (entry := catalog.get(m.name)) is not None]
        merged = beside_catalog(catalog, pool, found)
        union = Catalog(tuple(merged.entries.values()), "<catalog and live sources>")
        # Indexing the union takes ~0.1 s (the catalog's top entries can list hundreds of tools):
        # off the event loop; discovery's analyser stems with one stemmer per thread.
        union_matcher = await anyio.to_thread.run_sync(
            functools.partial(Matcher, union, outcomes=self.matcher.outcomes)
        )
        ranked = rank_candidates(
            union_matcher, query, registry_types=self.registry_types, top_k=limit, category=category
        )
        out: list[Candidate] = []
        for ranked_one in ranked:
            origin = merged.origin.get(ranked_one.server, CATALOG_ORIGIN)
            if origin == CATALOG_ORIGIN:
                out.append(ranked_one)
                continue
            self._remember(merged.entries[ranked_one.server])
            out.append(
                dataclasses.replace(
                    ranked_one, in_catalog=False, reasons=(live_reason(origin), *ranked_one.reasons)
                )
            )
        return Found(tuple(out), strength, True, dict(found.errors))

    def entry(self, server: str) -> ServerEntry | None:
        """The entry of a catalog server, or of a live one this service proposed lately."""
        return self.matcher.catalog.get(server) or self._live_entries.get(server)

    def describe(self, candidate: Candidate) -> dict[str, Any]:
        """``candidate`` as ``vsm_find_capability`` and ``vsm-mcp acquire`` show it (`candidate_json`)."""
        return candidate_json(candidate, entry=self.entry(candidate.server))

    def summary(self, candidate: Candidate) -> Summary:
        """What the client's model is shown of ``candidate`` when it reranks (`summarize`)."""
        entry = self.entry(candidate.server)
        return summarize(candidate, Catalog((entry,)) if entry is not None else self.matcher.catalog)

    def _installable(self, server: str) -> bool:
        entry = self.matcher.catalog.get(server)
        return entry is not None and entry_candidate(entry, self.registry_types) is not None

    def _remember(self, entry: ServerEntry) -> None:
        self._live_entries.pop(entry.name, None)
        self._live_entries[entry.name] = entry
        while len(self._live_entries) > LIVE_ENTRIES_KEPT:
            del self._live_entries[next(iter(self._live_entries))]

    async def plan(
        self,
        query: str,
        *,
        package: str | None = None,
        server: str | None = None,
        limit: int = 5,
        reorder: Reorder | None = None,
    ) -> AcquisitionPlan:
        """The plan for ``query``: an explicit package, a named server among the matches (the
        catalog's, or the live sources' when the catalog's match is weak, `search`), or the best
        match (the first after ``reorder``, when given).

        Raises:
            ConfigError: ``package`` is malformed or ``server`` is not among the installable matches.
            AcquisitionRefusedError: nothing matches.
        """
        if package is not None:
            try:
                candidates = [parse_ref(package, self.matcher.catalog)]
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        else:
            found = await self.search(query, limit=limit)
            candidates = list(found.candidates)
            if not candidates and found.errors:
                failed = "; ".join(f"{name}: {why}" for name, why in sorted(found.errors.items()))
                raise AcquisitionRefusedError(
                    "no_candidate",
                    f"no installable server matches {query!r} in the catalog, and the live sources "
                    f"found none ({failed})",
                )
            if server is not None:
                chosen = [c for c in candidates if c.server == server]
                if not chosen:
                    raise ConfigError(f"{server!r} is not among the installable matches for {query!r}")
                candidates = chosen + [c for c in candidates if c.server != server]
            elif reorder is not None:
                candidates = await reorder(query, candidates)
        category = search_category(query) if query.strip() else (package or server or "")
        if not category:
            raise AcquisitionRefusedError("no_candidate", "nothing to acquire: give a query or a package")
        return await self.acquirer.plan(candidates, query=query, category=category)

    async def acquire(self, plan: AcquisitionPlan, *, progress: StepProgress | None = None) -> Acquired:
        """Run the pipeline on ``plan`` (see `Acquirer.acquire`), telling ``progress`` each step."""
        return await self.acquirer.acquire(plan, progress=progress)
