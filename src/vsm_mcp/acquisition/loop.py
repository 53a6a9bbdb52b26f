"""The autonomous loop: a sustained gap -> S4 proposal -> S5 decision -> acquisition -> the gap closes.

`AcquisitionLoop` reads S4's messages from its own inbox (S4 is built with
``to=`` that inbox). For each `AcquisitionProposal` it first hands the
message to S5 (`Policy.handle`), which stores the gap decision (``approve``
under ``auto_approve_acquisition``, else ``ask_operator``); then, for the
heaviest unmatched categories, it ranks candidates (the category mapped to a
query by `category_query`): with ``search`` (the runtime's
`CapabilityService.search`) the catalog's, and the live sources' beside them
when the catalog's best match is weak; without it the catalog's alone
(`rank_candidates`),
skips packages already running, and runs the `Acquirer` with S5's
auto-approve rule (``ask`` goes to the acquirer's `Approver`). A success
adds the category to S4's capacity, so the very next reading shows the gap
closing. `GapClosed` is passed on to S5 as well.

Invariants (hysteresis twice over): S4's detector emits at most one proposal
per gap episode; within an episode a category is attempted at most once,
successful or not, and at most ``max_per_proposal`` servers are acquired per
proposal. Nothing is retried until S4 has seen the gap clear and open again.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from vsm_mcp.acquisition.candidates import category_query, rank_candidates
from vsm_mcp.acquisition.pipeline import Acquired, Acquirer
from vsm_mcp.acquisition.vetting import Candidate
from vsm_mcp.core.variety import UNLIMITED
from vsm_mcp.discovery.matcher import Matcher
from vsm_mcp.errors import AcquisitionError
from vsm_mcp.vsm.bus import Envelope, Inbox
from vsm_mcp.vsm.events import AcquisitionProposal, GapClosed
from vsm_mcp.vsm.intelligence import Intelligence
from vsm_mcp.vsm.policy import Policy

#: Servers acquired for one proposal (one episode): growth stays deliberate, yet several unmet needs are met.
MAX_PER_PROPOSAL = 3
#: Candidates ranked per category (the first installable one not yet running is tried).
CANDIDATES_PER_CATEGORY = 5

#: Candidates for (query, limit, demand category), best first: the catalog's and, when its match
#: is weak, the live sources' (`CapabilityService.search`).
Search = Callable[[str, int, str], Awaitable[tuple[Candidate, ...]]]


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the loop did for one unmatched category."""

    category: str
    query: str
    unit: str | None
    ok: bool
    detail: str
    at: float


class AcquisitionLoop:
    """Turns S4's gap proposals into acquisitions under S5's rules."""

    def __init__(
        self,
        inbox: Inbox,
        *,
        acquirer: Acquirer,
        matcher: Matcher,
        s4: Intelligence,
        s5: Policy,
        registry_types: Collection[str] = ("npm", "pypi"),
        max_per_proposal: int = MAX_PER_PROPOSAL,
        search: Search | None = None,
    ) -> None:
        self._inbox = inbox
        self.search = search
        self.acquirer = acquirer
        self.matcher = matcher
        self.s4 = s4
        self.s5 = s5
        self.registry_types = tuple(registry_types)
        self.max_per_proposal = max_per_proposal
        self._attempted: set[str] = set()
        self.attempts: list[Attempt] = []
        self.acquired: list[Acquired] = []
        self.proposals = 0

    async def run(self) -> None:
        """Handle S4's messages until the inbox closes."""
        async for envelope in self._inbox:
            await self.handle(envelope)

    async def handle(self, envelope: Envelope) -> None:
        """One message from S4: S5 decides on it, then the loop acts."""
        payload = envelope.payload
        if isinstance(payload, AcquisitionProposal):
            await self.s5.handle(envelope)
            self.proposals += 1
            if self.s5.last_proposal_choice == "defer":  # S3 has no room: a later proposal may
                return
            await self._on_proposal(payload)
        elif isinstance(payload, GapClosed):
            await self.s5.handle(envelope)
            self._attempted.clear()  # a new episode may try again

    async def _on_proposal(self, proposal: AcquisitionProposal) -> None:
        acquired = 0
        for category, _count in proposal.unmatched:
            if acquired >= self.max_per_proposal:
                return
            if category in self._attempted:
                continue
            self._attempted.add(category)
            if await self._acquire_for(category):
                acquired += 1

    async def _acquire_for(self, category: str) -> bool:
        query = category_query(category)
        if self.search is not None:
            ranked = list(await self.search(query, CANDIDATES_PER_CATEGORY, category))
        else:
            ranked = rank_candidates(  # the demand category: what served it well before ranks higher
                self.matcher,
                query,
                registry_types=self.registry_types,
                top_k=CANDIDATES_PER_CATEGORY,
                category=category,
            )
        fresh = [c for c in ranked if await self.acquirer.installed_unit(c) is None]
        try:
            plan = await self.acquirer.plan(fresh, query=query, category=category)
            result = await self.acquirer.acquire(plan, auto_approve=self.s5.rules.auto_approve_acquisition)
        except AcquisitionError as exc:
            self.attempts.append(Attempt(category, query, None, False, str(exc), time.time()))
            return False
        capacity = dict(self.s4.window.profile().capacity)
        capacity[category] = UNLIMITED
        self.s4.set_capacity(capacity)
        self.acquired.append(result)
        self.attempts.append(
            Attempt(
                category, query, result.plan.unit, True, f"acquired {result.plan.candidate.ref}", time.time()
            )
        )
        return True
