"""Find and acquire capabilities on demand: what `vsm-mcp acquire` and the MCP tools
``vsm_find_capability`` / ``vsm_acquire_capability`` call.

`CapabilityService.find` ranks installable catalog servers for a query, with
reasons; `CapabilityService.acquire` runs the `Acquirer` on the best one (or
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
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

from vsm_mcp.acquisition.candidates import SEARCH_PREFIX, entry_candidate, parse_ref, rank_candidates
from vsm_mcp.acquisition.pipeline import Acquired, Acquirer, AcquisitionPlan, Answer, StepProgress
from vsm_mcp.acquisition.vetting import Candidate, Verdict
from vsm_mcp.discovery.matcher import Matcher
from vsm_mcp.discovery.sources import CandidateSource, discover
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


def candidate_json(candidate: Candidate, matcher: Matcher | None = None) -> dict[str, Any]:
    """A candidate as ``vsm_find_capability`` returns it."""
    entry = matcher.catalog.get(candidate.server) if matcher is not None else None
    return {
        "server": candidate.server,
        "package": candidate.ref,
        "registry": candidate.registry_type,
        "score": candidate.score,
        "reasons": list(candidate.reasons),
        "license": entry.license if entry is not None else None,
        "description": entry.description if entry is not None else "",
        "tools": [t.name for t in entry.tools] if entry is not None else [],
    }


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
        """``live_sources``: asked when the offline catalog has no installable match (`plan`)."""
        self.acquirer = acquirer
        self.matcher = matcher
        self.registry_types = tuple(registry_types)
        self.live_sources = tuple(live_sources)
        #: What the live sources said the last time they were asked (source -> failure), for messages.
        self.live_errors: dict[str, str] = {}

    def find(self, query: str, *, limit: int = 5, category: str | None = None) -> list[Candidate]:
        """Installable catalog servers for ``query``, best first; the servers that answered demand
        ``category`` well before rise for it (the outcome ledger's boost; the query's own ``search:``
        category when none is given)."""
        return rank_candidates(
            self.matcher,
            query,
            registry_types=self.registry_types,
            top_k=limit,
            category=category if category is not None else search_category(query),
        )

    async def plan(
        self,
        query: str,
        *,
        package: str | None = None,
        server: str | None = None,
        limit: int = 5,
        reorder: Reorder | None = None,
    ) -> AcquisitionPlan:
        """The plan for ``query``: an explicit package, a named catalog server, or the best match
        (the first after ``reorder``, when given).

        Raises:
            ConfigError: ``package`` is malformed or ``server`` is not an installable catalog entry.
            AcquisitionRefusedError: nothing matches.
        """
        if package is not None:
            try:
                candidates = [parse_ref(package, self.matcher.catalog)]
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        else:
            candidates = self.find(query, limit=limit)
            if not candidates and server is None and self.live_sources and query.strip():
                candidates = await self.find_live(query, limit=limit)
                if not candidates and self.live_errors:
                    failed = "; ".join(f"{name}: {why}" for name, why in sorted(self.live_errors.items()))
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

    async def find_live(self, query: str, *, limit: int = 5) -> list[Candidate]:
        """Installable servers the live sources (registry, npm search) propose for ``query``, best
        first; not in the catalog, so vetting treats them as such. A source that fails (deadline,
        breaker, HTTP) is named in `live_errors` and never hides the others' answers."""
        found = await discover(self.live_sources, query, limit=limit)
        self.live_errors = dict(found.errors)
        out: list[Candidate] = []
        for match in found.matches:
            entry = found.entries.get(match.name)
            if entry is None or match.score <= 0.0:
                continue
            reasons = [f"found by {found.origin.get(match.name, 'a live source')}, not in the catalog"]
            if match.matched_terms:
                reasons.append("matches " + ", ".join(repr(t) for t in match.matched_terms))
            candidate = entry_candidate(entry, self.registry_types, round(match.score, 4), reasons)
            if candidate is not None:
                out.append(dataclasses.replace(candidate, in_catalog=False))
            if len(out) >= limit:
                break
        return out

    async def acquire(self, plan: AcquisitionPlan, *, progress: StepProgress | None = None) -> Acquired:
        """Run the pipeline on ``plan`` (see `Acquirer.acquire`), telling ``progress`` each step."""
        return await self.acquirer.acquire(plan, progress=progress)
