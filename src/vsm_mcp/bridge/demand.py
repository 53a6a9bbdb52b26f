"""The gateway's demand and the fleet's capabilities, to the VSM: `SystemDemand`.

The gateway records each request's demand category here (`DemandSink`);
`SystemDemand` batches it onto the bus as `DemandObserved` for S4 (at most
`DEMAND_FLUSH_S` old, at once when `DEMAND_BATCH_MAX` are pending: back-pressure,
no drop), and on a fleet change tells S4 what it can answer, S1 and S2 the
fleet's units and routes, and the store its capabilities (filed in the demand
category of each unit, and under the catalog name a unit was acquired as).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import anyio

from vsm_mcp import report
from vsm_mcp.acquisition.pipeline import INSTALLED_KEY
from vsm_mcp.bridge.observers import OutcomeRecorder
from vsm_mcp.bridge.self_model import Limits, brief, self_model
from vsm_mcp.core.breaker import BreakerState
from vsm_mcp.core.messages import Capability
from vsm_mcp.core.ports import Store
from vsm_mcp.core.variety import UNLIMITED
from vsm_mcp.discovery.outcomes import OutcomeLedger
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.vsm.events import DemandObserved, UnitState
from vsm_mcp.vsm.viable import ViableSystem

#: Demand is handed to S4 in batches at most this old: the variety reading lags by at most this.
DEMAND_FLUSH_S = 0.02
#: A batch is sent at once when it reaches this size (bounded memory under bursts).
DEMAND_BATCH_MAX = 512

#: Units whose tools count as capacity: running, or parked by S3 (a call starts them).
_SERVING = frozenset({UnitState.READY, UnitState.PARKED})


class SystemDemand:
    """The gateway's `DemandSink` and `StatusSource`, backed by the viable system."""

    def __init__(
        self,
        system: ViableSystem,
        fleet: Fleet,
        store: Store,
        outcomes: OutcomeRecorder | None = None,
        limits: Limits | None = None,
    ) -> None:
        self._limits = limits
        self._system = system
        self._fleet = fleet
        self._store = store
        self._outcomes = outcomes
        self._pending: list[str] = []
        #: Set when there is something to flush (demand, or changed capabilities).
        self._wake = anyio.Event()
        self._wake.set()  # capabilities start dirty
        #: Set when the pending batch is full: it goes without waiting out the flush window.
        self._full = anyio.Event()
        self._capabilities_dirty = True
        #: The categories the gateway routes (`set_capabilities`); S4 counts those of READY units only.
        self._offered: set[str] = set()
        self.matched = 0
        self.unmatched = 0

    # -- DemandSink ----------------------------------------------------------
    def record(self, category: str, matched: bool) -> None:
        self._pending.append(category)
        if matched:
            self.matched += 1
        else:
            self.unmatched += 1
        if len(self._pending) == 1:
            self._wake.set()
        elif len(self._pending) >= DEMAND_BATCH_MAX:
            self._full.set()

    def set_capabilities(self, categories: Iterable[str]) -> None:
        self._offered = set(categories)
        self.refresh_capacity()
        self._capabilities_dirty = True
        self._wake.set()

    def refresh_capacity(self) -> None:
        """Tell S4 what the system can answer now: the routed categories of READY units (and of
        PARKED ones, which a call starts) whose breaker is not open and whose calls are not in an
        error-rate spike (S1's judgement over its last calls).

        A unit that is failed, backing off or starting answers nothing (its tools stay routed, so a
        call of one is told why), and one whose calls mostly fail answers no better; counting
        either would hide the gap S3 and S1 see. Called when the routes change and at each
        sampling round (`bridge.sampling`).
        """
        units = self._fleet.units
        s1 = self._system.s1
        known = set(s1.units)
        able: set[str] = set()
        for route in self._fleet.routes.tools.values():
            unit = units.get(route.unit)
            if (
                unit is not None
                and unit.state in _SERVING
                and unit.breaker.state is not BreakerState.OPEN
                and not (route.unit in known and s1.spiking(route.unit))
            ):
                able.add(unit.spec.category or route.public)
        self._system.s4.set_capacity(dict.fromkeys(self._offered & able, UNLIMITED))

    # -- SelfSource ------------------------------------------------------------
    async def self_model(self) -> dict[str, Any]:
        """The system's account of itself now (`bridge.self_model`)."""
        ledger = self._outcomes.ledger if self._outcomes is not None else OutcomeLedger()
        names = self._outcomes.catalog_names if self._outcomes is not None else {}
        limits = self._limits or Limits("unknown", False, 0, False)
        return await self_model(self._system, self._fleet, self._store, ledger, limits, catalog_names=names)

    async def self_brief(self) -> str:
        """The self-model in a few hundred words (`bridge.self_model.brief`)."""
        return brief(await self.self_model())

    # -- StatusSource ----------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            **self._system.status().to_dict(),
            "demand": {"matched": self.matched, "unmatched": self.unmatched},
        }

    def variety(self) -> dict[str, Any]:
        reading = self._system.s4.reading()
        profile = self._system.s4.window.profile()
        unmet = {c: n for c, n in profile.counts.items() if c not in profile.capacity}
        return {
            **report.reading_dict(reading),
            "detector": self._system.s4.detector.state.value,
            "unmatched_categories": dict(sorted(unmet.items(), key=lambda kv: (-kv[1], kv[0]))[:20]),
        }

    # -- running -----------------------------------------------------------------
    async def run(self) -> None:
        """Hand demand to S4 in batches and mirror capabilities into S1 and the store.

        Idle, it sleeps; the first demand after a flush opens a window of `DEMAND_FLUSH_S`
        (or less, if the batch fills) in which the batch gathers.
        """
        try:
            while True:
                await self._wake.wait()
                with anyio.move_on_after(DEMAND_FLUSH_S):
                    await self._full.wait()
                self._wake, self._full = anyio.Event(), anyio.Event()
                await self.flush()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                await self.flush()

    async def flush(self) -> None:
        """Send pending demand now; sync capabilities if the fleet changed."""
        if self._pending:
            batch, self._pending = tuple(self._pending), []
            await self._system.bus.publish("s4", DemandObserved(batch, time.time()), sender="gateway")
        if self._capabilities_dirty:
            self._capabilities_dirty = False
            await self._sync_capabilities()

    async def _sync_capabilities(self) -> None:
        installed = await self._store.kv_get(INSTALLED_KEY)
        if isinstance(installed, dict) and self._outcomes is not None:
            self._outcomes.catalog_names = {
                unit: str(record["server"])
                for unit, record in installed.items()
                if isinstance(record, dict) and record.get("server")
            }
        by_unit: dict[str, list[Capability]] = defaultdict(list)
        for route in self._fleet.routes.tools.values():
            unit = self._fleet.units.get(route.unit)
            category = unit.spec.category if unit is not None and unit.spec.category else route.public
            by_unit[route.unit].append(Capability(route.unit, route.name, category, route.description))
        routes = self._fleet.routes
        self._system.s2.note_routing(public_names=len(routes.tools), collisions=routes.collisions)
        s1 = self._system.s1
        for name in set(s1.units) - set(self._fleet.units):
            s1.deregister(name)
        for name in self._fleet.units:
            caps = by_unit.get(name, [])
            s1.register(name, [c.tool for c in caps])
            await self._store.put_capabilities(name, caps)
        for name in {c.unit for c in await self._store.capabilities()} - set(self._fleet.units):
            await self._store.put_capabilities(name, [])
