from __future__ import annotations

import math

import pytest

from vsm_mcp.core.operators import AddCapability, effect
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


def test_add_capability_to_an_answered_category_changes_nothing() -> None:
    e = effect(AddCapability("a"), BASE)
    assert e.after == e.before and e.delta_gap == 0.0
