"""S2 reads the anti-oscillation mechanisms' own counters, the units' restart back-off included."""

from __future__ import annotations

import pytest

from vsm_mcp.vsm.bus import Bus
from vsm_mcp.vsm.coordination import Coordination

pytestmark = pytest.mark.anyio


async def test_unit_restarts_and_back_offs_reach_s2() -> None:
    async with Bus() as bus:
        s2 = Coordination(bus)
        assert s2.status().metrics["unit_restarts"] == 0
        s2.note_units(restarts=5, backing_off=1)
        s2.note_routing(public_names=12, collisions=2)
        metrics = s2.status().metrics
    assert (metrics["unit_restarts"], metrics["units_backing_off"]) == (5, 1)
    assert (metrics["public_names"], metrics["collisions_resolved"]) == (12, 2)


async def test_calls_waiting_at_a_units_door_show_as_throttling() -> None:
    async with Bus() as bus:
        s2 = Coordination(bus)
        assert s2.status().state == "ok"
        s2.note_doors(in_flight=2, queued=3, waited=5, wait_s=1.25, throttling=1)
        status = s2.status()
        assert status.state == "throttling"
        metrics = status.metrics
        assert (metrics["calls_in_flight"], metrics["calls_queued"], metrics["calls_waited"]) == (2, 3, 5)
        assert (metrics["wait_s"], metrics["units_throttling"]) == (1.25, 1)
        s2.note_doors(in_flight=0, queued=0, waited=5, wait_s=1.25, throttling=0)
        assert s2.status().state == "ok"


async def test_units_held_after_flapping_reach_s2() -> None:
    async with Bus() as bus:
        s2 = Coordination(bus)
        s2.note_units(restarts=12, backing_off=1, held=1, holds=2)
        metrics = s2.status().metrics
        assert (metrics["unit_restarts"], metrics["units_held"], metrics["unit_holds"]) == (12, 1, 2)
