"""S4 Intelligence: the demand the environment makes, and the gaps it opens.

Invariants:

* S4 owns one `DemandWindow` and one `GapDetector`. Each `DemandObserved`
  updates the window in O(1) per event and feeds its reading to the detector,
  once per batch, at the batch's time.
* A `GapDetected` becomes one `AcquisitionProposal` to S5 (routine lane)
  naming the unmatched categories, heaviest first; a `GapCleared` becomes
  one `GapClosed`. The detector's hysteresis means no flapping here either.
* Demand is also counted per (category, time bucket) and written to the store
  with `flush_demand` (every ``flush_every_s`` while running), so demand
  history survives a restart; ``matched`` counts demand that some capability
  category answers at observation time.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import anyio

from vsm_mcp.core.hysteresis import GapCleared, GapDetected, GapDetector, GapState
from vsm_mcp.core.messages import DemandAggregate
from vsm_mcp.core.operators import AddCapability, effect
from vsm_mcp.core.ports import Store
from vsm_mcp.core.variety import DEMAND_BUCKET_S, VarietyReading
from vsm_mcp.core.window import DemandWindow
from vsm_mcp.vsm.bus import Bus, Inbox
from vsm_mcp.vsm.events import AcquisitionProposal, DemandObserved, GapClosed
from vsm_mcp.vsm.forecast import HISTORY_HOURS, HOUR_S, forecast_demand
from vsm_mcp.vsm.notices import Notices
from vsm_mcp.vsm.status import SystemStatus

#: How often running S4 writes demand counts to the store.
FLUSH_EVERY_S = 10.0
#: How often the demand window forgets what aged out when no demand arrives (so a gap clears
#: once traffic stops, instead of waiting for the next event).
AGE_EVERY_S = 1.0
#: How often S4 forecasts the next hour from the stored history, and how many categories it shows.
FORECAST_EVERY_S = 300.0
FORECAST_SHOWN = 5
#: How many unmatched categories a proposal names.
PROPOSAL_TOP = 10


class Intelligence:
    """S4: the demand window, the gap detector, and proposals to S5."""

    name = "s4"

    def __init__(
        self,
        inbox: Inbox,
        bus: Bus,
        store: Store,
        *,
        window: DemandWindow | None = None,
        detector: GapDetector | None = None,
        to: str = "s5",
        flush_every_s: float = FLUSH_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        notices: Notices | None = None,
    ) -> None:
        """``notices``: where a proposal is published (``proposal.made``) once it is sent."""
        self._notices = notices
        self._inbox = inbox
        self._bus = bus
        self._store = store
        self.window = window or DemandWindow(max_events=10_000, max_age_s=3600.0, clock=clock)
        self.detector = detector or GapDetector()
        self._to = to
        self._flush_every_s = flush_every_s
        self._clock = clock
        self._answering: frozenset[str] = frozenset()
        self._capacity: dict[str, int] = {}
        self._unflushed: Counter[tuple[str, int]] = Counter()
        self._unflushed_matched: Counter[tuple[str, int]] = Counter()
        self.proposals = 0
        self.last_event: GapDetected | GapCleared | None = None
        #: The next hour's expected demand per category (`look_ahead`), and the categories of it
        #: that nothing answers now: trending toward a gap.
        self.forecast: dict[str, float] = {}
        self.trending: tuple[str, ...] = ()

    def set_capacity(self, capacity: Mapping[str, int]) -> None:
        """Which categories the system can answer now (and how many calls each)."""
        self.window.set_capacity(capacity)
        self._capacity = dict(capacity)
        self._answering = frozenset(c for c, cap in capacity.items() if cap > 0)

    async def look_ahead(self, now: float | None = None) -> dict[str, float]:
        """Forecast the next hour's demand per category from the stored hourly history
        (`vsm.forecast`, in a thread); categories expected to need at least one call that nothing
        answers now become `trending`."""
        now = time.time() if now is None else now
        await self.flush_demand()
        rows = await self._store.demand_since(int(now) // HOUR_S * HOUR_S - HISTORY_HOURS * HOUR_S)
        ahead = await anyio.to_thread.run_sync(lambda: forecast_demand(rows, now))
        self.forecast = {category: round(values[0], 3) for category, values in ahead.items() if values}
        answered = self._capacity
        self.trending = tuple(sorted(c for c, n in self.forecast.items() if n >= 1.0 and not answered.get(c)))
        return self.forecast

    def observe(self, categories: Sequence[str], at: float) -> GapDetected | GapCleared | None:
        """Count a batch of demand (``at`` in wall-clock seconds) and judge the gap once."""
        now = self._clock()
        if len(categories) == 1:
            self.window.observe(categories[0], now)
        else:
            self.window.observe_many(categories, now)
        bucket = int(at) // DEMAND_BUCKET_S * DEMAND_BUCKET_S
        answering = self._answering
        for category in categories:
            self._unflushed[(category, bucket)] += 1
            if category in answering:
                self._unflushed_matched[(category, bucket)] += 1
        event = self.detector.observe(self.window.reading(), now, len(categories))
        if event is not None:
            self.last_event = event
        return event

    def age(self) -> GapDetected | GapCleared | None:
        """Forget the demand older than the window's age, and judge the gap on what is left.

        With no demand left the coverage is 1 and the gap 0, so a detected gap clears.
        """
        now = self._clock()
        self.window.expire(now)
        event = self.detector.observe(self.window.reading(), now, 0)
        if event is not None:
            self.last_event = event
        return event

    def reading(self) -> VarietyReading:
        """The variety reading of the window now."""
        return self.window.reading()

    def proposal(self, event: GapDetected, at: float) -> AcquisitionProposal:
        """The proposal S4 makes for a detected gap: unmatched categories, heaviest first."""
        profile = self.window.profile()
        unmatched = sorted(
            ((c, n) for c, n in profile.counts.items() if profile.capacity.get(c, 0) < n),
            key=lambda item: (-item[1], item[0]),
        )
        top = tuple(unmatched[:PROPOSAL_TOP])
        return AcquisitionProposal(
            at=at,
            reading=event.reading,
            unmatched=top,
            persisted_events=event.persisted_events,
            persisted_s=event.persisted_s,
            expected_gaps=tuple(
                (category, round(effect(AddCapability(category), profile).after.gap, 6))
                for category, _ in top
            ),
        )

    async def flush_demand(self) -> int:
        """Write the demand counted since the last flush to the store; return rows written."""
        if not self._unflushed:
            return 0
        counts, matched = self._unflushed, self._unflushed_matched
        self._unflushed, self._unflushed_matched = Counter(), Counter()
        rows = [DemandAggregate(c, b, n, matched[(c, b)]) for (c, b), n in sorted(counts.items())]
        await self._store.add_demand(rows)
        return len(rows)

    async def run(self) -> None:
        """Follow demand and flush it periodically, until the inbox closes."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._flush_periodically)
            tg.start_soon(self._age_periodically)
            tg.start_soon(self._look_ahead_periodically)
            try:
                async for envelope in self._inbox:
                    payload = envelope.payload
                    if isinstance(payload, DemandObserved):
                        await self._on_demand(payload)
            finally:
                tg.cancel_scope.cancel()
        await self.flush_demand()

    async def _on_demand(self, demand: DemandObserved) -> None:
        event = self.observe(demand.categories, demand.at)
        if self._notices is not None:
            r = self.window.reading()
            self._notices.publish(
                "variety.read",
                self.name,
                events=r.events,
                categories=r.categories,
                demand_variety_bits=r.demand_variety_bits,
                system_variety_bits=r.system_variety_bits,
                coverage=r.coverage,
                gap=r.gap,
            )
        await self._judged(event, demand.at)

    async def _age_periodically(self) -> None:
        while True:
            await anyio.sleep(AGE_EVERY_S)
            await self._judged(self.age(), time.time())

    async def _judged(self, event: GapDetected | GapCleared | None, at: float) -> None:
        """Tell S5 of a detected gap (a proposal) or a cleared one."""
        if isinstance(event, GapDetected):
            self.proposals += 1
            proposal = self.proposal(event, at)
            await self._bus.publish(self._to, proposal, sender=self.name)
            if self._notices is not None:
                self._notices.publish(
                    "proposal.made",
                    self.name,
                    gap=proposal.reading.gap,
                    unmatched=[list(u) for u in proposal.unmatched],
                )
        elif isinstance(event, GapCleared):
            await self._bus.publish(self._to, GapClosed(at, event.reading), sender=self.name)

    async def _look_ahead_periodically(self) -> None:
        while True:
            await anyio.sleep(FORECAST_EVERY_S)
            await self.look_ahead()

    async def _flush_periodically(self) -> None:
        while True:
            await anyio.sleep(self._flush_every_s)
            await self.flush_demand()

    def status(self) -> SystemStatus:
        """The variety reading and the detector's state."""
        r = self.window.reading()
        return SystemStatus(
            "gap" if self.detector.state is GapState.DETECTED else ("ok" if r.events else "idle"),
            {
                "events": r.events,
                "categories": r.categories,
                "demand_variety_bits": round(r.demand_variety_bits, 6),
                "system_variety_bits": round(r.system_variety_bits, 6),
                "coverage": round(r.coverage, 6),
                "gap": round(r.gap, 6),
                "detector": self.detector.state.value,
                "proposals": self.proposals,
                "forecast_next_hour": ", ".join(
                    f"{c} {n:g}"
                    for c, n in sorted(self.forecast.items(), key=lambda kv: -kv[1])[:FORECAST_SHOWN]
                ),
                "trending_to_gap": ", ".join(self.trending),
            },
        )
