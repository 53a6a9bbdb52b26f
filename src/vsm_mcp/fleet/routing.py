"""The fleet's routing table: public tool and prompt names, and resource URIs, to units (S2).

Built from scratch from the units' catalogs whenever one changes (pure, no
I/O). Invariants:

* every public name maps to exactly one (unit, downstream name);
* the names are the same whatever the order units start or list in, so the
  same fleet always yields the same names (no flapping between rebuilds);
* namespace integrity: ``X__...`` is only ever a name of the unit whose
  namespace (or name) is ``X``; a unit cannot publish into another unit's
  namespace nor take a reserved (VSM) name. A unit with a namespace publishes
  ``NAMESPACE__tool``; a unit with an empty namespace publishes the bare name
  only when no other unit claims that bare name, it is not reserved and it has
  no ``__`` in it; otherwise its tool is ``NAME__tool`` (its own namespace).
  Every such fallback is counted in ``collisions``;
* a public name is at most `MAX_NAME_CHARS` long (what clients enforce): a
  longer one keeps its start and ends in a hash of the whole, stable across
  restarts;
* resource URIs are not renamed (clients and servers embed them in content);
  a URI is routed to the first unit listing it, else to the first unit whose
  template matches it; the gateway's own ``vsm://`` scheme is never routed
  (a downstream resource or template under it counts as a collision).

`namespace_clash` is the registration-time half: two units whose namespaces
(or a namespace and another unit's name) coincide are refused before they run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mcp.shared.uri_template import InvalidUriTemplate, UriTemplate

from vsm_mcp.core.nesting import is_reserved_uri
from vsm_mcp.fleet.spec import NAMESPACE_SEPARATOR, ServerSpec, namespace_clash
from vsm_mcp.fleet.unit import UnitCatalog

__all__ = ["Route", "RoutingTable", "namespace_clash"]


@dataclass(frozen=True, slots=True)
class Route:
    """One public name and where it goes."""

    public: str
    unit: str
    name: str
    definition: dict[str, Any]

    @property
    def retry_safe(self) -> bool:
        """Whether a failed call may be retried: the tool says it is read-only or idempotent."""
        annotations = self.definition.get("annotations") or {}
        return bool(annotations.get("readOnlyHint") or annotations.get("idempotentHint"))

    @property
    def description(self) -> str:
        return str(self.definition.get("description") or "")


@dataclass(frozen=True, slots=True)
class RoutingTable:
    """Tools, prompts and resources of the whole fleet, collision-free."""

    tools: Mapping[str, Route] = field(default_factory=dict)
    prompts: Mapping[str, Route] = field(default_factory=dict)
    resources: Mapping[str, str] = field(default_factory=dict)
    templates: tuple[tuple[UriTemplate, str, dict[str, Any]], ...] = ()
    resource_list: tuple[dict[str, Any], ...] = ()
    collisions: int = 0

    @classmethod
    def build(
        cls, units: Iterable[tuple[ServerSpec, UnitCatalog]], reserved: Iterable[str] = ()
    ) -> RoutingTable:
        """Route every tool, prompt and resource of ``units``; ``reserved`` names are never given out."""
        ordered = sorted(units, key=lambda pair: pair[0].name)
        tools: dict[str, Route] = {}
        prompts: dict[str, Route] = {}
        taken_tools = set(reserved)
        taken_prompts: set[str] = set()
        collisions = 0
        resources: dict[str, str] = {}
        resource_list: list[dict[str, Any]] = []
        templates: list[tuple[UriTemplate, str, dict[str, Any]]] = []
        # Bare names claimed by more than one empty-namespace unit go to none of them.
        bare_claims: dict[str, int] = {}
        for spec, catalog in ordered:
            if not spec.prefix:
                for item in catalog.tools:
                    bare_claims[str(item.get("name", ""))] = bare_claims.get(str(item.get("name", "")), 0) + 1
        for spec, catalog in ordered:
            for items, table, taken, contested in (
                (catalog.tools, tools, taken_tools, bare_claims),
                (catalog.prompts, prompts, taken_prompts, {}),
            ):
                for item in items:
                    name = str(item.get("name", ""))
                    if not name:
                        continue
                    public, fell_back = _public_name(spec, name, taken, contested.get(name, 0) > 1)
                    collisions += fell_back
                    taken.add(public)
                    table[public] = Route(public, spec.name, name, {**item, "name": public})
            for resource in catalog.resources:
                uri = str(resource.get("uri", ""))
                if is_reserved_uri(uri):  # the gateway's own scheme: never routed downstream
                    collisions += 1
                elif uri and uri not in resources:
                    resources[uri] = spec.name
                    resource_list.append(resource)
                elif uri:
                    collisions += 1
            for template in catalog.templates:
                if is_reserved_uri(str(template.get("uriTemplate", ""))):
                    collisions += 1
                    continue
                try:
                    parsed = UriTemplate.parse(str(template.get("uriTemplate", "")))
                except (InvalidUriTemplate, ValueError):
                    continue
                templates.append((parsed, spec.name, template))
        return cls(
            tools=tools,
            prompts=prompts,
            resources=resources,
            templates=tuple(templates),
            resource_list=tuple(resource_list),
            collisions=collisions,
        )

    def resource_unit(self, uri: str) -> str | None:
        """The unit that serves ``uri``, or None."""
        unit = self.resources.get(uri)
        if unit is not None:
            return unit
        for template, name, _ in self.templates:
            if template.match(uri) is not None:
                return name
        return None

    @property
    def template_list(self) -> list[dict[str, Any]]:
        return [definition for _, _, definition in self.templates]


#: The longest tool name clients accept (several cap names at 64 characters).
MAX_NAME_CHARS = 64
#: Hex digits of the hash that ends a shortened name.
_HASH_CHARS = 8


def _public_name(spec: ServerSpec, name: str, taken: set[str], contested: bool) -> tuple[str, int]:
    """The public name of ``name`` of ``spec``, and 1 when it is not the preferred one."""
    if spec.prefix:
        preferred = _bounded(spec.public_name(name))
        fell_back = 0
    elif NAMESPACE_SEPARATOR in name or contested:
        preferred, fell_back = _bounded(f"{spec.name}{NAMESPACE_SEPARATOR}{name}"), 1
    else:
        preferred, fell_back = _bounded(name), 0
    if preferred not in taken:
        return preferred, fell_back
    fallback = _bounded(f"{spec.name}{NAMESPACE_SEPARATOR}{name}")
    candidate, n = fallback, 1
    while candidate in taken:
        n += 1
        candidate = _bounded(f"{spec.name}{NAMESPACE_SEPARATOR}{name}_{n}")
    return candidate, 1


def _bounded(public: str) -> str:
    """``public`` if short enough, else its start and a stable hash of the whole (module docstring)."""
    if len(public) <= MAX_NAME_CHARS:
        return public
    digest = hashlib.sha256(public.encode()).hexdigest()[:_HASH_CHARS]
    return f"{public[: MAX_NAME_CHARS - _HASH_CHARS - 1]}_{digest}"
