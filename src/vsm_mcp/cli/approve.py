"""`vsm-mcp servers approve NAME`: accept a server's changed tool definitions, having seen them.

A server whose ``tools/list`` differs from its pinned definitions
(`vsm_mcp.fleet.definitions`) is quarantined: its tools are withheld and calls
of them refused. This command shows the difference, per tool and field (old,
then new), pins what the server listed and lifts the quarantine; a running
gateway serves the tools again within a second (`vsm_mcp.fleet.registry`).
A server with nothing pinned yet is started once and pinned as it lists now.

Invariants: what is pinned is exactly what was shown (never a listing read
after the diff was printed); the server wrote every text shown, so each line
is printed without markup, terminal controls or invisible characters (those
appear as ``\\u{...}`` escapes, so a hidden instruction cannot hide).
"""

from __future__ import annotations

import json
import time
import unicodedata
from typing import Any

import anyio
import typer
from rich.console import Console

from vsm_mcp.cli.context import state_of
from vsm_mcp.errors import UnitError, UnknownUnitError
from vsm_mcp.fleet import definitions
from vsm_mcp.fleet.definitions import DefinitionPin, field_diffs
from vsm_mcp.fleet.logfile import printable
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.settings import Settings
from vsm_mcp.store import SqliteStore

#: How long a server with nothing pinned gets to start and list its tools.
FIRST_PIN_START_TIMEOUT_S = 60.0
#: Unicode categories a terminal shows as nothing (format, private use, unassigned, surrogates).
_INVISIBLE = frozenset({"Cf", "Co", "Cn", "Cs"})

_out = Console(highlight=False)


def approve(ctx: typer.Context, name: str) -> None:
    """Accept a server's changed tool definitions: show what changed, pin them, lift its quarantine."""
    settings = state_of(ctx).settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    before, after = anyio.run(_approve, settings, name)
    tools = ", ".join(sorted(after.tools)) or "none"
    if before is None:
        _say(
            f"{name}: nothing was pinned; pinned the definitions of {len(after.tools)} tools as it lists them now: {tools}"
        )
        return
    quarantine = before.quarantine
    if quarantine is None:
        _say(
            f"{name}: nothing to approve: not quarantined; {len(before.tools)} tool definitions pinned "
            f"at {before.by} ({_when(before.at)})"
        )
        return
    _say(
        f"{name}: {quarantine.reason} (pinned at {before.by}, {_when(before.at)}; changed {_when(quarantine.at)})"
    )
    diffs = field_diffs(before.tools, quarantine.tools)
    if not diffs:
        _say("  it now lists exactly its pinned definitions again: approving keeps them")
    for diff in diffs:
        _say(f"  tool {diff.tool!r} {diff.field}:")
        for sign, value in (("-", diff.old), ("+", diff.new)):
            for line in _shown(value):
                _say(f"    {sign} {line}")
    _say(
        f"{name}: {len(after.tools)} tool definitions approved and pinned; quarantine lifted "
        "(a running gateway serves its tools again within a second)"
    )


async def _approve(settings: Settings, name: str) -> tuple[DefinitionPin | None, DefinitionPin]:
    """The record before and after: re-pinned from the quarantine, unchanged, or pinned at a first start.

    Raises:
        UnknownUnitError: no server of that name.
        UnitError: a server with nothing pinned did not start and list its tools.
    """
    from vsm_mcp.fleet.registry import FleetRegistry  # the fleet and the MCP SDK: loaded when run

    async with SqliteStore.open(settings.database_path) as store:
        spec = (await FleetRegistry(store, settings.servers.values()).desired()).get(name)
        if spec is None:
            raise UnknownUnitError(f"no server named {name!r}")
        before = await definitions.load(store, name)
        if before is None:
            return None, await _first_pin(settings, store, spec)
        if before.quarantine is None:
            return before, before
        shown = before.quarantine.tools
        return before, await definitions.trust(store, name, shown, by=definitions.OPERATOR, now=time.time())


async def _first_pin(settings: Settings, store: SqliteStore, spec: ServerSpec) -> DefinitionPin:
    """Start ``spec`` once, as the gateway would; its first listing is pinned (trust on first use)."""
    from vsm_mcp.fleet.fleet import Fleet

    async with Fleet(
        [spec], sandbox=settings.sandbox_policy(), secrets=store, pins=store, definitions=store
    ) as fleet:
        await fleet.settled(FIRST_PIN_START_TIMEOUT_S)
        unit = fleet.units[spec.name]
    pin = await definitions.load(store, spec.name)
    if pin is None:
        why = unit.stats.last_error or f"not ready within {FIRST_PIN_START_TIMEOUT_S:g} s"
        raise UnitError(f"server {spec.name!r} did not list its tools: {why}; nothing was pinned")
    return pin


def _shown(value: Any) -> list[str]:
    """``value`` as lines a person can trust to show everything: JSON unless a string, "(none)" if absent."""
    if value is None:
        return ["(none)"]
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    visible = "".join(f"\\u{{{ord(c):x}}}" if unicodedata.category(c) in _INVISIBLE else c for c in text)
    return [printable(line) for line in visible.splitlines()] or [""]


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _say(text: str) -> None:
    _out.print(text, markup=False, soft_wrap=True)
