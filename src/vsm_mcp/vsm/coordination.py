"""S2 Coordination: what keeps the units and systems from oscillating, as measured.

The anti-oscillation mechanisms themselves live where they act: the bus's
bounded lanes (fair FIFO, back-pressure, urgent first), each unit's door
(`vsm_mcp.fleet.admission`: a concurrency limit with clients taking turns), the supervisor's
restart back-off and intensity, the fleet's routing table (tool-name
collisions) and the hysteresis of S4. S2 is where their effect is read.

Invariant: every figure comes from those mechanisms' own counters; S2
computes sums, never estimates.
"""

from __future__ import annotations

from vsm_mcp.vsm.bus import Bus
from vsm_mcp.vsm.status import SystemStatus
from vsm_mcp.vsm.supervisor import ChildState, Supervisor


class Coordination:
    """S2: queue depths, throttling, restarts and name collisions, in one place."""

    name = "s2"

    def __init__(self, bus: Bus, supervisor: Supervisor | None = None) -> None:
        self._bus = bus
        self._supervisor = supervisor
        self.public_names = 0
        self.collisions_resolved = 0
        #: The fleet's units: restarts since start, and how many are in back-off between starts now.
        self.unit_restarts = 0
        self.units_backing_off = 0
        #: Damping: units held now after flapping, and holds so far.
        self.units_held = 0
        self.unit_holds = 0
        #: The units' doors (per-unit concurrency limits with fair queues), summed.
        self.calls_in_flight = 0
        self.calls_queued = 0
        self.calls_waited = 0
        self.wait_s = 0.0
        self.units_throttling = 0

    def note_routing(self, *, public_names: int, collisions: int) -> None:
        """The fleet rebuilt its routing table: this many public names, this many collisions resolved."""
        self.public_names = public_names
        self.collisions_resolved = collisions

    def note_units(self, *, restarts: int, backing_off: int, held: int = 0, holds: int = 0) -> None:
        """The fleet's restart back-off and damping, as counted by its units (sampled with their
        states): restarts so far, units in back-off now, units held after flapping now, holds so far."""
        self.unit_restarts = restarts
        self.units_backing_off = backing_off
        self.units_held = held
        self.unit_holds = holds

    def note_doors(self, *, in_flight: int, queued: int, waited: int, wait_s: float, throttling: int) -> None:
        """The units' doors, as they counted: calls in flight and waiting now, calls that waited
        so far and how long in all, units with calls waiting now (back-pressure)."""
        self.calls_in_flight, self.calls_queued = in_flight, queued
        self.calls_waited, self.wait_s, self.units_throttling = waited, wait_s, throttling

    def status(self) -> SystemStatus:
        """Bus queue depth and drops, the VSM's own restarts, the units' restarts and back-offs,
        routing collisions."""
        queued = dropped = 0
        for stats in self._bus.stats().values():
            for lane in (stats.urgent, stats.routine):
                queued += lane.queued
                dropped += lane.dropped
        children = list(self._supervisor.status().values()) if self._supervisor else []
        restarts = sum(c.restarts for c in children)
        failed = sum(1 for c in children if c.state is ChildState.FAILED)
        return SystemStatus(
            "degraded" if failed else ("throttling" if self.units_throttling else "ok"),
            {
                "queued": queued,
                "dropped": dropped,
                "restarts": restarts,
                "children_failed": failed,
                "unit_restarts": self.unit_restarts,
                "units_backing_off": self.units_backing_off,
                "units_held": self.units_held,
                "unit_holds": self.unit_holds,
                "calls_in_flight": self.calls_in_flight,
                "calls_queued": self.calls_queued,
                "calls_waited": self.calls_waited,
                "wait_s": round(self.wait_s, 6),
                "units_throttling": self.units_throttling,
                "public_names": self.public_names,
                "collisions_resolved": self.collisions_resolved,
            },
        )
