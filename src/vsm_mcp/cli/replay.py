"""`vsm-mcp dlq replay`: call failed tools again, through the running gateway when there is one.

Where a gateway runs on the state directory with an HTTP face (its pid holds
the state dir's lock and it said where it listens: `cli.http_face`), each
letter is called through it with the admin token, so the call takes the live
unit's session, its sandbox and S1's accounting like any other. Otherwise a
one-off fleet, said so at the start, starts each letter's server here and
stops it after. Invariants:

* a letter counts as replayed only when the call succeeds: a JSON-RPC error,
  a server that cannot start, and a result the tool marked ``isError`` are
  failures; a failure counts one attempt more and keeps the new error on the
  letter (`Store.note_failed_replay`), a success sets ``replayed_at``;
* a letter whose arguments were over the store's cap (only their digest was
  kept) is never replayed with something else: it is refused, with why;
* every letter gets one line saying what came of it.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError

from vsm_mcp.cli.http_face import running_face
from vsm_mcp.core.payload import MAX_STORED_PAYLOAD_BYTES, capped_digest
from vsm_mcp.errors import UnitError
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.registry import FleetRegistry
from vsm_mcp.gateway.bearer import bearer_client
from vsm_mcp.gateway.tokens import AdminTokenFile
from vsm_mcp.gateway.vsm_tools import RESOURCE_FLEET
from vsm_mcp.store import SqliteStore

if TYPE_CHECKING:
    from mcp import Client

    from vsm_mcp.core.messages import DeadLetter
    from vsm_mcp.settings import Settings

#: How long a one-off replay waits for a server to start before giving up on it.
REPLAY_START_TIMEOUT_S = 60.0
#: How often a unit of the running gateway that is still starting is looked at again.
READY_POLL_S = 0.25
#: One call through the running gateway; the unit's own call timeout applies inside it.
GATEWAY_CALL_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class Replayed:
    """What came of the replays: counts, and one line per letter (the first line says how)."""

    ok: int
    failed: int
    refused: int
    lines: list[str]


class _Caller(Protocol):
    """Calls a letter's tool; returns None on success, else why it failed."""

    async def call(self, letter: DeadLetter) -> str | None: ...


def tool_error(result: dict[str, Any]) -> str:
    """Why a result the tool marked ``isError`` failed: its first text on one line, else that it said so."""
    for block in result.get("content") or []:
        if isinstance(block, dict) and block.get("type") == "text" and block.get("text"):
            return f"the tool reported an error: {' '.join(str(block['text']).split())[:500]}"
    return "the tool reported an error"


class _ThroughGateway:
    """Calls through the running gateway's HTTP face, by each letter's public tool name."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def call(self, letter: DeadLetter) -> str | None:
        public, why = await self._public_name(letter)
        if public is None:
            return why
        try:
            with anyio.fail_after(GATEWAY_CALL_TIMEOUT_S):
                result = await self.client.call_tool(public, dict(letter.arguments))
        except MCPError as exc:
            return exc.error.message
        except TimeoutError:
            return f"no answer within {GATEWAY_CALL_TIMEOUT_S:g} s"
        return tool_error(result.model_dump(mode="json", by_alias=True)) if result.is_error else None

    async def _public_name(self, letter: DeadLetter) -> tuple[str | None, str]:
        """The letter's tool's public name once its unit is ready, else None and why not."""
        deadline = anyio.current_time() + REPLAY_START_TIMEOUT_S
        while True:
            unit = (await _fleet(self.client)).get(letter.unit)
            if unit is None:
                return None, f"the running gateway has no server {letter.unit!r}"
            for public, downstream in (unit.get("downstream") or {}).items():
                if downstream == letter.tool:
                    return str(public), ""
            state = unit.get("state")
            if state == "ready":
                return None, f"server {letter.unit!r} has no tool {letter.tool!r} now"
            if anyio.current_time() >= deadline:
                return (
                    None,
                    f"server {letter.unit!r} is {state}, not ready within {REPLAY_START_TIMEOUT_S:g} s",
                )
            await anyio.sleep(READY_POLL_S)  # another process's unit: its resource is read again


class _OneOff:
    """Starts each letter's server in a fleet of its own and calls it there."""

    def __init__(self, fleet: Fleet, desired: dict[str, Any]) -> None:
        self.fleet = fleet
        self.desired = desired

    async def call(self, letter: DeadLetter) -> str | None:
        spec = self.desired.get(letter.unit)
        if spec is None:
            return f"server {letter.unit!r} no longer exists"
        if letter.unit not in self.fleet.units:
            await self.fleet.add(spec)
        try:
            with anyio.fail_after(REPLAY_START_TIMEOUT_S):
                await self.fleet.wait_ready(letter.unit)
            result = await self.fleet.call_unit_tool(letter.unit, letter.tool, dict(letter.arguments))
        except (UnitError, TimeoutError) as exc:
            return str(exc) or f"server {letter.unit!r} did not start within {REPLAY_START_TIMEOUT_S:g} s"
        return tool_error(result) if result.get("isError") else None


