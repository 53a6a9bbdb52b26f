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
