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
  taken on and the calls it expects within the hour (`bridge.followup` reads
  what followed);
* S4 looks ahead (`Intelligence.look_ahead`): a parked unit whose demand S4
  expects in the next hour (at least `PRESTART_MIN_CALLS`) is started before
  it comes, if the budget has room, as a stored decision too (``pre-start``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from vsm_mcp.core.messages import Decision
from vsm_mcp.core.ports import Store
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.vsm.events import UnitState
from vsm_mcp.vsm.viable import ViableSystem

RULE = "over budget: park the longest-idle running units first"
PRESTART_RULE = "demand expected within the hour: start a parked unit that answers it, budget permitting"
#: Expected calls in the next hour that make S4's forecast start a parked unit ahead of them.
PRESTART_MIN_CALLS = 1.0


def _unstamped(decision: Decision) -> Decision:
    return decision


def _expected_calls(system: ViableSystem, fleet: Fleet, name: str) -> tuple[float, list[str]]:
    """S4's forecast of calls within the hour for the demand ``name``'s unit answers, and which."""
    unit = fleet.units.get(name)
    if unit is not None and unit.spec.category:
        categories = {unit.spec.category}
    else:
        categories = {r.public for r in fleet.routes.tools.values() if r.unit == name}
    forecast = system.s4.forecast
    return sum(forecast.get(c, 0.0) for c in categories), sorted(categories)


async def allocate(
    system: ViableSystem, fleet: Fleet, store: Store, *, stamp: Callable[[Decision], Decision] = _unstamped
) -> list[str]:
    """Park the units S3 names while it is over budget; returns the units parked now.

    Each park is a decision predicting S4's forecast of the unit's calls within the hour
    (``calls_within_hour``), stamped by ``stamp`` so what followed can be read (`bridge.followup`)."""
    report = system.s3.report()
    if not report.over_budget:
        return []
    parked: list[str] = []
    for name in report.idle_candidates:
        unit = fleet.units.get(name)
        idle_s = unit.idle_s if unit is not None else None
        if unit is None or unit.state is not UnitState.READY or idle_s is None:
            continue  # gone, not running, or a call is under way: a later round
        expected, _ = _expected_calls(system, fleet, name)
        unit.park()
        parked.append(name)
        await store.record_decision(
            stamp(
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
                        "predicted": {"calls_within_hour": round(expected, 3)},
                    },
                )
            )
        )
    return parked


async def prestart(
    system: ViableSystem, fleet: Fleet, store: Store, *, stamp: Callable[[Decision], Decision] = _unstamped
) -> list[str]:
    """Start the parked units S4 expects demand for within the hour, while S3's budget has room;
    returns the units started."""
    forecast = system.s4.forecast
    if not forecast:
        return []
    report = system.s3.report()
    room = None if report.max_units is None else report.max_units - report.running_units
    started: list[str] = []
    for name, unit in sorted(fleet.units.items()):
        if unit.state is not UnitState.PARKED or (room is not None and room <= 0):
            continue
        expected, categories = _expected_calls(system, fleet, name)
        if expected < PRESTART_MIN_CALLS:
            continue
        unit.wake()
        started.append(name)
        if room is not None:
            room -= 1
        await store.record_decision(
            stamp(
                Decision(
                    at=time.time(),
                    system="s3",
                    subject=name,
                    choice="pre-start",
                    rule=PRESTART_RULE,
                    rationale=f"S4 expects {expected:g} calls of {name}'s demand within the hour; "
                    f"{report.running_units} units running against a budget of "
                    f"{report.max_units if report.max_units is not None else 'any'}",
                    inputs={
                        "expected_calls": expected,
                        "categories": categories,
                        "predicted": {"calls_within_hour": round(expected, 3)},
                    },
                )
            )
        )
    return started
