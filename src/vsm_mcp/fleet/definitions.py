"""Definition pins: what each downstream server's tools say they are, fixed until an operator approves a change.

A pin holds, per tool, the fields that tell a client (and the gateway) what a tool is
and does: `FIELDS` (``annotations`` decide whether the gateway retries a call). Each
tool is kept as listed, with the SHA-256 of the canonical JSON (sorted keys, no
spaces) of those fields, so a change is found by digest and shown field by field.

Who pins: a configured server at its first successful ``tools/list`` (trust on first
use) or at ``vsm-mcp servers approve NAME``; an acquired server at verification (the
pipeline stores what it verified before the fleet starts it). Every listing a unit
receives is then compared with the pin (`review`): at each start, on
``notifications/tools/list_changed`` and at each S3* audit. A listing that differs (a changed field, a new or a vanished
tool) puts the server in quarantine; the fleet leaves its tools out of the routes.

Invariants:

* one store key per server (`definitions_key`), so units listing at once never
  overwrite each other's records; these are not launch pins (`vsm_mcp.fleet.pins`:
  the files a start runs);
* a quarantine is stored in the server's record, so it outlives the gateway, and
  only an operator lifts it (`trust`, by ``servers approve``): a server listing its
  pinned definitions again stays quarantined;
* a quarantine keeps what the server listed last (an approval pins what the server
  shows now, and what the operator saw) and, as its reason, what changed when it
  began (the evidence stays when the server lists its pinned definitions again);
* a stored record that cannot be read (corrupt, foreign, a digest that does not
  match its definition) quarantines the server as a change would; it is never
  silently replaced.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from vsm_mcp.core.ports import JsonValue

#: The fields of a tool definition a pin covers.
FIELDS: Final = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")
#: Store keys: ``fleet.definitions.NAME``.
KEY_PREFIX: Final = "fleet.definitions."
#: Who pinned: the first listing, the acquisition pipeline, an operator.
FIRST_USE: Final = "first use"
VERIFICATION: Final = "verification"
OPERATOR: Final = "operator"
#: The origin given to a record that cannot be read: it quarantines whatever is listed.
UNREADABLE: Final = "an unreadable record"
#: How many changes a reason names before "and N more".
SHOWN_CHANGES: Final = 5

Definitions = Mapping[str, Mapping[str, Any]]
"""Tool name -> its pinned fields."""


class DefinitionBook(Protocol):
    """Where definition pins are kept (the `Store` implements it)."""

    async def kv_get(self, key: str) -> JsonValue: ...

    async def kv_put(self, key: str, value: JsonValue) -> None: ...


def definitions_key(name: str) -> str:
    """The store key of server ``name``'s definition pin."""
    return KEY_PREFIX + name


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def definition(tool: Mapping[str, Any]) -> dict[str, Any]:
    """The pinned fields of a listed tool (a field that is absent or null is left out)."""
    return {f: tool[f] for f in FIELDS if tool.get(f) is not None}


