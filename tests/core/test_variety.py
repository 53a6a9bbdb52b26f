from __future__ import annotations

import math

import pytest

from vsm_mcp.core.variety import UNLIMITED, DemandProfile, set_variety, shannon_entropy


def test_eight_equiprobable_categories_have_three_bits() -> None:
    assert shannon_entropy([5] * 8) == 3.0


def test_one_category_has_zero_bits() -> None:
    assert shannon_entropy([42]) == 0.0


def test_empty_distribution_has_zero_bits() -> None:
    assert shannon_entropy([]) == 0.0
    assert shannon_entropy([0, 0]) == 0.0


def test_set_variety_is_log2_of_states() -> None:
    assert set_variety(8) == 3.0
    assert set_variety(1) == 0.0
    assert set_variety(0) == 0.0
    with pytest.raises(ValueError, match="-1"):
        set_variety(-1)


def test_skewed_distribution_entropy() -> None:
    # p = 1/2, 1/4, 1/8, 1/8 -> 0.5*1 + 0.25*2 + 2 * 0.125*3 = 1.75 bits
    assert shannon_entropy([4, 2, 1, 1]) == 1.75


def test_worked_coverage_and_gap_example() -> None:
    # Demand a x4, b x2, c x1, d x1; capabilities answer a and b.
    profile = DemandProfile(
        counts={"a": 4, "b": 2, "c": 1, "d": 1}, capacity={"a": UNLIMITED, "b": UNLIMITED}
    )
    r = profile.reading()
    assert r.events == 8
    assert r.categories == 4
    assert r.demand_variety_bits == 1.75
    assert r.demand_max_bits == 2.0
    assert r.system_variety_bits == 1.0  # log2 |{a, b}|
    assert r.coverage == 0.75  # (4 + 2) / 8
    assert r.unmatched_share == 0.25
    assert r.entropy_deficit_bits == 0.75  # 1.75 - 1
    assert r.requisite_ratio == pytest.approx(1 / 1.75)
    assert r.gap == pytest.approx(0.25 + 0.75 / 1.75)  # 0.678571...


def test_capacity_limits_coverage() -> None:
    # Category a can answer only 3 of its 4 calls in the window.
    r = DemandProfile(counts={"a": 4, "b": 4}, capacity={"a": 3, "b": UNLIMITED}).reading()
    assert r.coverage == 7 / 8
    assert r.system_variety_bits == 1.0
    assert r.entropy_deficit_bits == 0.0
    assert r.gap == pytest.approx(1 / 8)


def test_full_coverage_and_enough_variety_is_no_gap() -> None:
    r = DemandProfile(counts={"a": 1, "b": 1}, capacity={"a": UNLIMITED, "b": UNLIMITED, "c": 5}).reading()
    assert r.gap == 0.0
    assert r.requisite_ratio == pytest.approx(math.log2(3))


def test_no_capability_at_all_is_the_largest_gap() -> None:
    r = DemandProfile(counts={"a": 1, "b": 1, "c": 1, "d": 1}).reading()
    assert r.coverage == 0.0
    assert r.gap == 2.0
    assert r.requisite_ratio == 0.0


def test_no_demand_is_no_gap_and_ratio_undefined() -> None:
    r = DemandProfile(capacity={"a": 1}).reading()
    assert r.events == 0
    assert r.coverage == 1.0
    assert r.gap == 0.0
    assert r.requisite_ratio is None
