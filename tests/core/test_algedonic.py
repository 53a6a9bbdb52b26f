"""Correlation windows, rate limiting and overflow folding of algedonic signals."""

from __future__ import annotations

import pytest

from vsm_mcp.core.algedonic import OVERFLOW_KEY, AlgedonicCorrelator
from vsm_mcp.core.messages import AlgedonicSignal, Severity, Valence


def _pain(source: str = "unit/fs", kind: str = "crash", severity: Severity = Severity.LOW, at: float = 100.0):
    return AlgedonicSignal(source, kind, Valence.PAIN, severity, f"{kind} at {at}", at)


def test_identical_signals_in_one_window_are_one_alert_with_their_count() -> None:
    c = AlgedonicCorrelator(window_s=1.0)
    for i in range(1000):
        assert c.add(_pain(at=100.0 + i / 1000), now=i / 1000) == []
    assert c.due(0.999) == []
    [alert] = c.due(1.0)
    assert (alert.count, alert.first_at, alert.last_at) == (1000, 100.0, 100.999)
    assert c.stats().delivered_signals == 1000
    assert c.due(5.0) == []


def test_a_signal_at_the_window_close_starts_a_second_alert() -> None:
    c = AlgedonicCorrelator(window_s=1.0)
    c.add(_pain(at=1.0), now=0.0)
    c.add(_pain(at=2.0), now=0.5)
    first = c.add(_pain(at=3.0), now=1.0)  # exactly at the close: a new window
    c.add(_pain(at=4.0), now=1.5)
    assert [a.count for a in first] == [2]
    [second] = c.due(2.0)
    assert (second.count, second.first_at, second.last_at) == (2, 3.0, 4.0)


def test_merged_alert_keeps_loudest_severity_and_its_detail_and_pain_wins() -> None:
    c = AlgedonicCorrelator(window_s=1.0)
    c.add(AlgedonicSignal("s", "k", Valence.PLEASURE, Severity.LOW, "calm", 1.0), now=0.0)
    c.add(AlgedonicSignal("s", "k", Valence.PAIN, Severity.CRITICAL, "loud", 2.0), now=0.1)
    c.add(AlgedonicSignal("s", "k", Valence.PLEASURE, Severity.MEDIUM, "after", 3.0), now=0.2)
    [alert] = c.due(1.0)
    assert (alert.valence, alert.severity, alert.detail, alert.count) == (
        Valence.PAIN,
        Severity.CRITICAL,
        "loud",
        3,
    )


def test_different_keys_are_different_alerts_most_severe_first() -> None:
    c = AlgedonicCorrelator(window_s=1.0)
    c.add(_pain("a", severity=Severity.LOW), now=0.0)
    c.add(_pain("b", severity=Severity.HIGH), now=0.1)
    c.add(_pain("a", kind="other"), now=0.2)
    assert [(a.source, a.kind) for a in c.due(1.5)] == [("b", "crash"), ("a", "crash"), ("a", "other")]


def test_rate_limit_holds_excess_alerts_counts_them_and_loses_none() -> None:
    c = AlgedonicCorrelator(window_s=1.0, max_alerts_per_s=2.0)
    for i in range(5):
        c.add(_pain(f"unit/{i}"), now=0.0)
    first = c.due(1.0)
    assert len(first) == 2
    stats = c.stats()
    assert (stats.held, stats.pending_alerts) == (3, 3)
    # A held alert still absorbs its key's signals instead of opening a new window.
    c.add(_pain("unit/4"), now=1.2)
    assert c.stats().merged_while_held == 1
    assert c.next_deadline(1.2) == pytest.approx(1.5, abs=1e-5)
    second = c.due(1.5)  # half a second refills one token
    assert len(second) == 1
    third = c.due(2.5)
    assert len(third) == 2
    delivered = first + second + third
    assert sorted(a.source for a in delivered) == [f"unit/{i}" for i in range(5)]
    assert sum(a.count for a in delivered) == 6
    stats = c.stats()
    assert (stats.signals, stats.delivered_alerts, stats.delivered_signals, stats.pending_alerts) == (
        6,
        5,
        6,
        0,
    )


def test_too_many_pending_keys_fold_into_one_overflow_alert() -> None:
    c = AlgedonicCorrelator(window_s=1.0, max_keys=2)
    for i in range(5):
        c.add(_pain(f"unit/{i}"), now=0.0)
    alerts = {a.key: a.count for a in c.due(1.0)}
    assert alerts == {("unit/0", "crash"): 1, ("unit/1", "crash"): 1, OVERFLOW_KEY: 3}
    assert c.stats().folded == 3


def test_drain_returns_everything_pending_regardless_of_window() -> None:
    c = AlgedonicCorrelator(window_s=10.0, max_alerts_per_s=1.0)
    c.add(_pain("a"), now=0.0)
    c.add(_pain("b"), now=0.0)
    assert c.due(1.0) == []
    assert sorted(a.source for a in c.drain()) == ["a", "b"]
    assert c.next_deadline(1.0) is None


def test_next_deadline_is_the_earliest_window_close() -> None:
    c = AlgedonicCorrelator(window_s=2.0)
    assert c.next_deadline(0.0) is None
    c.add(_pain("a"), now=1.0)
    c.add(_pain("b"), now=0.5)
    assert c.next_deadline(1.0) == 2.5
