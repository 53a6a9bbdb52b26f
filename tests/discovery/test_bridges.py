from __future__ import annotations

import math

import pytest

from vsm_mcp.discovery.bridges import Bridges

N = 106  # units below: six with content and a hundred fillers, so every content term is rare


def units() -> list[list[str]]:
    return [
        ["weather", "forecast", "citi"],
        ["weather", "forecast"],
        ["weather", "forecast", "rain"],
        ["slack", "messag", "channel"],
        ["slack", "messag"],
        ["messag", "email", "citi"],
        *([f"filler{i}"] for i in range(100)),
    ]


def test_terms_that_always_meet_are_bridged_at_full_strength() -> None:
    assert Bridges(units()).related("forecast") == (("weather", 1.0),)


def test_strength_is_the_normalised_pmi_of_the_units_they_share() -> None:
    # slack: 2 units, messag: 3 units, together: 2 -> npmi = ln(N/3) / ln(N/2)
    expected = math.log(N / 3) / math.log(N / 2)
    assert Bridges(units()).related("slack") == (("messag", pytest.approx(expected)),)


def test_one_shared_unit_is_chance_and_unknown_terms_have_no_bridge() -> None:
    bridges = Bridges(units())
    assert dict(bridges.related("messag")) == {"slack": pytest.approx(math.log(N / 3) / math.log(N / 2))}
    assert bridges.related("rain") == ()  # in one unit only
    assert bridges.related("nowher") == ()


def test_generic_terms_are_not_bridged() -> None:
    common = [["get", "weather", "forecast"] for _ in range(3)] + [["get", f"x{i}"] for i in range(10)]
    assert Bridges(common).related("get") == ()  # in every unit: it needs no bridge


def test_expansion_weighs_a_bridge_below_the_written_word() -> None:
    bridges = Bridges(units())
    expanded = bridges.expand({"slack": 1.0, "messag": 1.0, "forecast": 0.5}, weight=0.3)
    assert expanded == {"slack": 1.0, "messag": 1.0, "forecast": 0.5, "weather": pytest.approx(0.15)}
    assert bridges.expand({"slack": 1.0}, weight=0.0) == {"slack": 1.0}