def digest(tool: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of a tool's pinned fields."""
    return hashlib.sha256(_canonical(definition(tool)).encode("utf-8")).hexdigest()


def listed(tools: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """A listing as pinned definitions: tool name -> its pinned fields."""
    return {str(t.get("name")): definition(t) for t in tools}


class Change(enum.StrEnum):
    CHANGED = "changed"
    NEW = "new"
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class ToolChange:
    """How one tool differs from its pin; ``fields`` name what changed (`Change.CHANGED` only)."""

    tool: str
    change: Change
    fields: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.change is Change.NEW:
            return f"tool {self.tool!r} is new"
        if self.change is Change.GONE:
            return f"tool {self.tool!r} disappeared"
        return f"tool {self.tool!r} changed its {', '.join(self.fields)}"


@dataclass(frozen=True, slots=True)
class FieldDiff:
    """One field of one tool, as pinned and as listed now (None: absent)."""

    tool: str
    field: str
    old: Any
    new: Any


def compare(pinned: Definitions, now: Definitions) -> tuple[ToolChange, ...]:
    """How ``now`` differs from ``pinned``, tool by tool in name order (empty when equal)."""
    changes: list[ToolChange] = []
    for name in sorted(pinned.keys() | now.keys()):
        if name not in pinned:
            changes.append(ToolChange(name, Change.NEW))
        elif name not in now:
            changes.append(ToolChange(name, Change.GONE))
        else:
            fields = tuple(
                f for f in FIELDS if _canonical(pinned[name].get(f)) != _canonical(now[name].get(f))
            )
            if fields:
                changes.append(ToolChange(name, Change.CHANGED, fields))
    return tuple(changes)


def field_diffs(pinned: Definitions, now: Definitions) -> list[FieldDiff]:
    """Every field that differs, per tool in name order (a new or vanished tool: all its fields)."""
    empty: Mapping[str, Any] = {}
    return [
        FieldDiff(name, f, pinned.get(name, empty).get(f), now.get(name, empty).get(f))
        for name in sorted(pinned.keys() | now.keys())
        for f in FIELDS
        if _canonical(pinned.get(name, empty).get(f)) != _canonical(now.get(name, empty).get(f))
    ]


@dataclass(frozen=True, slots=True)
class Quarantine:
    """A server whose listing differed from its pin: since when, why, and what it listed last.

    ``changes`` are those of ``tools`` (the last listing; none when the server lists its
    pinned definitions again); ``reason`` says what changed when the quarantine began.
    """

    at: float
    tools: Definitions
    changes: tuple[ToolChange, ...]
    reason: str


def _reason(changes: tuple[ToolChange, ...]) -> str:
    """``tool definitions changed since they were pinned: tool 'x' changed its description``."""
    shown = "; ".join(c.describe() for c in changes[:SHOWN_CHANGES]) or "the stored pin is unreadable"
    more = len(changes) - SHOWN_CHANGES
    return f"tool definitions changed since they were pinned: {shown}" + (
        f" (and {more} more)" if more > 0 else ""
    )


@dataclass(frozen=True, slots=True)
class DefinitionPin:
    """A server's pinned definitions, when and by whom they were pinned, and its quarantine if any."""

    tools: Definitions
    at: float
    by: str
    quarantine: Quarantine | None = None

    def to_json(self) -> JsonValue:
        out: dict[str, JsonValue] = {"at": self.at, "by": self.by, "tools": _tools_json(self.tools)}
        if self.quarantine is not None:
            q = self.quarantine
            out["quarantine"] = {"at": q.at, "reason": q.reason, "tools": _tools_json(q.tools)}
        return out

    @classmethod
    def from_json(cls, value: JsonValue) -> DefinitionPin | None:
        """The record stored as ``value``; None when it is not one (or a digest does not match)."""
        if not isinstance(value, Mapping):
            return None
        at, by, tools = value.get("at"), value.get("by"), _tools_from(value.get("tools"))
        if not isinstance(at, int | float) or not isinstance(by, str) or tools is None:
            return None
        raw = value.get("quarantine")
        if raw is None:
            return cls(tools, float(at), by)
        if not isinstance(raw, Mapping):
            return None
        q_at, q_tools, reason = raw.get("at"), _tools_from(raw.get("tools")), raw.get("reason")
        if not isinstance(q_at, int | float) or q_tools is None or not isinstance(reason, str):
            return None
        return cls(tools, float(at), by, Quarantine(float(q_at), q_tools, compare(tools, q_tools), reason))


def _tools_json(tools: Definitions) -> dict[str, JsonValue]:
    return {name: {"digest": digest(d), "definition": dict(d)} for name, d in tools.items()}


def _tools_from(value: JsonValue) -> dict[str, dict[str, Any]] | None:
    if not isinstance(value, Mapping):
        return None
    out: dict[str, dict[str, Any]] = {}
    for name, entry in value.items():
        d = entry.get("definition") if isinstance(entry, Mapping) else None
        if not isinstance(d, Mapping) or not isinstance(entry, Mapping) or entry.get("digest") != digest(d):
            return None
        out[name] = dict(d)
    return out


@dataclass(frozen=True, slots=True)
class Review:
    """What one listing did: the record now, and whether it was pinned or quarantined by it."""

    pin: DefinitionPin
    pinned_now: bool = False
    quarantined_now: bool = False


async def load(book: DefinitionBook, name: str) -> DefinitionPin | None:
    """The record of ``name``; None when it has none (an unreadable one comes back as `UNREADABLE`)."""
    value = await book.kv_get(definitions_key(name))
    if value is None:
        return None
    return DefinitionPin.from_json(value) or DefinitionPin({}, 0.0, UNREADABLE)


async def review(
    book: DefinitionBook, name: str, tools: Iterable[Mapping[str, Any]], *, now: float
) -> Review:
    """Compare a listing of ``name``'s tools with its pin; pin it when there is none (first use).

    A difference stores a quarantine; while quarantined, the listing kept in it follows the server.
    """
    current = listed(tools)
    stored = await load(book, name)
    if stored is None:
        pin = DefinitionPin(current, now, FIRST_USE)
        await book.kv_put(definitions_key(name), pin.to_json())
        return Review(pin, pinned_now=True)
    changes = compare(stored.tools, current)
    q = stored.quarantine
    if q is not None:  # it stays: only an operator lifts it
        if compare(q.tools, current):
            stored = DefinitionPin(
                stored.tools, stored.at, stored.by, Quarantine(q.at, current, changes, q.reason)
            )
            await book.kv_put(definitions_key(name), stored.to_json())
        return Review(stored)
    if not changes and stored.by != UNREADABLE:
        return Review(stored)
    pin = DefinitionPin(
        stored.tools, stored.at, stored.by, Quarantine(now, current, changes, _reason(changes))
    )
    await book.kv_put(definitions_key(name), pin.to_json())
    return Review(pin, quarantined_now=True)


async def trust(book: DefinitionBook, name: str, tools: Definitions, *, by: str, now: float) -> DefinitionPin:
    """Pin ``tools`` as ``name``'s definitions, lifting any quarantine (verification, an operator)."""
    pin = DefinitionPin({n: dict(d) for n, d in tools.items()}, now, by)
    await book.kv_put(definitions_key(name), pin.to_json())
    return pin


async def forget(book: DefinitionBook, name: str) -> None:
    """Drop the record of ``name`` (the server was removed or replaced: pinned afresh at its next listing)."""
    await book.kv_put(definitions_key(name), None)
