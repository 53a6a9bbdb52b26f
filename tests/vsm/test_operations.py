"""S1: measured calls per unit and tool; one pain signal per error-rate spike."""

from __future__ import annotations

import anyio
import pytest

from vsm_mcp.core.drift import DriftPolicy
from vsm_mcp.core.messages import AlgedonicSignal, Severity, Valence
from vsm_mcp.vsm.bus import Bus
from vsm_mcp.vsm.events import CallCompleted, CallsCompleted
from vsm_mcp.vsm.notices import Notices
from vsm_mcp.vsm.operations import LATENCY_BUCKETS_S, Operations

pytestmark = pytest.mark.anyio


class SignalList:
    def __init__(self) -> None:
        self.signals: list[AlgedonicSignal] = []

    def emit(self, signal: AlgedonicSignal) -> None:
        self.signals.append(signal)


def _call(ok: bool, latency_s: float = 0.01, tool: str = "read", at: float = 1.0) -> CallCompleted:
    return CallCompleted("fs", tool, ok, latency_s, at, "" if ok else "ENOENT")


async def test_counters_come_from_completed_calls_received_on_the_inbox() -> None:
    async with Bus() as bus:
        inbox = bus.inbox("s1")
        s1 = Operations(inbox, SignalList())
        s1.register("fs", ["read", "write"])
        await bus.publish("s1", _call(True, 0.010))
        await bus.publish("s1", _call(False, 0.030, tool="write"))
        await bus.publish("s1", _call(True, 0.020, tool="stat"))
        await bus.publish("s1", CallCompleted("ghost", "x", True, 0.1, 1.0))
        inbox.close()
        with anyio.fail_after(5):
            await s1.run()
    stats = s1.unit_stats("fs")
    assert (stats.calls, stats.errors, stats.last_error) == (3, 1, "ENOENT")
    assert stats.mean_latency_ms == pytest.approx(20.0)
    assert stats.max_latency_ms == pytest.approx(30.0)
    assert {t: (s.calls, s.errors) for t, s in s1.tool_stats("fs").items()} == {
        "read": (1, 0),
        "stat": (1, 0),
        "write": (1, 1),
    }
    assert s1.unknown_unit_calls == 1
    assert s1.status().metrics["calls"] == 3


async def test_a_sustained_error_spike_is_one_signal_and_rearms_after_recovery() -> None:
    sink = SignalList()
    async with Bus() as bus:
        s1 = Operations(bus.inbox("s1"), sink, spike_window=4, spike_error_share=0.5)
        s1.register("fs", ["read"])
        for ok in (True, True, False):
            s1.record(_call(ok))
        assert sink.signals == []  # window not full yet
        s1.record(_call(False, at=5.0))  # 2 of 4 failed: spike
        for _ in range(10):
            s1.record(_call(False))  # still spiking: no new signal
        assert [(s.source, s.kind, s.valence, s.severity, s.at) for s in sink.signals] == [
            ("unit:fs", "error_rate_spike", Valence.PAIN, Severity.HIGH, 5.0)
        ]
        assert sink.signals[0].detail == "2 of the last 4 calls to fs failed; last error: ENOENT"
        assert s1.spiking("fs")
        for _ in range(3):
            s1.record(_call(True))  # 1 of 4 failed: recovered
        assert not s1.spiking("fs")
        s1.record(_call(False))
        assert len(sink.signals) == 1  # 1 of 4
        s1.record(_call(False))
        assert len(sink.signals) == 2  # 2 of 4 again
        assert s1.spikes == 2


async def test_each_batch_counted_is_a_notice_with_the_running_total() -> None:
    notices = Notices()
    async with Bus() as bus:
        inbox = bus.inbox("s1")
        s1 = Operations(inbox, SignalList(), notices=notices)
        s1.register("fs", ["read"])
        await bus.publish("s1", CallsCompleted((_call(True), _call(False))))
        await bus.publish("s1", _call(True))
        inbox.close()
        with anyio.fail_after(5):
            await s1.run()
    kept, missed = notices.since(0)
    assert missed == 0
    assert [(n.kind, n.subject, n.data["calls"], n.data["total"]) for n in kept] == [
        ("calls.counted", "s1", 2, 2),
        ("calls.counted", "s1", 1, 3),
    ]


async def test_latency_histogram_and_its_quantiles() -> None:
    async with Bus() as bus:
        s1 = Operations(bus.inbox("s1"), SignalList())
        s1.register("fs", ["read"])
        for ms in range(1, 101):  # 1..100 ms, one call each
            s1.record(_call(True, latency_s=ms / 1000))
        s1.record(_call(False, latency_s=120.0))  # beyond the last bound: +Inf only
        stats = s1.unit_stats("fs")
    assert stats.calls == 101
    index = {bound: i for i, bound in enumerate(LATENCY_BUCKETS_S)}
    assert stats.buckets[index[0.005]] == 5
    assert stats.buckets[index[0.05]] == 50
    assert stats.buckets[index[0.1]] == 100
    assert stats.buckets[-1] == 100  # the 120 s call is above every bound
    assert stats.latency_sum_s == pytest.approx(sum(range(1, 101)) / 1000 + 120.0)
    # Interpolated inside the bucket holding the quantile, as histogram_quantile does.
    assert stats.p50_ms == pytest.approx(50.5, abs=0.5)
    assert stats.p99_ms == pytest.approx(100.0, abs=1.0)
    assert s1.tool_stats("fs")["read"].buckets == stats.buckets


async def test_a_latency_shift_is_one_drift_pain_naming_the_unit_and_the_tool() -> None:
    sink = SignalList()
    async with Bus() as bus:
        s1 = Operations(bus.inbox("s1"), sink, drift=DriftPolicy(warmup=20, latency_h=5.0))
        s1.register("fs", ["read"])
        for i in range(20):
            s1.record(_call(True, latency_s=0.010 * (1.1 if i % 2 else 0.9)))
        assert sink.signals == []
        for _ in range(10):
            s1.record(_call(True, latency_s=0.200))
    kinds = [(s.kind, s.source, s.severity) for s in sink.signals]
    # The unit as a whole and its one tool each saw the shift: one signal per stream.
    assert kinds == [("drift", "unit:fs", Severity.MEDIUM), ("drift", "unit:fs", Severity.MEDIUM)]
    assert sink.signals[0].detail.startswith("fs: latency rose")
    assert sink.signals[1].detail.startswith("fs/read: latency rose")
    assert s1.status().metrics["drifts"] == 2


async def test_without_a_drift_policy_nothing_is_judged() -> None:
    sink = SignalList()
    async with Bus() as bus:
        s1 = Operations(bus.inbox("s1"), sink)
        s1.register("fs", ["read"])
        for ms in [10] * 300 + [500] * 50:
            s1.record(_call(True, latency_s=ms / 1000))
    assert sink.signals == [] and s1.drifts == 0
