from __future__ import annotations

import math

import pytest

from vsm_mcp.core.operators import AddCapability, Aggregate, Filter, ParallelUnits, Sample, effect
from vsm_mcp.core.variety import UNLIMITED, DemandProfile

# The worked example of ARCHITECTURE.md: gap 0.678571...
BASE = DemandProfile(counts={"a": 4, "b": 2, "c": 1, "d": 1}, capacity={"a": UNLIMITED, "b": UNLIMITED})


def test_add_capability_closes_part_of_the_gap() -> None:
    e = effect(AddCapability("c"), BASE)
    # coverage 7/8; V_S = log2 3 = 1.585 < H_E = 1.75 -> deficit 0.165 bits
    deficit = 1.75 - math.log2(3)
    assert e.after.coverage == 7 / 8
    assert e.after.entropy_deficit_bits == pytest.approx(deficit)
    assert e.after.gap == pytest.approx(1 / 8 + deficit / 1.75)
    assert e.delta_gap == pytest.approx(1 / 8 + deficit / 1.75 - (0.25 + 0.75 / 1.75))
    assert e.delta_gap < 0


def test_filter_removes_rejected_demand() -> None:
    e = effect(Filter(frozenset({"c", "d"})), BASE)
    assert e.after.events == 6
    assert e.after.coverage == 1.0
    assert e.after.gap == 0.0


def test_aggregate_routes_categories_to_one_that_is_answered() -> None:
    e = effect(Aggregate({"c": "a", "d": "a"}), BASE)
    assert e.after.events == 8
    assert e.after.categories == 2
    assert e.after.coverage == 1.0
    assert e.after.gap == 0.0


def test_sample_sheds_load_without_changing_the_shape() -> None:
    e = effect(Sample(0.5), BASE)
    assert e.after.events == 5  # 2, 1, 1 (0.5 rounds up), 1
    assert Sample(0.5).apply(BASE).counts == {"a": 2, "b": 1, "c": 1, "d": 1}


def test_parallel_units_multiply_capacity() -> None:
    limited = DemandProfile(counts={"a": 8}, capacity={"a": 2})
    e = effect(ParallelUnits("a", 4), limited)
    assert e.before.coverage == 0.25
    assert e.after.coverage == 1.0
    assert e.delta_gap == -0.75


def test_operator_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="share"):
        Sample(0.0)
    with pytest.raises(ValueError, match="factor"):
        ParallelUnits("a", 0)
