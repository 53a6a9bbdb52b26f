"""The algedonic channel: a flood becomes one alert that reaches S5 ahead of routine traffic."""

from __future__ import annotations

import anyio
import pytest

from vsm_mcp.core.messages import AlgedonicAlert, Priority, Severity, Valence
from vsm_mcp.store.memory import MemoryStore
from vsm_mcp.vsm.algedonic import AlgedonicChannel
from vsm_mcp.vsm.bus import Bus
from vsm_mcp.vsm.events import ControlReport
from vsm_mcp.vsm.policy import Handled, Policy

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _control_report(i: int) -> ControlReport:
    return ControlReport(
        at=float(i),
        running_units=i,
        max_units=10,
        rss_bytes=0,
        max_rss_bytes=None,
        over_budget=False,
        failed_units=(),
        idle_candidates=(),
    )


async def test_1000_identical_pains_are_one_alert_of_count_1000_handled_before_routine_s3_traffic() -> None:
    clock = FakeClock()
    wall = FakeClock()
    async with MemoryStore.open() as store, Bus() as bus:
        inbox = bus.inbox("s5")
        s5 = Policy(inbox, store)
        for i in range(10):
            await bus.publish("s5", _control_report(i), sender="s3")
        channel = AlgedonicChannel(bus, window_s=1.0, clock=clock, wall_clock=wall)
        for _ in range(1000):
            channel.pain("unit/fs", "call_failed", Severity.HIGH, "ENOENT")
            clock.now += 0.0005
            wall.now += 0.0005
        assert await channel.deliver_due() == 0  # the window (1 s) is still open
        clock.now += 1.0
        assert await channel.deliver_due() == 1

        inbox.close()  # S5 drains what is queued, then its run returns
        with anyio.fail_after(5):
            await s5.run()

        assert (
            list(s5.journal)
            == [Handled(Priority.URGENT, "AlgedonicAlert", 1)]
            + [Handled(Priority.ROUTINE, "ControlReport", None)] * 10
        )
        [alert] = await store.alerts()
        assert (alert.source, alert.kind, alert.valence, alert.severity, alert.count) == (
            "unit/fs",
            "call_failed",
            Valence.PAIN,
            Severity.HIGH,
            1000,
        )
        assert alert.first_at == 1000.0
        assert alert.last_at == pytest.approx(1000.0 + 999 * 0.0005)
        assert s5.last_control == _control_report(9)
        assert s5.status().metrics["attention"] == 1
        stats = channel.stats()
        assert (stats.signals, stats.delivered_alerts, stats.delivered_signals) == (1000, 1, 1000)


async def test_running_channel_delivers_when_the_window_closes() -> None:
    async with Bus() as bus:
        inbox = bus.inbox("s5")
        channel = AlgedonicChannel(bus, window_s=0.05)
        async with anyio.create_task_group() as tg:
            tg.start_soon(channel.run)
            await anyio.wait_all_tasks_blocked()
            for _ in range(3):
                channel.pain("vsm/s3", "crash", Severity.MEDIUM, "x")
            with anyio.fail_after(5):
                envelope = await inbox.receive()
            tg.cancel_scope.cancel()
        assert envelope.priority is Priority.URGENT
        assert envelope.sender == "algedonic"
        assert isinstance(envelope.payload, AlgedonicAlert)
        assert envelope.payload.count == 3
        assert channel.sent == 1


async def test_rate_limited_alerts_arrive_later_and_none_is_lost() -> None:
    clock = FakeClock()
    async with Bus() as bus:
        inbox = bus.inbox("s5")
        channel = AlgedonicChannel(bus, window_s=1.0, max_alerts_per_s=2.0, clock=clock)
        for i in range(5):
            channel.pain(f"unit/{i}", "crash", Severity.LOW, "x")
        clock.now += 1.0
        assert await channel.deliver_due() == 2
        assert channel.stats().held == 3
        clock.now += 1.0
        assert await channel.deliver_due() == 2
        clock.now += 0.5
        assert await channel.deliver_due() == 1
        assert inbox.stats().urgent.queued == 5


async def test_alerts_pending_at_shutdown_are_offered_to_s5() -> None:
    async with Bus() as bus:
        inbox = bus.inbox("s5")
        channel = AlgedonicChannel(bus, window_s=60.0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(channel.run)
            await anyio.wait_all_tasks_blocked()
            channel.pain("vsm/s4", "crash", Severity.HIGH, "last words")
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        envelope = await inbox.receive()
        assert isinstance(envelope.payload, AlgedonicAlert)
        assert (envelope.payload.detail, channel.sent, channel.lost_at_shutdown) == ("last words", 1, 0)
