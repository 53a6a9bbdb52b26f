"""Profiles on the gateway: where they are kept, and what one client sees through one.

`ProfileBook` adds, lists and removes profiles (``vsm-mcp profiles ...``),
kept under one store key (`PROFILES_KEY`). `StoredProfiles` is the running
gateway's copy, read again every `REFRESH_S` (a profile added or changed
reaches connected clients within that, with ``list_changed``). `ProfileView`
is the fleet as one profile shows it: its tools (overrides applied), their
search index, and which servers' resources and prompts it admits.

Invariants:

* a token bound to a profile that no longer exists sees nothing: the HTTP
  face refuses its requests (fail closed), and `ProfileBook.remove` refuses
  to remove a profile tokens are bound to unless forced;
* in a view, a renamed tool answers to its new name only; a rename that
  would take a name another tool of the view already has (or a gateway tool's)
  is not applied, and the view lists it in ``conflicts``;
* a view is rebuilt when the routing table or the profiles change, never per
  request.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import anyio

from vsm_mcp.core.ports import Store
from vsm_mcp.core.profiles import Profile
from vsm_mcp.errors import ConfigError
from vsm_mcp.fleet.routing import Route, RoutingTable
from vsm_mcp.gateway.search import ToolIndex

#: The store key holding every profile (name -> stored form).
PROFILES_KEY = "gateway.profiles"
#: A profile added, changed or removed reaches a running gateway within this.
REFRESH_S = 1.0


def _decode(raw: Any) -> dict[str, Profile]:
    """Profiles from their stored form; a malformed entry is a `ConfigError` naming it."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"stored profiles ({PROFILES_KEY}) are not an object; remove them and add again")
    profiles: dict[str, Profile] = {}
    for name, data in raw.items():
        try:
            profiles[str(name)] = Profile.from_json(data)
        except ValueError as exc:
            raise ConfigError(
                f"stored profile {name!r} is malformed ({exc}); `vsm-mcp profiles remove`"
            ) from None
    return profiles


class ProfileSource(Protocol):
    """Where the gateway looks profiles up (`StoredProfiles` in production)."""

    #: Changes whenever the profiles do.
    generation: int

    def profile(self, name: str) -> Profile | None: ...


class ProfileBook:
    """Add, list, show and remove profiles in the store (what ``vsm-mcp profiles`` does)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def all(self) -> dict[str, Profile]:
        """Every profile by name.

        Raises:
            ConfigError: the stored profiles are malformed.
        """
        return dict(sorted(_decode(await self.store.kv_get(PROFILES_KEY)).items()))

    async def get(self, name: str) -> Profile:
        """Profile ``name``.

        Raises:
            ConfigError: there is none.
        """
        found = (await self.all()).get(name)
        if found is None:
            raise ConfigError(f"no profile named {name!r} (see `vsm-mcp profiles list`)")
        return found

    async def add(self, profile: Profile, *, replace_existing: bool = False) -> None:
        """Keep ``profile``; a running gateway serves it at ``/mcp/p/<name>`` within `REFRESH_S`.

        Raises:
            ConfigError: a profile of that name exists and ``replace_existing`` is false.
        """
        profiles = await self.all()
        if profile.name in profiles and not replace_existing:
            raise ConfigError(f"a profile named {profile.name!r} exists; add it with --replace to change it")
        profiles[profile.name] = profile
        await self.store.kv_put(PROFILES_KEY, {n: p.to_json() for n, p in sorted(profiles.items())})

    async def bound_tokens(self, name: str) -> list[str]:
        """The tokens bound to profile ``name``, by name."""
        return [t.name for t in await self.store.tokens() if t.profile == name]

    async def remove(self, name: str, *, force: bool = False) -> list[str]:
        """Forget profile ``name``; returns the tokens bound to it (refused from then on).

        Raises:
            ConfigError: there is none, or tokens are bound to it and ``force`` is false.
        """
        profiles = await self.all()
        if name not in profiles:
            raise ConfigError(f"no profile named {name!r} (see `vsm-mcp profiles list`)")
        bound = await self.bound_tokens(name)
        if bound and not force:
            raise ConfigError(
                f"tokens bound to profile {name!r}: {', '.join(bound)}; revoke them first "
                "(`vsm-mcp token revoke NAME`), or remove with --force and every request they make is refused"
            )
        del profiles[name]
        await self.store.kv_put(PROFILES_KEY, {n: p.to_json() for n, p in sorted(profiles.items())})
        return bound


class StoredProfiles:
    """The running gateway's copy of the stored profiles (see the module docstring)."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.monotonic) -> None:
        self.book = ProfileBook(store)
        self._clock = clock
        self.profiles: Mapping[str, Profile] = {}
        #: Bumped whenever what was read differs from before (views are rebuilt then).
        self.generation = 0
        #: Why the last read failed (the previous profiles stay in force), None when it did not.
        self.error: str | None = None

    def profile(self, name: str) -> Profile | None:
        return self.profiles.get(name)

    async def load(self) -> bool:
        """Read the profiles again; True when they changed."""
        try:
            profiles = await self.book.all()
        except ConfigError as exc:
            self.error = str(exc)
            return False
        self.error = None
        if profiles == dict(self.profiles):
            return False
        self.profiles = profiles
        self.generation += 1
        return True

    async def poll(self, changed: Callable[[], Awaitable[None]]) -> None:
        """Read them every `REFRESH_S`, calling ``changed`` after each change, until cancelled."""
        while True:
            await anyio.sleep(REFRESH_S)
            if await self.load():
                await changed()


