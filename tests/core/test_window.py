from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vsm_mcp.core.variety import UNLIMITED, DemandProfile, VarietyReading
from vsm_mcp.core.window import DemandWindow

CATEGORIES = st.sampled_from(["a", "b", "c", "d", "e", "f", "g"])


def assert_same(incremental: VarietyReading, reference: VarietyReading) -> None:
    assert incremental.events == reference.events
    assert incremental.categories == reference.categories
    assert incremental.coverage == reference.coverage
    assert incremental.system_variety_bits == reference.system_variety_bits
    assert math.isclose(incremental.demand_variety_bits, reference.demand_variety_bits, abs_tol=1e-9)
    assert math.isclose(incremental.gap, reference.gap, abs_tol=1e-9)


def test_eight_equiprobable_categories_in_window_have_three_bits() -> None:
    w = DemandWindow(max_events=64)
    for i in range(64):
        w.observe(f"c{i % 8}", now=0.0)
    assert w.entropy_bits() == 3.0


def test_count_window_forgets_the_oldest() -> None:
    w = DemandWindow(max_events=3)
    for c in ["x", "x", "a", "b", "c"]:
        w.observe(c, now=0.0)
    assert w.profile().counts == {"a": 1, "b": 1, "c": 1}
    assert w.total_observed == 5
    assert w.entropy_bits() == pytest.approx(math.log2(3))


def test_time_window_forgets_old_events() -> None:
    w = DemandWindow(max_events=100, max_age_s=10.0, resolution_s=1.0)
    w.observe("old", now=0.0)
    w.observe("old", now=0.5)
    w.observe("new", now=9.0)
    assert w.events == 3
    w.observe("new", now=10.5)  # bucket 0 is now older than 10 s
    assert w.profile().counts == {"new": 2}
    w.expire(now=100.0)
    assert w.events == 0
    assert w.entropy_bits() == 0.0


def test_capacity_change_recomputes_coverage() -> None:
    w = DemandWindow(max_events=10)
    w.observe_many(["a", "a", "a", "b"], now=0.0)
    assert w.reading().coverage == 0.0
    w.set_capacity({"a": UNLIMITED})
    assert w.reading().coverage == 0.75
    w.set_capacity({"a": 2, "b": 1})
    assert w.reading().coverage == 0.75


def test_batch_larger_than_window_keeps_the_newest() -> None:
    w = DemandWindow(max_events=4)
    w.observe_many(["a", "b", "c", "d", "e", "f"], now=0.0)
    assert w.profile().counts == {"c": 1, "d": 1, "e": 1, "f": 1}
    assert w.total_observed == 6


def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="max_events"):
        DemandWindow(max_events=0)
    with pytest.raises(ValueError, match="max_age_s"):
        DemandWindow(max_age_s=0.0)
    with pytest.raises(ValueError, match="negative"):
        DemandWindow().set_capacity({"a": -1})


# One operation: (kind, payload, time step)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("one"), CATEGORIES, st.floats(0, 3)),
        st.tuples(st.just("many"), st.lists(CATEGORIES, max_size=12), st.floats(0, 3)),
        st.tuples(
            st.just("cap"),
            st.dictionaries(CATEGORIES, st.integers(0, 6) | st.just(UNLIMITED), max_size=4),
            st.just(0.0),
        ),
        st.tuples(st.just("expire"), st.just(""), st.floats(0, 6)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(ops=OPS, max_events=st.integers(1, 20), max_age=st.one_of(st.none(), st.floats(1.0, 8.0)))
def test_incremental_state_equals_recomputation(
    ops: list[tuple[str, object, float]], max_events: int, max_age: float | None
) -> None:
    w = DemandWindow(max_events=max_events, max_age_s=max_age, resolution_s=0.5 if max_age else None)
    now = 0.0
    for kind, payload, step in ops:
        now += step
        if kind == "one":
            w.observe(str(payload), now=now)
        elif kind == "many":
            assert isinstance(payload, list)
            w.observe_many(payload, now=now)
        elif kind == "cap":
            assert isinstance(payload, dict)
            w.set_capacity(payload)
        else:
            w.expire(now=now)
        assert w.events <= max_events
        assert_same(w.reading(), w.profile().reading())


@given(counts=st.lists(st.integers(1, 50), min_size=1, max_size=30))
def test_entropy_is_between_zero_and_log2_k(counts: list[int]) -> None:
    profile = DemandProfile(counts={f"c{i}": c for i, c in enumerate(counts)})
    h = profile.reading().demand_variety_bits
    assert 0.0 <= h <= math.log2(len(counts)) + 1e-12


@given(counts=st.lists(st.integers(1, 50), min_size=1, max_size=30))
def test_window_entropy_is_between_zero_and_log2_k(counts: list[int]) -> None:
    w = DemandWindow(max_events=2000)
    for i, c in enumerate(counts):
        w.observe_many([f"c{i}"] * c, now=0.0)
    assert 0.0 <= w.entropy_bits() <= math.log2(len(counts)) + 1e-9
