"""No field of the viable system's status (`ViableSystem.status`, the ``vsm`` of ``vsm://status``
and of the stored live snapshot) is a constant: a quiet and a busy system, each driven through its
own inputs (configuration, bus events, the fleet's notes to S2, demand, audits, alerts, a crashing
child), and every leaf moves or disappears."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from tests.leaves import all_paths, constant_fields

from vsm_mcp.core.drift import DriftPolicy
from vsm_mcp.core.hysteresis import HysteresisPolicy
from vsm_mcp.core.messages import AlgedonicAlert, DemandAggregate, Priority, Severity, Valence
from vsm_mcp.core.variety import DEMAND_BUCKET_S, UNLIMITED
from vsm_mcp.store.memory import MemoryStore
from vsm_mcp.vsm.audit import ProbeResult
from vsm_mcp.vsm.control import Budget
from vsm_mcp.vsm.events import CallCompleted, DemandObserved, UnitState, UnitStateChanged
from vsm_mcp.vsm.policy import PolicyRules
from vsm_mcp.vsm.status import SystemStatus, ViableStatus
from vsm_mcp.vsm.viable import ViableConfig, ViableSystem

pytestmark = pytest.mark.anyio

#: Leaves constant by definition, each with why.
ALLOWED = {
    "units[].s2.metrics",  # a plain server has no S2 of its own: empty (a nested one's fill units[].s2.metrics.*)
    "units[].s5.metrics",  # idem for S5
    "units[].units",  # a plain server has no units (a nested one's are units[].units[].*)
}


class AlertsStore(MemoryStore):
    """A MemoryStore a test can wait on until S5 has stored ``n`` alerts."""

    def __init__(self) -> None:
        super().__init__()
        self.stored = 0
        self._changed = anyio.Event()

    async def record_alert(self, alert: AlgedonicAlert) -> int:
        alert_id = await super().record_alert(alert)
        self.stored += 1
        self._changed.set()
        self._changed = anyio.Event()
        return alert_id

    async def wait_alerts(self, n: int) -> None:
        with anyio.fail_after(10):
            while self.stored < n:
                await self._changed.wait()


@asynccontextmanager
async def _alerts_store() -> AsyncIterator[AlertsStore]:
    store = AlertsStore()
    try:
        yield store
    finally:
        await store.close()


async def _probe(unit: str) -> ProbeResult:
    return ProbeResult(
        f"ping-{unit}", not unit.startswith("bad"), "" if not unit.startswith("bad") else "timeout"
    )


async def _quiet() -> dict[str, Any]:
    """One unit, one good call, nothing asked for that is missing."""
    async with _alerts_store() as store:
        config = ViableConfig(alert_window_s=0.01)
        system = ViableSystem("gw-quiet", store, probe=_probe, rng=random.Random(1), config=config)
        system.s1.register("fs", ["read"])
        system.s2.note_routing(public_names=1, collisions=0)
        async with system:
            await system.bus.publish("s1", CallCompleted("fs", "read", True, 0.002, at=1.0))
            await system.bus.publish("s3", UnitStateChanged("fs", UnitState.STARTING, 1.0, rss_bytes=1000))
            await system.s3_star.audit_once()
            system.channel.pain("unit:fs", "slow", Severity.LOW, "below S5's escalation")
            await store.wait_alerts(1)
            await anyio.wait_all_tasks_blocked()
            return system.status().to_dict()


async def _crash() -> None:
    raise RuntimeError("boom")


async def _busy() -> dict[str, Any]:
    """Three units (one a VSM-MCP of its own, one failing its audit), calls failing and drifting,
    a budget exceeded, demand nothing answers, alerts held and folded, a child crashing, S1's
    inbox overflowing."""
    now = time.time()
    config = ViableConfig(
        alert_window_s=0.05,
        max_alerts_per_s=2.0,
        max_restarts=1,
        restart_within_s=60.0,
        restart_backoff_s=0.0,
        audit_probability=1.0,
        audit_interval_s=45.0,
        hysteresis=HysteresisPolicy(upper=0.3, lower=0.1, persist_events=1, persist_s=0.0),
        budget=Budget(max_units=1, max_rss_bytes=4000),
        rules=PolicyRules(auto_approve_acquisition=True, escalate_at=Severity.MEDIUM),
        drift=DriftPolicy(warmup=4, error_h=1.0, latency_h=1.0),
    )
    async with _alerts_store() as store:
        bucket = int(now) // DEMAND_BUCKET_S * DEMAND_BUCKET_S
        await store.add_demand(
            [DemandAggregate("weather", bucket - h * DEMAND_BUCKET_S, 20 + h, 0) for h in range(1, 4)]
        )
        system = ViableSystem("gw-busy", store, probe=_probe, rng=random.Random(2), config=config)
        system.s1.register("fs", ["read", "write", "stat"])
        system.s1.register("bad-search", ["query"])
        system.s1.register("nested", ["ask"])
        system.s1.set_nested(
            "nested",
            ViableStatus(
                "nested",
                s2=SystemStatus("throttling", {"queued": 3}),
                s4=SystemStatus("gap", {"gap": 0.4}),
                s5=SystemStatus("attention", {"attention": 2}),
                units=(ViableStatus("web"),),
            ),
        )
        system.s2.note_routing(public_names=5, collisions=2)
        system.s2.note_units(restarts=3, backing_off=1, held=1, holds=2)
        system.s2.note_doors(in_flight=2, queued=1, waited=4, wait_s=0.5, throttling=1)
        system.s4.set_capacity({"files": UNLIMITED, "maps": UNLIMITED})
        async with system:
            system.supervisor.start("crashing", _crash)
            for i in range(24):  # fast successes, then slow failures: a spike and drifts
                ok = i < 8
                event = CallCompleted(
                    "fs",
                    "read" if i % 2 else "write",
                    ok,
                    0.01 if ok else 2.0,
                    at=now,
                    error="" if ok else "EIO",
                )
                await system.bus.publish("s1", event)
            for unit, state, rss in (
                ("fs", UnitState.READY, 5000),
                ("bad-search", UnitState.READY, 100),
                ("bad-search", UnitState.FAILED, None),
                ("nested", UnitState.QUARANTINED, 700),
            ):
                await system.bus.publish("s3", UnitStateChanged(unit, state, now, rss_bytes=rss))
            await system.bus.publish(
                "s4", DemandObserved(("weather", "weather", "files", "maps", "news"), now)
            )
            await system.s4.look_ahead(now)
            await system.s3_star.audit_once()
            await system.s3_star.audit_once()
            # Two severe signals about fs (one alert, for an operator), then more distinct alerts
            # than the channel keeps pending (the rest fold into one) while the rate limit holds them.
            system.channel.pain("unit:fs", "manual", Severity.HIGH, "operator-visible")
            system.channel.pain("unit:fs", "manual", Severity.HIGH, "operator-visible")
            for i in range(1030):
                system.channel.pain(f"unit:x{i}", "noise", Severity.LOW, "noise")
            await store.wait_alerts(2)  # more than the quiet system's one
            # The rate limit holds an alert once its window closes with no token left: time must
            # pass for that (the windows are 50 ms), so wait until the channel has held one.
            with anyio.fail_after(10):
                while system.channel.stats().held == 0:  # noqa: ASYNC110 - a time window, no event
                    await anyio.sleep(0.01)
            await system.supervisor.wait_settled("crashing")
            await anyio.wait_all_tasks_blocked()
            # Offered while S1 and S5 cannot read: more than S1's routine lane holds, and alerts
            # waiting in S5's urgent lane.
            for _ in range(300):
                system.bus.offer("s1", CallCompleted("fs", "stat", True, 0.001, at=now))
            for i in range(3):
                alert = AlgedonicAlert(f"unit:y{i}", "late", Valence.PAIN, Severity.LOW, 1, now, now, "late")
                system.bus.offer("s5", alert, priority=Priority.URGENT)
            return system.status().to_dict()


async def test_every_field_of_the_viable_status_moves_with_its_inputs() -> None:
    quiet, busy = await _quiet(), await _busy()
    assert all_paths([quiet, busy]) >= ALLOWED
    assert constant_fields([quiet, busy], ALLOWED) == []


async def test_a_planted_constant_field_is_reported() -> None:
    docs = [await _quiet(), await _busy()]
    for doc in docs:
        doc["s1"]["metrics"]["planted"] = 0
        for unit in doc["units"]:
            unit["s2"]["metrics"]["planted"] = "none"
    assert constant_fields(docs, ALLOWED) == ["s1.metrics.planted", "units[].s2.metrics.planted"]
