from __future__ import annotations

import pytest

from vsm_mcp.core.hysteresis import GapCleared, GapDetected, GapDetector, GapState, HysteresisPolicy
from vsm_mcp.core.variety import VarietyReading


def reading(gap: float) -> VarietyReading:
    return VarietyReading(
        events=10,
        categories=2,
        demand_variety_bits=1.0,
        demand_max_bits=1.0,
        system_variety_bits=0.0,
        coverage=1.0 - min(gap, 1.0),
        entropy_deficit_bits=0.0,
        requisite_ratio=0.0,
        gap=gap,
    )


def test_gap_must_persist_n_events_before_detection() -> None:
    d = GapDetector(HysteresisPolicy(upper=0.5, lower=0.2, persist_events=3, persist_s=2))
    assert d.observe(reading(0.9), now=0) is None
    assert d.observe(reading(0.9), now=1) is None
    event = d.observe(reading(0.9), now=2)
    assert isinstance(event, GapDetected)
    assert event.persisted_events == 3
    assert event.persisted_s == 2
    assert d.state is GapState.DETECTED


def test_gap_detected_only_after_persisting_t_seconds_too() -> None:
    d = GapDetector(HysteresisPolicy(upper=0.5, lower=0.2, persist_events=3, persist_s=10))
    assert d.observe(reading(0.6), now=100, events=40) is None  # a burst: enough events, no time
    assert d.observe(reading(0.6), now=109.9, events=0) is None  # the clock, no new demand
    event = d.observe(reading(0.6), now=110, events=0)
    assert isinstance(event, GapDetected)
    assert (event.persisted_events, event.persisted_s) == (40, 10)


def test_time_alone_does_not_detect_a_gap_one_event_opened() -> None:
    d = GapDetector(HysteresisPolicy(upper=0.5, lower=0.2, persist_events=3, persist_s=10))
    assert d.observe(reading(0.9), now=0) is None
    assert d.observe(reading(0.9), now=500, events=0) is None  # long, but one event
    assert d.observe(reading(0.9), now=501) is None
    assert isinstance(d.observe(reading(0.9), now=502), GapDetected)


def test_zero_seconds_asks_for_events_only() -> None:
    d = GapDetector(HysteresisPolicy(upper=0.5, lower=0.2, persist_events=2, persist_s=0))
    assert isinstance(d.observe(reading(0.9), now=0, events=2), GapDetected)


def test_dip_below_upper_resets_persistence() -> None:
    d = GapDetector(HysteresisPolicy(upper=0.5, lower=0.2, persist_events=3, persist_s=0))
    d.observe(reading(0.9), now=0)
    d.observe(reading(0.9), now=1)
    assert d.observe(reading(0.4), now=2) is None
    assert d.state is GapState.CLEAR
    assert d.observe(reading(0.9), now=3) is None
    assert d.observe(reading(0.9), now=4) is None
    assert isinstance(d.observe(reading(0.9), now=5), GapDetected)


def test_detected_gap_clears_only_below_lower_and_never_flaps() -> None:
    d = GapDetector(HysteresisPolicy(upper=0.5, lower=0.2, persist_events=1, persist_s=0))
    events = [
        d.observe(reading(g), now=i) for i, g in enumerate([0.6, 0.45, 0.55, 0.3, 0.49, 0.21, 0.19, 0.45])
    ]
    kinds = [type(e).__name__ for e in events if e is not None]
    # Oscillation between 0.21 and 0.55 produces nothing; only the crossing below 0.2 clears.
    assert kinds == ["GapDetected", "GapCleared"]
    assert isinstance(events[6], GapCleared)
    assert d.state is GapState.CLEAR


def test_invalid_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="lower < upper"):
        HysteresisPolicy(upper=0.2, lower=0.5)
    with pytest.raises(ValueError, match="persistence"):
        HysteresisPolicy(persist_events=0)
    with pytest.raises(ValueError, match="persistence"):
        HysteresisPolicy(persist_s=-1)


def test_a_batch_counts_all_its_events_towards_persistence() -> None:
    d = GapDetector(HysteresisPolicy(upper=0.5, lower=0.2, persist_events=10, persist_s=0))
    assert d.observe(reading(0.9), now=0, events=6) is None
    event = d.observe(reading(0.9), now=1, events=4)
    assert isinstance(event, GapDetected)
    assert event.persisted_events == 10
