"""Recursion wired: each unit that is itself a VSM-MCP reports its own S1..S5 to S1.

A unit whose catalog says it is viable (`core.nesting`, `UnitCatalog.viable`)
is asked for its `STATUS_URI` resource each sampling round while it serves;
the ``vsm`` document in it becomes the unit's nested status
(`Operations.set_nested`), so the outer status shows the inner system's own
computed systems and units, to any depth. A unit that is not serving, answers
with an error or with something that is not a viable status has no nested
status (it is never shown stale): the reason is kept in `NestedReport`.

Bounds, against a hostile or broken inner gateway: one read waits at most
`READ_TIMEOUT_S`, a document over `MAX_STATUS_BYTES` or nested deeper than
`MAX_DEPTH` is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import anyio

from vsm_mcp.core.nesting import STATUS_URI
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.vsm.events import UnitState
from vsm_mcp.vsm.status import ViableStatus
from vsm_mcp.vsm.viable import ViableSystem

#: How long one unit may take to answer the status read.
READ_TIMEOUT_S = 5.0
#: A larger status document is refused (a gateway of thousands of units stays well below).
MAX_STATUS_BYTES = 4 * 1024 * 1024
#: Levels of recursion accepted below one unit.
MAX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class NestedReport:
    """One round's outcome for one viable unit: its status was read, or why not."""

    unit: str
    read: bool
    detail: str


async def poll_nested(system: ViableSystem, fleet: Fleet) -> list[NestedReport]:
    """Read every viable unit's status once (concurrently) and attach it to S1; clear the others."""
    reports: list[NestedReport] = []
    known = set(system.s1.units)

    async def one(name: str) -> None:
        status, detail = await _read(fleet, name)
        if name in set(system.s1.units):  # deregistered meanwhile: nothing to attach
            system.s1.set_nested(name, status)
            reports.append(NestedReport(name, status is not None, detail))

    async with anyio.create_task_group() as tg:
        for name, unit in list(fleet.units.items()):
            if name not in known:
                continue
            if unit.catalog.viable:
                tg.start_soon(one, name)
            elif system.s1.nested(name) is not None:
                system.s1.set_nested(name, None)
    return reports


async def _read(fleet: Fleet, name: str) -> tuple[ViableStatus | None, str]:
    unit = fleet.units.get(name)
    if unit is None:
        return None, "unit is gone"
    if unit.state is not UnitState.READY:
        return None, f"unit is {unit.state.value}"
    try:
        with anyio.fail_after(READ_TIMEOUT_S):
            result = await unit.request("resources/read", {"uri": STATUS_URI}, retry_safe=False)
    except TimeoutError:
        return None, f"no status within {READ_TIMEOUT_S:g} s"
    except Exception as exc:  # a failed read is a report, not a crash of the sampler
        return None, f"status read failed: {type(exc).__name__}: {exc}"
    return _parse(result)


def _parse(result: dict[str, object]) -> tuple[ViableStatus | None, str]:
    contents = result.get("contents")
    if not isinstance(contents, list) or not contents or not isinstance(contents[0], dict):
        return None, "status resource has no contents"
    text = contents[0].get("text")
    if not isinstance(text, str):
        return None, "status resource is not text"
    if len(text.encode()) > MAX_STATUS_BYTES:
        return None, f"status document over {MAX_STATUS_BYTES} bytes"
    try:
        document = json.loads(text)
        status = ViableStatus.from_dict(document["vsm"])
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        return None, f"not a viable status: {type(exc).__name__}: {str(exc)[:200]}"
    if status.depth() > MAX_DEPTH:
        return None, f"status nested deeper than {MAX_DEPTH} levels"
    return status, f"{len(status.units)} units"