@dataclass(frozen=True, slots=True)
class Exposed:
    """A tool as a view shows it: under ``route.public`` (maybe renamed), served by ``public``."""

    route: Route
    #: The tool's public name in the whole fleet (what the fleet routes).
    public: str


class ProfileView:
    """The fleet's tools, resources and prompts as ``profile`` shows them (None: all of them)."""

    def __init__(
        self, profile: Profile | None, routes: RoutingTable, own_tools: Sequence[dict[str, Any]]
    ) -> None:
        self.profile = profile
        self.own_tools = [t for t in own_tools if profile is None or profile.admits_own(str(t["name"]))]
        self.own_names = frozenset(str(t["name"]) for t in self.own_tools)
        self.exposed: dict[str, Exposed] = {}
        #: Renames not applied: (public name, wanted name, why).
        self.conflicts: list[tuple[str, str, str]] = []
        admitted = [
            r for r in routes.tools.values() if profile is None or profile.admits_tool(r.unit, r.public)
        ]
        if profile is None:
            self.exposed = {r.public: Exposed(r, r.public) for r in admitted}
        else:
            self._apply(profile, admitted)
        self.tools: list[dict[str, Any]] = [
            *self.own_tools,
            *(e.route.definition for e in self.exposed.values()),
        ]
        self._index: ToolIndex | None = None

    def _apply(self, profile: Profile, admitted: list[Route]) -> None:
        renamed = {r.public for r in admitted if (o := profile.overrides.get(r.public)) and o.name}
        taken = set(self.own_names) | {r.public for r in admitted if r.public not in renamed}
        chosen: dict[str, str] = {}
        for route in admitted:
            override = profile.overrides.get(route.public)
            if override is None or override.name is None:
                continue
            if override.name in taken:
                self.conflicts.append(
                    (route.public, override.name, "another tool of the profile has that name")
                )
                taken.add(route.public)
            else:
                chosen[route.public] = override.name
                taken.add(override.name)
        for route in admitted:
            override = profile.overrides.get(route.public)
            name = chosen.get(route.public, route.public)
            if override is None or (name == route.public and override.description is None):
                self.exposed[route.public] = Exposed(route, route.public)
                continue
            definition = dict(route.definition)
            definition["name"] = name
            if override.description is not None:
                definition["description"] = override.description
            self.exposed[name] = Exposed(replace(route, public=name, definition=definition), route.public)

    def resolve(self, name: str) -> Exposed | None:
        """The downstream tool ``name`` stands for in this view, None when it has none by that name."""
        return self.exposed.get(name)

    def admits_own(self, name: str) -> bool:
        return name in self.own_names

    def admits_unit(self, unit: str) -> bool:
        """Whether ``unit``'s resources, templates and prompts are in this view."""
        return self.profile is None or self.profile.admits_server(unit)

    @property
    def index(self) -> ToolIndex:
        """Tool search over this view's tools (names and descriptions as it shows them)."""
        if self._index is None:
            self._index = ToolIndex(e.route for e in self.exposed.values())
        return self._index

    def summary(self) -> dict[str, Any]:
        """What ``profiles show`` prints for a live gateway: the tools and the renames not applied."""
        return {
            "tools": sorted(self.exposed),
            "own_tools": sorted(self.own_names),
            "conflicts": [{"tool": p, "wanted": w, "why": why} for p, w, why in self.conflicts],
        }
