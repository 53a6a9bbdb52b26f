"""S4 counts as capacity only what a READY unit can answer: a failed unit's tools are no capacity."""

from __future__ import annotations

import random
from collections.abc import Callable

import anyio
import pytest

from vsm_mcp.bridge.demand import SystemDemand
from vsm_mcp.errors import UnitError
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.store import MemoryStore
from vsm_mcp.vsm.audit import ProbeResult
from vsm_mcp.vsm.events import UnitState
from vsm_mcp.vsm.notices import Notices
from vsm_mcp.vsm.viable import ViableSystem

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def _ping(unit: str) -> ProbeResult:
    return ProbeResult("ping", True)


async def test_a_failed_units_tools_leave_s4s_capacity_while_a_ready_units_stay(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    notices = Notices()
    specs = [probe_spec("ok"), probe_spec("bad", crash_loop_restarts=1)]
    async with (
        MemoryStore.open() as store,
        ViableSystem("gw", store, probe=_ping, rng=random.Random(0), notices=notices) as system,
        Fleet(specs, notices=notices) as fleet,
    ):
        with anyio.fail_after(20):
            await fleet.wait_ready("ok")
            await fleet.wait_ready("bad")
        demand = SystemDemand(system, fleet, store)
        demand.set_capabilities({r.public for r in fleet.routes.tools.values()})
        assert {"ok__echo", "bad__echo"} <= set(system.s4.window.profile().capacity)
        mark = notices.last_seq
        with pytest.raises(UnitError):
            await fleet.call_tool("bad__crash", {})  # it dies; one restart is its crash loop
        with anyio.fail_after(20):
            await notices.wait_for("unit.failed", "bad", after=mark)
        assert fleet.unit("bad").state is UnitState.FAILED
        assert "bad__echo" in fleet.routes.tools  # still routed: a call is told why it fails
        demand.refresh_capacity()
        capacity = system.s4.window.profile().capacity
        assert "ok__echo" in capacity and "bad__echo" not in capacity
