"""The fleet's routing table: public tool and prompt names, and resource URIs, to units (S2).

Built from scratch from the units' catalogs whenever one changes (pure, no
I/O). Invariants:

* every public name maps to exactly one (unit, downstream name);
* the order of units is by name, so the same fleet always yields the same
  names (no flapping between rebuilds);
* a unit's preferred name is ``NAMESPACE__tool`` (or the bare name when its
  namespace is empty); on a collision with an earlier unit or a reserved name
  it falls back to ``NAME__tool``, then ``NAME__tool_2``, ... — every
  fallback is counted in ``collisions``;
* resource URIs are not renamed (clients and servers embed them in content);
  a URI is routed to the first unit listing it, else to the first unit whose
  template matches it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mcp.shared.uri_template import InvalidUriTemplate, UriTemplate

from vsm_mcp.fleet.spec import NAMESPACE_SEPARATOR, ServerSpec
from vsm_mcp.fleet.unit import UnitCatalog


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
        for spec, catalog in ordered:
            for kind, items, table, taken in (
                ("tool", catalog.tools, tools, taken_tools),
                ("prompt", catalog.prompts, prompts, taken_prompts),
            ):
                del kind
                for item in items:
                    name = str(item.get("name", ""))
                    if not name:
                        continue
                    public, fell_back = _free_name(spec, name, taken)
                    collisions += fell_back
                    taken.add(public)
                    table[public] = Route(public, spec.name, name, {**item, "name": public})
            for resource in catalog.resources:
                uri = str(resource.get("uri", ""))
                if uri and uri not in resources:
                    resources[uri] = spec.name
                    resource_list.append(resource)
                elif uri:
                    collisions += 1
            for template in catalog.templates:
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


def _free_name(spec: ServerSpec, name: str, taken: set[str]) -> tuple[str, int]:
    preferred = spec.public_name(name)
    if preferred not in taken:
        return preferred, 0
    fallback = f"{spec.name}{NAMESPACE_SEPARATOR}{name}"
    candidate, n = fallback, 1
    while candidate in taken:
        n += 1
        candidate = f"{fallback}_{n}"
    return candidate, 1
