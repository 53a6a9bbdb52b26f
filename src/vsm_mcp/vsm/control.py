"""S3 Control: which units hold resources, against the budget S5 set.

Invariants:

* S3's picture changes only on `UnitStateChanged` messages (from the fleet:
  on a state change and when a unit's memory moves): a unit in STARTING or
  READY (or QUARANTINED with a process) holds a process and counts against
  ``Budget.max_units``; its last reported ``rss_bytes`` counts against
  ``Budget.max_rss_bytes``.
* Over budget, the idle candidates are the holding units whose last call
  (measured by S1) is oldest, never-called first, as many as it takes to get
  back under ``max_units``; S3 proposes, the fleet acts.
* S3 sends a `ControlReport` to S5 (routine lane) whenever its content other
  than the timestamp changes, never on every message.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

from vsm_mcp.vsm.bus import Bus, Inbox
from vsm_mcp.vsm.events import ControlReport, UnitState, UnitStateChanged
from vsm_mcp.vsm.operations import Operations
from vsm_mcp.vsm.status import SystemStatus

#: States in which a unit holds a process (and its memory): what the budget counts. A quarantined
#: unit holds one only while its memory is reported (parked, it has no process).
_HOLDING = frozenset({UnitState.STARTING, UnitState.READY, UnitState.QUARANTINED})


def _holds(health: UnitHealth) -> bool:
    return health.state in _HOLDING and (
        health.state is not UnitState.QUARANTINED or health.rss_bytes is not None
    )


@dataclass(frozen=True, slots=True)
class Budget:
    """Resource limits S3 holds the units to (``None``: unlimited)."""

    max_units: int | None = None
    max_rss_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class UnitHealth:
    """The last state S3 heard of one unit."""

    state: UnitState
    since: float
    rss_bytes: int | None
    detail: str
    transitions: int


class Control:
    """S3: unit health and budget use; reports changes to S5."""

    name = "s3"

    def __init__(
        self,
        inbox: Inbox,
        bus: Bus,
        operations: Operations,
        *,
        budget: Budget | None = None,
        to: str = "s5",
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._inbox = inbox
        self._bus = bus
        self._operations = operations
        self.budget = budget or Budget()
        self._to = to
        self._wall_clock = wall_clock
        self._units: dict[str, UnitHealth] = {}
        self._last_sent: ControlReport | None = None
        self.reports_sent = 0

    def observe(self, event: UnitStateChanged) -> None:
        """Take one state change into account."""
        old = self._units.get(event.unit)
        transitions = 1 if old is None else old.transitions + (old.state is not event.state)
        rss = event.rss_bytes if event.state in _HOLDING else None
        since = event.at if old is None or old.state is not event.state else old.since
        self._units[event.unit] = UnitHealth(event.state, since, rss, event.detail, transitions)

    def forget(self, unit: str) -> None:
        """Drop a removed unit from S3's picture."""
        self._units.pop(unit, None)

    def health(self) -> dict[str, UnitHealth]:
        """Last known health of every unit, by name."""
        return dict(sorted(self._units.items()))

    def report(self) -> ControlReport:
        """S3's current view of resource use against the budget."""
        holding = [name for name, h in sorted(self._units.items()) if _holds(h)]
        rss = sum(self._units[name].rss_bytes or 0 for name in holding)
        budget = self.budget
        excess_units = 0 if budget.max_units is None else max(0, len(holding) - budget.max_units)
        over_rss = budget.max_rss_bytes is not None and rss > budget.max_rss_bytes
        idle: tuple[str, ...] = ()
        if excess_units or over_rss:
            last_call = self._operations.last_call_at
            ordered = sorted(holding, key=lambda n: (last_call(n) is not None, last_call(n) or 0.0, n))
            idle = tuple(ordered[: max(excess_units, 1)])
        return ControlReport(
            at=self._wall_clock(),
            running_units=len(holding),
            max_units=budget.max_units,
            rss_bytes=rss,
            max_rss_bytes=budget.max_rss_bytes,
            over_budget=bool(excess_units or over_rss),
            failed_units=tuple(n for n, h in sorted(self._units.items()) if h.state is UnitState.FAILED),
            idle_candidates=idle,
            quarantined_units=tuple(
                n for n, h in sorted(self._units.items()) if h.state is UnitState.QUARANTINED
            ),
        )

    async def run(self) -> None:
        """Follow unit state changes and report every change of the picture to S5."""
        async for envelope in self._inbox:
            if isinstance(envelope.payload, UnitStateChanged):
                self.observe(envelope.payload)
                await self.send_if_changed()

    async def send_if_changed(self) -> bool:
        """Send the current report to S5 unless it equals the last one sent."""
        report = self.report()
        last = self._last_sent
        if last is not None and replace(last, at=report.at) == report:
            return False
        await self._bus.publish(self._to, report, sender=self.name)
        self._last_sent = report
        self.reports_sent += 1
        return True

    def status(self) -> SystemStatus:
        """Budget use and unit health."""
        report = self.report()
        states = Counter(h.state.value for h in self._units.values())
        trouble = report.failed_units or report.quarantined_units
        state = "over_budget" if report.over_budget else ("degraded" if trouble else "ok")
        return SystemStatus(
            state if self._units else "idle",
            {
                "units_holding": report.running_units,
                "max_units": report.max_units,
                "rss_bytes": report.rss_bytes,
                "max_rss_bytes": report.max_rss_bytes,
                "over_budget": report.over_budget,
                "failed": len(report.failed_units),
                **{f"units_{s}": n for s, n in sorted(states.items())},
                "reports_sent": self.reports_sent,
            },
        )
