"""Supervision: one-for-one restarts, restart intensity, escalation to S5 and into the store."""

from __future__ import annotations

import logging

import anyio
import pytest

from vsm_mcp.core.messages import AlgedonicAlert, AlgedonicSignal, Severity, Valence
from vsm_mcp.store.memory import MemoryStore
from vsm_mcp.vsm.algedonic import AlgedonicChannel
from vsm_mcp.vsm.bus import Bus
from vsm_mcp.vsm.policy import Policy
from vsm_mcp.vsm.supervisor import ChildState, Supervisor

pytestmark = pytest.mark.anyio


class AlertSignallingStore(MemoryStore):
    """A MemoryStore that lets a test wait for the first stored alert."""

    def __init__(self) -> None:
        super().__init__()
        self.alert_stored = anyio.Event()

    async def record_alert(self, alert: AlgedonicAlert) -> int:
        alert_id = await super().record_alert(alert)
        self.alert_stored.set()
        return alert_id


class SignalList:
    def __init__(self) -> None:
        self.signals: list[AlgedonicSignal] = []

    def emit(self, signal: AlgedonicSignal) -> None:
        self.signals.append(signal)


async def test_a_crash_looping_child_is_restarted_then_escalated_to_s5_and_stored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = AlertSignallingStore()
    runs = 0

    async def crash() -> None:
        nonlocal runs
        runs += 1
        raise RuntimeError(f"boom {runs}")

    async with Bus() as bus:
        channel = AlgedonicChannel(bus, window_s=0.05)
        s5 = Policy(bus.inbox("s5"), store)
        async with Supervisor("vsm", channel, max_restarts=3, within_s=60.0, backoff_s=0.0) as sup:
            sup.start("algedonic", channel.run)
            sup.start("s5", s5.run)
            sup.start("unit/flaky", crash)
            with anyio.fail_after(5):
                final = await sup.wait_settled("unit/flaky")
                await store.alert_stored.wait()
            assert sup.status()["s5"].state is ChildState.RUNNING

    assert (final.state, final.starts, final.restarts, final.last_error) == (
        ChildState.FAILED,
        4,
        3,
        "RuntimeError: boom 4",
    )
    assert runs == 4
    [alert] = await store.alerts()
    assert (alert.source, alert.kind, alert.valence, alert.severity, alert.count) == (
        "vsm/unit/flaky",
        "restart_intensity_exceeded",
        Valence.PAIN,
        Severity.CRITICAL,
        1,
    )
    assert "failed 4 times within 60s (limit 3 restarts)" in alert.detail
    [decision] = await store.decisions()
    assert (decision.choice, decision.subject) == (
        "escalate_to_operator",
        "vsm/unit/flaky:restart_intensity_exceeded",
    )
    crashes = [r for r in caplog.records if "crashed" in r.getMessage()]
    assert len(crashes) == 4
    assert all(r.levelno == logging.ERROR and r.exc_info for r in crashes)


async def test_a_child_that_fails_once_is_restarted_and_keeps_running() -> None:
    sink = SignalList()
    attempts = 0
    healthy = anyio.Event()

    async def flaky_once() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ValueError("first start fails")
        healthy.set()
        await anyio.sleep_forever()

    async with Supervisor("vsm", sink, backoff_s=0.0) as sup:
        sup.start("s3", flaky_once)
        with anyio.fail_after(5):
            await healthy.wait()
        status = sup.status()["s3"]
        assert (status.state, status.starts, status.restarts, status.last_error) == (
            ChildState.RUNNING,
            2,
            1,
            "ValueError: first start fails",
        )
        stopped = await sup.stop("s3")
    assert stopped.state is ChildState.STOPPED
    assert sink.signals == []


async def test_failures_spread_wider_than_the_intensity_window_never_escalate() -> None:
    sink = SignalList()
    now = 0.0

    def clock() -> float:
        return now

    starts = 0
    done = anyio.Event()

    async def fail_every_ten_seconds() -> None:
        nonlocal now, starts
        starts += 1
        now += 10.0  # each run lasts 10 s of the injected clock, longer than within_s
        if starts == 8:
            done.set()
            return
        raise OSError("transient")

    async with Supervisor("vsm", sink, max_restarts=1, within_s=5.0, backoff_s=0.0, clock=clock) as sup:
        sup.start("unit/slow", fail_every_ten_seconds)
        with anyio.fail_after(5):
            final = await sup.wait_settled("unit/slow")
    assert (final.state, final.starts, final.restarts) == (ChildState.STOPPED, 8, 7)
    assert sink.signals == []


async def test_zero_restarts_escalates_on_the_first_failure_exactly_once() -> None:
    sink = SignalList()

    async def crash() -> None:
        raise RuntimeError("no")

    async with Supervisor("gw", sink, max_restarts=0, backoff_s=0.0) as sup:
        sup.start("s4", crash)
        with anyio.fail_after(5):
            final = await sup.wait_settled("s4")
        assert (final.state, final.starts, final.restarts) == (ChildState.FAILED, 1, 0)
        # A failed child may be started again by name (an operator's restart).
        sup.start("s4", anyio.sleep_forever)
        await anyio.wait_all_tasks_blocked()
        assert sup.status()["s4"].state is ChildState.RUNNING
    assert [(s.source, s.kind, s.severity) for s in sink.signals] == [
        ("gw/s4", "restart_intensity_exceeded", Severity.CRITICAL)
    ]


async def test_starting_a_live_child_twice_is_refused() -> None:
    from vsm_mcp.errors import VsmError

    async with Supervisor("vsm", SignalList()) as sup:
        sup.start("s1", anyio.sleep_forever)
        with pytest.raises(VsmError, match="already running"):
            sup.start("s1", anyio.sleep_forever)
