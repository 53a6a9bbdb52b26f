"""Sampling the running fleet for the VSM and the CLI, and S3*'s probe of one unit.

`sample_units` tells S3 of each unit state change with the unit's measured
memory (its whole process group: a sandboxed server runs below bwrap, an
``npx`` server's node below npm, all groups read in one pass over /proc each
round), and again whenever that memory appears, vanishes or moves by more than
`RSS_REPORT_SHARE`, so S3's budget sees a server grow; it reads the own status of each unit that is a
VSM-MCP (`bridge.nesting`), stores the live status for
``vsm-mcp status``, saves the outcome ledger when it has news, and applies the
operator's alert acknowledgements (`bridge.acknowledgements`).
`audit_probe` is S3*'s look at one unit: an MCP ping, then a fresh
``tools/list`` over its live session checked against its pinned definitions
(a rug pull quarantines the unit at once).
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from vsm_mcp import report
from vsm_mcp.bridge.acknowledgements import apply_acknowledgements
from vsm_mcp.bridge.allocation import allocate, prestart
from vsm_mcp.bridge.nesting import poll_nested
from vsm_mcp.bridge.observers import OutcomeRecorder
from vsm_mcp.core.messages import Priority
from vsm_mcp.core.ports import Store
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.vsm.audit import ProbeResult
from vsm_mcp.vsm.events import UnitState, UnitStateChanged
from vsm_mcp.vsm.viable import ViableSystem

#: The S3* ping probe's own limit; a unit slower than this fails the audit.
AUDIT_PING_TIMEOUT_S = 5.0


def group_rss(leaders: set[int]) -> dict[int, int]:
    """Resident memory of each process group led by one of ``leaders``, from one pass over /proc
    (a group with no live process is absent).

    Each pid leads its group (the fleet starts each server in a session of its own). The group
    is what the server costs: a sandboxed server's leader is bwrap, the server runs below it,
    and an ``npx`` launcher's node runs below npm.
    """
    if not leaders:
        return {}
    page = os.sysconf("SC_PAGE_SIZE")
    totals: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            group = int(fields[2])  # fields: state, ppid, pgrp, ...
            if group not in leaders:
                continue
            with open(f"/proc/{entry.name}/statm") as fh:
                totals[group] = totals.get(group, 0) + int(fh.read().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return totals


def rss_bytes(pid: int | None) -> int | None:
    """Resident memory of the process group ``pid`` leads (None when unknown or gone)."""
    return None if pid is None else group_rss({pid}).get(pid)


#: A unit's memory is reported to S3 again when it moved by more than this share since the last report.
RSS_REPORT_SHARE = 0.1


def _moved(before: int | None, now: int | None) -> bool:
    """Whether memory moved enough to tell S3 again: appeared, vanished, or by `RSS_REPORT_SHARE`."""
    if before is None or now is None:
        return before != now
    return abs(now - before) > RSS_REPORT_SHARE * max(before, 1)


async def sample_units(
    system: ViableSystem,
    fleet: Fleet,
    store: Store,
    outcomes: OutcomeRecorder,
    live_status: Callable[[], dict[str, Any]],
    *,
    every_s: float,
    refresh_capacity: Callable[[], None] | None = None,
    self_model: Callable[[], Awaitable[dict[str, Any]]] | None = None,
) -> None:
    """Until cancelled, every ``every_s``: see the module docstring."""
    seen: dict[str, tuple[str, int | None]] = {}
    acknowledged: set[int] = set()
    while True:
        now = time.time()
        units_now = list(fleet.units.items())
        pids = {u.pid for _, u in units_now if u.pid is not None}
        memory = await anyio.to_thread.run_sync(group_rss, pids) if pids else {}
        for name, unit in units_now:
            # A quarantined unit's process may run, but none of its tools are routed: S3 hears so
            # (and counts its memory while it holds a process; parked, it holds none).
            current = UnitState.QUARANTINED if unit.quarantine is not None else unit.state
            rss = memory.get(unit.pid) if unit.pid is not None else None
            last = seen.get(name)
            if last is None or last[0] != current.value or _moved(last[1], rss):
                seen[name] = (current.value, rss)
                await system.bus.publish(
                    "s3",
                    UnitStateChanged(name, current, now, rss),
                    priority=Priority.ROUTINE,
                    sender="runtime",
                )
        for name in set(seen) - set(fleet.units):
            del seen[name]
        if refresh_capacity is not None:  # states, breakers and S1's spikes all move capacity
            refresh_capacity()
        units = list(fleet.units.values())
        system.s2.note_units(
            restarts=sum(u.stats.restarts for u in units),
            backing_off=sum(1 for u in units if u.state is UnitState.BACKOFF),
            held=sum(1 for u in units if u.held_until is not None),
            holds=sum(u.holds for u in units),
        )
        doors = [u.door.stats for u in units if u.door is not None]
        system.s2.note_doors(
            in_flight=sum(d.in_flight for d in doors),
            queued=sum(d.queued for d in doors),
            waited=sum(d.waited for d in doors),
            wait_s=sum(d.waited_s for d in doors),
            throttling=sum(1 for d in doors if d.queued),
        )
        await poll_nested(system, fleet)
        await apply_acknowledgements(store, system.s5, acknowledged)
        await allocate(system, fleet, store, stamp=outcomes.stamp)
        await prestart(system, fleet, store, stamp=outcomes.stamp)
        await store.kv_put(report.LIVE_STATUS_KEY, {"at": now, **live_status()})
        if self_model is not None:  # for `vsm-mcp self`, beside the live status
            await store.kv_put(report.SELF_MODEL_KEY, await self_model())
        if outcomes.dirty:
            outcomes.dirty = False
            await outcomes.ledger.save(store)
        system.notices.publish("status.stored", "runtime", units=len(units))
        await anyio.sleep(every_s)


async def audit_probe(fleet: Fleet, unit_name: str) -> ProbeResult:
    """S3*: an MCP ping to one unit, then a fresh ``tools/list`` over its live session checked
    against its pinned definitions (a rug pull quarantines the unit at once)."""
    unit = fleet.units.get(unit_name)
    if unit is None:
        return ProbeResult("ping", False, "unit is gone")
    try:
        with anyio.fail_after(AUDIT_PING_TIMEOUT_S):
            await unit.request("ping", None, retry_safe=False)
            quarantine = await unit.audit_definitions()
    except TimeoutError:
        return ProbeResult("ping", False, f"no answer within {AUDIT_PING_TIMEOUT_S:g} s")
    except Exception as exc:  # any failure of the probe is an audit finding, not a crash
        return ProbeResult("ping", False, f"{type(exc).__name__}: {exc}")
    if quarantine is not None:
        return ProbeResult("pinned_definitions", False, f"quarantined: {quarantine.reason}")
    return ProbeResult("pinned_definitions", True, f"{len(unit.catalog.tools)} tools as pinned")
