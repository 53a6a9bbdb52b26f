"""The registry a running gateway syncs with: the first restart request after it starts acts."""

from __future__ import annotations

from typing import Any

import pytest

from vsm_mcp.fleet.registry import FleetRegistry
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.store import MemoryStore

pytestmark = pytest.mark.anyio


class _Fleet:
    """The part of a `Fleet` the registry drives, recording what it is told."""

    def __init__(self, specs: list[ServerSpec]) -> None:
        self.units: dict[str, Any] = {s.name: type("U", (), {"spec": s})() for s in specs}
        self.restarted: list[str] = []
        self.lifts = 0  # syncs that looked for approved quarantines

    async def add(self, spec: ServerSpec) -> None:
        self.units[spec.name] = type("U", (), {"spec": spec})()

    async def remove(self, name: str) -> None:
        del self.units[name]

    def restart(self, name: str) -> None:
        self.restarted.append(name)

    async def lift_approved(self) -> None:
        self.lifts += 1


async def test_the_first_restart_after_the_gateway_started_restarts_and_old_requests_are_not_replayed() -> (
    None
):
    gh = ServerSpec(name="gh", command="true")
    old = ServerSpec(name="old", command="true")
    async with MemoryStore.open() as store:
        registry = FleetRegistry(store, [gh, old])
        await registry.request_restart("old")  # before the gateway started: never replayed
        fleet = _Fleet([gh, old])
        seen = {name: int(count) for name, count in (await store.kv_get("fleet.restarts") or {}).items()}
        await registry.sync(fleet, seen)  # type: ignore[arg-type]
        assert fleet.restarted == []
        await registry.request_restart("gh")  # the first request for gh since the start
        await registry.sync(fleet, seen)  # type: ignore[arg-type]
        assert fleet.restarted == ["gh"]
        await registry.sync(fleet, seen)  # type: ignore[arg-type]
        assert fleet.restarted == ["gh"]  # once
        await registry.request_restart("old")
        await registry.sync(fleet, seen)  # type: ignore[arg-type]
        assert fleet.restarted == ["gh", "old"]
        assert fleet.lifts == 4  # every sync looks for quarantines an operator approved
