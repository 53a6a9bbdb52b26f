"""Which servers the fleet should run: the settings file plus what operators changed at run time.

Runtime changes (`vsm-mcp servers add|remove|restart`) are written to the
store's key-value table by the CLI process; a running gateway reconciles its
fleet with them every `SYNC_INTERVAL_S` (`FleetRegistry.keep_in_sync`).
Invariants:

* the desired set is ``settings servers - removed + added`` (an added server
  of the same name replaces the settings one);
* a spec that changed is restarted as the new spec (remove, then add);
* a restart request is a counter, so two requests between syncs are one restart,
  and an old request is never replayed;
* an approval of changed tool definitions (`vsm-mcp servers approve`, stored
  in the server's definition pin) lifts its unit's quarantine at the next sync;
* a removed or replaced server's launch and definition pins are forgotten: it
  is pinned afresh when it next starts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, cast

import anyio
from pydantic import ValidationError

from vsm_mcp.core.ports import JsonValue
from vsm_mcp.errors import ConfigError, UnknownUnitError
from vsm_mcp.fleet.definitions import forget as forget_definitions
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.pins import forget as forget_pin
from vsm_mcp.fleet.routing import namespace_clash
from vsm_mcp.fleet.spec import ServerSpec

logger = logging.getLogger(__name__)

#: How often a running gateway looks for runtime changes; a CLI change is live within this.
SYNC_INTERVAL_S = 1.0

_ADDED = "fleet.servers"
_REMOVED = "fleet.removed"
_RESTARTS = "fleet.restarts"


class KeyValue(Protocol):
    """The part of the Store the registry uses."""

    async def kv_get(self, key: str) -> JsonValue: ...

    async def kv_put(self, key: str, value: JsonValue) -> None: ...


class FleetRegistry:
    """Desired servers, persisted; shared by the CLI and the running gateway."""

    def __init__(self, kv: KeyValue, configured: Iterable[ServerSpec] = ()) -> None:
        self._kv = kv
        self._configured = {s.name: s for s in configured}
        #: Desired servers the fleet refused (said once in the log, tried again at each sync).
        self._refused: set[str] = set()

    async def _map(self, key: str) -> dict[str, Any]:
        value = await self._kv.kv_get(key)
        return dict(cast(Mapping[str, Any], value)) if isinstance(value, Mapping) else {}

    async def _removed(self) -> set[str]:
        value = await self._kv.kv_get(_REMOVED)
        return {str(v) for v in value} if isinstance(value, list) else set()

    async def desired(self) -> dict[str, ServerSpec]:
        """Every server that should run, by name."""
        removed = await self._removed()
        out = {n: s for n, s in self._configured.items() if n not in removed and s.enabled}
        for name, raw in (await self._map(_ADDED)).items():
            try:
                spec = ServerSpec.model_validate(raw)
            except ValidationError:
                continue  # written by another version; `servers list` shows it as invalid
            if spec.enabled:
                out[name] = spec
        return dict(sorted(out.items()))

    async def add(self, spec: ServerSpec, *, replace: bool = False) -> None:
        """Persist ``spec``; a running gateway starts it within `SYNC_INTERVAL_S`.

        Raises:
            ConfigError: a server of that name exists and ``replace`` is false.
        """
        desired = await self.desired()
        if not replace and spec.name in desired:
            raise ConfigError(f"a server named {spec.name!r} already exists (use --replace to change it)")
        clash = namespace_clash(spec, desired.values())
        if clash is not None:
            raise ConfigError(clash)
        if replace:
            await forget_pin(self._kv, spec.name)  # the operator approved a new launch: pinned at its start
            await forget_definitions(self._kv, spec.name)  # and a new server: pinned at its first listing
        added = await self._map(_ADDED)
        added[spec.name] = spec.model_dump(mode="json", exclude_defaults=True)
        await self._kv.kv_put(_ADDED, added)
        removed = await self._removed()
        if spec.name in removed:
            await self._kv.kv_put(_REMOVED, sorted(removed - {spec.name}))

    async def remove(self, name: str) -> None:
        """Forget ``name``; a running gateway stops it (and kills its processes).

        Raises:
            UnknownUnitError: no server of that name.
        """
        if name not in await self.desired():
            raise UnknownUnitError(f"no server named {name!r}")
        await forget_pin(self._kv, name)  # a server added again under this name is pinned afresh
        await forget_definitions(self._kv, name)
        added = await self._map(_ADDED)
        if added.pop(name, None) is not None:
            await self._kv.kv_put(_ADDED, added)
        if name in self._configured:
            await self._kv.kv_put(_REMOVED, sorted((await self._removed()) | {name}))

    async def request_restart(self, name: str) -> int:
        """Ask running gateways to restart ``name``; returns the request number."""
        if name not in await self.desired():
            raise UnknownUnitError(f"no server named {name!r}")
        restarts = await self._map(_RESTARTS)
        restarts[name] = int(restarts.get(name, 0)) + 1
        await self._kv.kv_put(_RESTARTS, restarts)
        return int(restarts[name])

    async def sync(self, fleet: Fleet, seen_restarts: dict[str, int]) -> None:
        """Make ``fleet`` match the desired set once."""
        desired = await self.desired()
        for name in [n for n in fleet.units if n not in desired]:
            await fleet.remove(name)
        for name, spec in desired.items():
            current = fleet.units.get(name)
            if current is not None and current.spec != spec:
                await fleet.remove(name)
                current = None
            if current is None:
                try:
                    await fleet.add(spec)
                except ConfigError as exc:  # e.g. a settings server and a runtime one share a namespace
                    if name not in self._refused:
                        logger.warning("server %s not started: %s", name, exc)
                    self._refused.add(name)
                    continue
                self._refused.discard(name)
        restarts = await self._map(_RESTARTS)
        for name, count in restarts.items():
            # A name first seen now was never asked to restart before this gateway started
            # (those are in the initial snapshot): its first request counts.
            if name in fleet.units and int(count) > seen_restarts.get(name, 0):
                fleet.restart(name)
            seen_restarts[name] = int(count)
        await fleet.lift_approved()

    async def keep_in_sync(self, fleet: Fleet) -> None:
        """Reconcile forever (run it in the gateway's task group)."""
        seen: dict[str, int] = {name: int(count) for name, count in (await self._map(_RESTARTS)).items()}
        while True:
            await self.sync(fleet, seen)
            await anyio.sleep(SYNC_INTERVAL_S)
