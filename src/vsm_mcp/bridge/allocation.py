"""S3 allocates: over its budget, the longest-idle running units are parked, each a stored decision.

S3 (`vsm_mcp.vsm.control`) keeps the picture: which units hold a process, their
memory, the budget, and which units have been idle longest. This bridge acts
on it once per sampling round (`vsm_mcp.bridge.sampling`). Invariants:

* only a unit that is READY with no call under way is parked, so no call is
  cut short; a busy candidate waits for a later round;
* a parked unit's tools stay listed and routed; the next call of one starts it
  (`vsm_mcp.fleet.unit.Unit.park`), and if that puts S3 over budget again,
  the then longest-idle unit is parked in its place;
* every park is a `Decision` of S3's in the store, with the figures it was
  taken on.
"""

from __future__ import annotations

import time

from vsm_mcp.core.messages import Decision
from vsm_mcp.core.ports import Store
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.vsm.events import UnitState
from vsm_mcp.vsm.viable import ViableSystem

RULE = "over budget: park the longest-idle running units first"


async def allocate(system: ViableSystem, fleet: Fleet, store: Store) -> list[str]:
    """Park the units S3 names while it is over budget; returns the units parked now."""
    report = system.s3.report()
    if not report.over_budget:
        return []
    parked: list[str] = []
    for name in report.idle_candidates:
        unit = fleet.units.get(name)
        idle_s = unit.idle_s if unit is not None else None
        if unit is None or unit.state is not UnitState.READY or idle_s is None:
            continue  # gone, not running, or a call is under way: a later round
        unit.park()
        parked.append(name)
        await store.record_decision(
            Decision(
                at=time.time(),
                system="s3",
                subject=name,
                choice="park",
                rule=RULE,
                rationale=f"{report.running_units} units running against a budget of "
                f"{report.max_units if report.max_units is not None else 'any'}; "
                f"{report.rss_bytes >> 20} MiB against "
                f"{report.max_rss_bytes >> 20 if report.max_rss_bytes is not None else 'any'} MiB; "
                f"{name} idle {idle_s:.0f}s. Its tools stay listed; a call starts it again.",
                inputs={
                    "running_units": report.running_units,
                    "max_units": report.max_units,
                    "rss_bytes": report.rss_bytes,
                    "max_rss_bytes": report.max_rss_bytes,
                    "idle_s": round(idle_s, 3),
                },
            )
        )
    return parked
