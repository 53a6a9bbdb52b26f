"""Profiles: named subsets of the gateway's servers and tools, each client seeing only its own.

A profile picks servers and tools with allow and deny lists of glob patterns
(`fnmatch`, case-sensitive: ``github``, ``git*``, ``github__create_*``) and may
give a tool another name or description. It is served at ``/mcp/p/<name>`` on
the HTTP face, and a token bound to it (``vsm-mcp token create --profile``)
sees nothing else on any path. Invariants:

* a downstream tool is in a profile when its server is (listed in
  ``servers``, or ``servers`` is empty, and not matched by ``deny_servers``)
  and the tool is (its public name matched by ``tools``, or ``tools`` is
  empty, and not matched by ``deny_tools``); deny wins over allow;
* the gateway's own tools (``vsm_*``) are in every profile unless
  ``deny_tools`` matches them: the allow lists pick downstream tools, so a
  profile of one server still has tool search and status;
* a server's resources, templates and prompts follow the server rules;
* an override is keyed by a tool's public name (no pattern) and renames it
  within the profile only; its new name is a valid MCP tool name of at most
  `MAX_TOOL_NAME` characters; the original name is not callable there;
* a profile's name is 1-64 letters, digits, ``_``, ``-`` or ``.``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

PROFILE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: Clients refuse longer tool names (the gateway's exposed names respect the same bound).
MAX_TOOL_NAME = 64
TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: A glob pattern over server or tool names.
PATTERN = re.compile(r"[A-Za-z0-9_.\-*?\[\]!]{1,128}")
#: The gateway's own tools start with this; no override may take such a name.
OWN_PREFIX = "vsm_"
MAX_DESCRIPTION = 4096


def check_profile_name(name: str) -> None:
    """Refuse a name a profile cannot have.

    Raises:
        ValueError: not 1-64 letters, digits, ``_``, ``-`` or ``.``.
    """
    if not PROFILE_NAME.fullmatch(name):
        raise ValueError(f"profile name {name!r} must be 1-64 letters, digits, '_', '-' or '.'")


@dataclass(frozen=True, slots=True)
class ToolOverride:
    """What a profile shows instead of a tool's own name or description (None: the tool's own)."""

    name: str | None = None
    description: str | None = None


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(name, p) for p in patterns)


@dataclass(frozen=True, slots=True)
class Profile:
    """A named subset of servers and tools (see the module docstring)."""

    name: str
    description: str = ""
    servers: tuple[str, ...] = ()
    deny_servers: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    deny_tools: tuple[str, ...] = ()
    overrides: Mapping[str, ToolOverride] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_profile_name(self.name)
        for what, patterns in (
            ("servers", self.servers),
            ("deny_servers", self.deny_servers),
            ("tools", self.tools),
            ("deny_tools", self.deny_tools),
        ):
            for pattern in patterns:
                if not PATTERN.fullmatch(pattern):
                    raise ValueError(
                        f"profile {self.name!r}: {what} pattern {pattern!r} must be a name or a glob "
                        "(letters, digits, '_', '-', '.', '*', '?', '[...]')"
                    )
        if len(self.description) > MAX_DESCRIPTION:
            raise ValueError(f"profile {self.name!r}: description over {MAX_DESCRIPTION} characters")
        renamed: dict[str, str] = {}
        for public, override in self.overrides.items():
            if not TOOL_NAME.fullmatch(public):
                raise ValueError(f"profile {self.name!r}: override of {public!r}: not a tool name")
            if override.name is None and override.description is None:
                raise ValueError(f"profile {self.name!r}: override of {public!r} changes nothing")
            if override.description is not None and len(override.description) > MAX_DESCRIPTION:
                raise ValueError(f"profile {self.name!r}: description of {public!r} over {MAX_DESCRIPTION}")
            if override.name is None:
                continue
            if not TOOL_NAME.fullmatch(override.name):
                raise ValueError(
                    f"profile {self.name!r}: {public!r} renamed to {override.name!r}: a tool name is "
                    f"1-{MAX_TOOL_NAME} letters, digits, '_', '-' or '.'"
                )
            if override.name.startswith(OWN_PREFIX) or public.startswith(OWN_PREFIX):
                raise ValueError(
                    f"profile {self.name!r}: names starting {OWN_PREFIX!r} are the gateway's own tools "
                    f"({public!r} -> {override.name!r})"
                )
            if override.name in renamed:
                raise ValueError(
                    f"profile {self.name!r}: {renamed[override.name]!r} and {public!r} are both "
                    f"renamed to {override.name!r}"
                )
            renamed[override.name] = public

    def admits_server(self, unit: str) -> bool:
        """Whether ``unit``'s tools, resources and prompts may be in this profile."""
        if self.servers and not _matches(unit, self.servers):
            return False
        return not _matches(unit, self.deny_servers)

    def admits_tool(self, unit: str, public: str) -> bool:
        """Whether downstream tool ``public`` (of server ``unit``) is in this profile."""
        if not self.admits_server(unit):
            return False
        if self.tools and not _matches(public, self.tools):
            return False
        return not _matches(public, self.deny_tools)

    def admits_own(self, name: str) -> bool:
        """Whether the gateway's own tool ``name`` is in this profile (only ``deny_tools`` can drop it)."""
        return not _matches(name, self.deny_tools)

    def to_json(self) -> dict[str, Any]:
        """The stored form (what `from_json` reads back)."""
        return {
            "name": self.name,
            "description": self.description,
            "servers": list(self.servers),
            "deny_servers": list(self.deny_servers),
            "tools": list(self.tools),
            "deny_tools": list(self.deny_tools),
            "overrides": {
                public: {k: v for k, v in (("name", o.name), ("description", o.description)) if v is not None}
                for public, o in sorted(self.overrides.items())
            },
        }

    @classmethod
    def from_json(cls, data: Any) -> Profile:
        """A profile from its stored form.

        Raises:
            ValueError: not a profile's shape, or a rule the constructor refuses.
        """
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise ValueError("a profile is an object with a name")

        def strings(key: str) -> tuple[str, ...]:
            value = data.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"profile {data['name']!r}: {key} must be a list of strings")
            return tuple(value)

        raw = data.get("overrides", {})
        if not isinstance(raw, dict):
            raise ValueError(f"profile {data['name']!r}: overrides must be an object")
        overrides: dict[str, ToolOverride] = {}
        for public, o in raw.items():
            if not isinstance(o, dict) or not all(
                isinstance(o.get(k), str | None) for k in ("name", "description")
            ):
                raise ValueError(f"profile {data['name']!r}: override of {public!r} must be an object")
            overrides[str(public)] = ToolOverride(o.get("name"), o.get("description"))
        description = data.get("description", "")
        return cls(
            name=data["name"],
            description=description if isinstance(description, str) else "",
            servers=strings("servers"),
            deny_servers=strings("deny_servers"),
            tools=strings("tools"),
            deny_tools=strings("deny_tools"),
            overrides=overrides,
        )
