"""S3: budget use from unit state changes; reports to S5 only when the picture changes."""

from __future__ import annotations

import anyio
import pytest

from vsm_mcp.vsm.bus import Bus
from vsm_mcp.vsm.control import Budget, Control
from vsm_mcp.vsm.events import CallCompleted, ControlReport, UnitState, UnitStateChanged
from vsm_mcp.vsm.operations import Operations

pytestmark = pytest.mark.anyio


class NoSignals:
    def emit(self, signal: object) -> None:
        raise AssertionError(f"unexpected signal {signal}")


async def test_over_budget_names_the_least_recently_used_units_and_reports_each_change_once() -> None:
    async with Bus() as bus:
        s1 = Operations(bus.inbox("s1"), NoSignals())
        inbox = bus.inbox("s3")
        s5 = bus.inbox("s5")
        s3 = Control(inbox, bus, s1, budget=Budget(max_units=2), wall_clock=lambda: 0.0)
        for unit in ("a", "b", "c"):
            s1.register(unit, ["t"])
        s1.record(CallCompleted("a", "t", True, 0.01, at=30.0))
        s1.record(CallCompleted("b", "t", True, 0.01, at=10.0))
        s1.record(CallCompleted("c", "t", True, 0.01, at=20.0))
        events = [
            UnitStateChanged("a", UnitState.STARTING, 1.0),
            UnitStateChanged("a", UnitState.READY, 2.0, rss_bytes=100),
            UnitStateChanged("a", UnitState.READY, 2.5, rss_bytes=100),  # no change: no report
            UnitStateChanged("b", UnitState.READY, 3.0, rss_bytes=200),
            UnitStateChanged("c", UnitState.READY, 4.0, rss_bytes=300),  # third unit: over budget
            UnitStateChanged("c", UnitState.FAILED, 5.0, detail="crash loop"),
        ]
        for event in events:
            await bus.publish("s3", event)
        inbox.close()
        with anyio.fail_after(5):
            await s3.run()
        reports = []
        while s5.stats().routine.queued:
            payload = (await s5.receive()).payload
            assert isinstance(payload, ControlReport)
            reports.append(payload)
    assert [
        (r.running_units, r.rss_bytes, r.over_budget, r.idle_candidates, r.failed_units) for r in reports
    ] == [
        (1, 0, False, (), ()),
        (1, 100, False, (), ()),
        (2, 300, False, (), ()),
        (3, 600, True, ("b",), ()),
        (2, 300, False, (), ("c",)),
    ]
    health = s3.health()
    assert (health["c"].state, health["c"].detail, health["a"].since, health["a"].transitions) == (
        UnitState.FAILED,
        "crash loop",
        2.0,
        2,
    )
    assert s3.status().state == "degraded"


async def test_memory_over_budget_proposes_the_never_called_unit_first() -> None:
    async with Bus() as bus:
        s1 = Operations(bus.inbox("s1"), NoSignals())
        s3 = Control(bus.inbox("s3"), bus, s1, budget=Budget(max_rss_bytes=1000))
        s1.register("used", ["t"])
        s1.register("unused", ["t"])
        s1.record(CallCompleted("used", "t", True, 0.01, at=1.0))
        s3.observe(UnitStateChanged("used", UnitState.READY, 1.0, rss_bytes=600))
        s3.observe(UnitStateChanged("unused", UnitState.READY, 1.0, rss_bytes=600))
        report = s3.report()
    assert (report.over_budget, report.rss_bytes, report.idle_candidates) == (True, 1200, ("unused",))


async def test_a_quarantined_unit_holds_its_resources_and_is_named_in_s3s_report() -> None:
    async with Bus() as bus:
        s1 = Operations(bus.inbox("s1"), NoSignals())
        s3 = Control(bus.inbox("s3"), bus, s1, budget=Budget(max_units=5), wall_clock=lambda: 0.0)
        s3.observe(UnitStateChanged("a", UnitState.READY, 1.0, rss_bytes=100))
        s3.observe(UnitStateChanged("b", UnitState.READY, 1.0, rss_bytes=50))
        assert s3.status().state == "ok"
        s3.observe(UnitStateChanged("b", UnitState.QUARANTINED, 2.0, rss_bytes=60))
        report = s3.report()
        assert report.quarantined_units == ("b",)
        assert (report.running_units, report.rss_bytes) == (2, 160)  # its process still runs
        assert s3.status().state == "degraded"
        # parked, it holds no process: it stays named quarantined but no longer counts
        s3.observe(UnitStateChanged("b", UnitState.QUARANTINED, 3.0, rss_bytes=None))
        parked = s3.report()
        assert parked.quarantined_units == ("b",)
        assert (parked.running_units, parked.rss_bytes) == (1, 100)


async def test_memory_that_grows_is_seen_and_a_parked_quarantined_unit_frees_the_budget() -> None:
    async with Bus() as bus:
        s1 = Operations(bus.inbox("s1"), NoSignals())
        s3 = Control(bus.inbox("s3"), bus, s1, budget=Budget(max_rss_bytes=1000))
        s1.register("a", ["t"])
        s1.register("q", ["t"])
        s1.record(CallCompleted("a", "t", True, 0.01, at=5.0))
        s3.observe(UnitStateChanged("a", UnitState.READY, 1.0, rss_bytes=300))
        s3.observe(UnitStateChanged("q", UnitState.QUARANTINED, 1.0, rss_bytes=300))
        assert s3.report().over_budget is False
        s3.observe(UnitStateChanged("a", UnitState.READY, 2.0, rss_bytes=900))  # the same state, grown
        grown = s3.report()
        assert (grown.over_budget, grown.rss_bytes, grown.idle_candidates) == (True, 1200, ("q",))
        s3.observe(UnitStateChanged("q", UnitState.QUARANTINED, 3.0, rss_bytes=None))  # q parked
        after = s3.report()
        assert (after.over_budget, after.rss_bytes, after.idle_candidates) == (False, 900, ())