async def _fleet(client: Client) -> dict[str, dict[str, Any]]:
    """The gateway's units by name (state, public tool names and their servers' names)."""
    read = await client.read_resource(RESOURCE_FLEET)
    content = read.contents[0]
    text = content.text if isinstance(content, types.TextResourceContents) else "{}"
    return {str(u["name"]): u for u in json.loads(text).get("units", []) if isinstance(u, dict)}


@contextlib.asynccontextmanager
async def _caller(settings: Settings, store: SqliteStore) -> AsyncIterator[tuple[_Caller, str]]:
    url = await running_face(store, settings.state_dir)
    if url is not None:
        token = AdminTokenFile.in_state(settings.state_dir).read()
        async with bearer_client(url, token, mode="legacy") as client:
            yield (
                _ThroughGateway(client),
                f"replaying through the gateway at {url}",
            )
        return
    desired = await FleetRegistry(store, settings.servers.values()).desired()
    async with Fleet(
        sandbox=settings.sandbox_policy(), secrets=store, pins=store, definitions=store
    ) as fleet:
        yield (
            _OneOff(fleet, desired),
            "no gateway with an HTTP face runs on this state dir: replaying with a one-off fleet "
            "(each server starts here for its letters and stops after)",
        )


async def replay(
    settings: Settings, ids: list[int] | None, wall_clock: Callable[[], float] = time.time
) -> Replayed:
    """Replay the waiting letters (those in ``ids`` when given); see the module docstring."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    ok = failed = refused = 0
    lines: list[str] = []
    async with SqliteStore.open(settings.database_path) as store:
        letters = [d for d in await store.dead_letters() if not ids or d.id in ids]
        if not letters:
            return Replayed(0, 0, 0, ["no dead letters waiting" + (f" among {ids}" if ids else "")])
        async with _caller(settings, store) as (caller, how):
            lines.append(how)
            for letter in letters:
                assert letter.id is not None
                name = f"#{letter.id}: {letter.unit}/{letter.tool}"
                digest = capped_digest(letter.arguments)
                if digest is not None:
                    # Calling with the digest, or the preview, would be another call than the one that failed.
                    lines.append(
                        f"{name} cannot be replayed: its arguments ({digest.describe()}) were over the "
                        f"{MAX_STORED_PAYLOAD_BYTES // 1024} KiB kept of a call, so only their digest was "
                        "stored; kept"
                    )
                    refused += 1
                    continue
                why = await caller.call(letter)
                if why is None:
                    await store.mark_replayed(letter.id, wall_clock())
                    lines.append(f"{name} replayed")
                    ok += 1
                else:
                    await store.note_failed_replay(letter.id, why)
                    lines.append(f"{name} failed again: {why}")
                    failed += 1
    return Replayed(ok, failed, refused, lines)
