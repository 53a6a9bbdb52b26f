"""`ViableSystem`: S1..S5, S3* and the algedonic channel on one bus, under one supervisor.

The composition root builds one and enters it; the fleet and gateway then
feed it real events (`CallCompleted`, `UnitStateChanged`, `DemandObserved`)
through `ViableSystem.bus` and register units with ``system.s1``.

Invariants:

* Entering starts every component as a child of one `Supervisor` (one-for-one,
  restart intensity escalated as algedonic pain to S5); leaving cancels them
  all, lets S5 store the alerts still queued (at most `SHUTDOWN_FLUSH_S`),
  then closes the bus. Nothing runs outside that task group. The store must
  outlive the system: close it after leaving.
* `status` is built from the components' own counters at call time, and has
  the same shape for the whole and for each unit (`ViableStatus`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

import anyio

from vsm_mcp.core.drift import DriftPolicy
from vsm_mcp.core.hysteresis import GapDetector, HysteresisPolicy
from vsm_mcp.core.messages import source_unit
from vsm_mcp.core.ports import Store
from vsm_mcp.core.variety import set_variety
from vsm_mcp.core.window import DemandWindow
from vsm_mcp.vsm.algedonic import AlgedonicChannel
from vsm_mcp.vsm.audit import AUDIT_INTERVAL_S, AuditScheduler, Probe
from vsm_mcp.vsm.bus import Bus
from vsm_mcp.vsm.control import Budget, Control
from vsm_mcp.vsm.coordination import Coordination
from vsm_mcp.vsm.intelligence import Intelligence
from vsm_mcp.vsm.notices import Notices
from vsm_mcp.vsm.operations import Operations
from vsm_mcp.vsm.policy import Policy, PolicyRules
from vsm_mcp.vsm.status import SystemStatus, ViableStatus
from vsm_mcp.vsm.supervisor import MAX_RESTARTS, RESTART_BACKOFF_S, WITHIN_S, Supervisor

#: How long shutdown may spend storing the alerts still queued for S5: a few
#: store writes, bounded so a wedged store cannot hang the process on exit.
SHUTDOWN_FLUSH_S = 2.0


@dataclass(frozen=True, slots=True)
class ViableConfig:
    """Tunables of the running systems (the composition root maps settings onto these)."""

    alert_window_s: float = 1.0
    max_alerts_per_s: float = 10.0
    max_restarts: int = MAX_RESTARTS
    restart_within_s: float = WITHIN_S
    restart_backoff_s: float = RESTART_BACKOFF_S
    audit_probability: float = 0.2
    audit_interval_s: float = AUDIT_INTERVAL_S
    demand_max_events: int = 10_000
    demand_max_age_s: float | None = 3600.0
    hysteresis: HysteresisPolicy = field(default_factory=HysteresisPolicy)
    budget: Budget = field(default_factory=Budget)
    rules: PolicyRules = field(default_factory=PolicyRules)
    #: S1's drift detection per unit and tool (None: off).
    drift: DriftPolicy | None = field(default_factory=DriftPolicy)
    #: Where S4 sends its proposals: S5 itself, or an acquisition loop that hands them to S5 and acts.
    proposals_to: str = "s5"


class ViableSystem:
    """The whole VSM of one gateway; an async context manager that runs it."""

    def __init__(
        self,
        name: str,
        store: Store,
        *,
        probe: Probe,
        rng: random.Random,
        config: ViableConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        notices: Notices | None = None,
    ) -> None:
        cfg = config or ViableConfig()
        self.name = name
        #: What happened, for anyone to await or follow (`vsm.notices`).
        self.notices = notices if notices is not None else Notices(clock=wall_clock)
        self.config = cfg
        self.bus = Bus()
        bus = self.bus
        self.channel = AlgedonicChannel(
            bus,
            window_s=cfg.alert_window_s,
            max_alerts_per_s=cfg.max_alerts_per_s,
            clock=clock,
            wall_clock=wall_clock,
        )
        self.supervisor = Supervisor(
            name,
            self.channel,
            max_restarts=cfg.max_restarts,
            within_s=cfg.restart_within_s,
            backoff_s=cfg.restart_backoff_s,
            clock=clock,
            wall_clock=wall_clock,
        )
        self.s1 = Operations(bus.inbox("s1"), self.channel, notices=self.notices, drift=cfg.drift)
        self.s2 = Coordination(bus, self.supervisor)
        self.s3 = Control(bus.inbox("s3"), bus, self.s1, budget=cfg.budget, wall_clock=wall_clock)
        self.s3_star = AuditScheduler(
            lambda: self.s1.units,
            probe,
            store,
            self.channel,
            rng=rng,
            probability=cfg.audit_probability,
            interval_s=cfg.audit_interval_s,
            clock=clock,
            wall_clock=wall_clock,
        )
        window = DemandWindow(max_events=cfg.demand_max_events, max_age_s=cfg.demand_max_age_s, clock=clock)
        self.s4 = Intelligence(
            bus.inbox("s4"),
            bus,
            store,
            window=window,
            detector=GapDetector(cfg.hysteresis),
            to=cfg.proposals_to,
            clock=clock,
            notices=self.notices,
        )
        self.s5 = Policy(bus.inbox("s5"), store, rules=cfg.rules, wall_clock=wall_clock)

    async def __aenter__(self) -> ViableSystem:
        await self.supervisor.__aenter__()
        sup = self.supervisor
        sup.start("algedonic", self.channel.run)
        sup.start("s5", self.s5.run)
        sup.start("s1", self.s1.run)
        sup.start("s3", self.s3.run)
        sup.start("s4", self.s4.run)
        sup.start("s3_star", self.s3_star.run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        try:
            return await self.supervisor.__aexit__(exc_type, exc, tb)
        finally:
            try:
                with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_FLUSH_S):
                    await self.s5.drain_urgent()
            finally:
                self.bus.close()

    def status(self) -> ViableStatus:
        """The whole, then each unit in the same shape."""
        stats = self.channel.stats()
        algedonic = SystemStatus(
            "attention" if self.s5.attention else "ok",
            {
                "signals": stats.signals,
                "alerts_sent": self.channel.sent,
                "pending": stats.pending_alerts,
                "held_by_rate_limit": stats.held,
                "folded": stats.folded,
            },
        )
        return ViableStatus(
            name=self.name,
            s1=self.s1.status(),
            s2=self.s2.status(),
            s3=self.s3.status(),
            s3_star=self.s3_star.status(),
            s4=self.s4.status(),
            s5=self.s5.status(),
            algedonic=algedonic,
            units=tuple(self.unit_status(unit) for unit in self.s1.units),
        )

    def unit_status(self, unit: str) -> ViableStatus:
        """One unit as a viable system: its operations, control, audit, variety and alerts.

        S1, S3, S3* and the algedonic view are this system's measurements of the unit. A unit
        that reported its own status (`Operations.set_nested`: it is a VSM-MCP) brings its own
        S2, S4, S5 and units along; a plain server has no S2 or S5 of its own (state ``none``)
        and its S4 is the variety of the tools it offers.
        """
        s1 = self.s1
        calls = s1.unit_stats(unit)
        tools = s1.tool_stats(unit)
        health = self.s3.health().get(unit)
        finding = self.s3_star.last.get(unit)
        attention = sum(1 for a in self.s5.attention.values() if _concerns(a.source, unit))
        nested = s1.nested(unit)
        return ViableStatus(
            name=unit,
            s1=SystemStatus(
                "degraded" if s1.spiking(unit) else ("ok" if calls.calls else "idle"),
                {
                    "calls": calls.calls,
                    "errors": calls.errors,
                    "mean_latency_ms": calls.mean_latency_ms,
                    "max_latency_ms": calls.max_latency_ms,
                    "last_error": calls.last_error,
                },
            ),
            s2=nested.s2 if nested else _NONE,
            s3=SystemStatus("unreported")
            if health is None
            else SystemStatus(
                health.state.value,
                {"rss_bytes": health.rss_bytes, "since": health.since, "transitions": health.transitions},
            ),
            s3_star=SystemStatus("unaudited")
            if finding is None
            else SystemStatus(
                "ok" if finding.ok else "failed",
                {"check": finding.check, "at": finding.at, "latency_ms": finding.latency_ms},
            ),
            s4=nested.s4
            if nested
            else SystemStatus(
                "ok" if tools else "idle", {"tools": len(tools), "variety_bits": set_variety(len(tools))}
            ),
            s5=nested.s5 if nested else _NONE,
            algedonic=SystemStatus("attention" if attention else "ok", {"attention": attention}),
            units=nested.units if nested else (),
        )


#: A system a plain server does not have (it is governed by this gateway's S2 and S5).
_NONE = SystemStatus("none")


def _concerns(source: str, unit: str) -> bool:
    """Whether an alert from ``source`` is about ``unit`` (every signal about a unit names it one way)."""
    return source_unit(source) == unit
