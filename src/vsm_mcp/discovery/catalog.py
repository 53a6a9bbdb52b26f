"""The server catalog: the PRODUCT.md catalog format, validated at the edge.

A catalog file is a JSON array; each entry has ``name``, ``description``,
``tools`` (``{name, description, inputSchema}``) and optionally ``category``,
``repository``, ``launch`` (``{command, args}``) and ``packages`` (official
registry ``server.json`` package entries). The shipped catalog adds
``license``, ``deprecated``, ``toolsSource`` (where its tool list came from,
a `ToolsSource`) and ``summary`` (the README's first sections as plain text);
unknown keys are ignored so catalogs written by other tools still load, and
catalogs without the newer keys load with their defaults (``toolsSource``
``catalog`` when the entry lists tools, else ``none``; ``summary`` empty).

Invariants:
- pydantic validates only here; everything returned is a frozen dataclass.
- server names are unique within a catalog (case-sensitive); a duplicate is
  an error naming both entries.
- every error is a `CatalogError` naming the file and the entry (index and
  name when it has one) and the offending field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vsm_mcp.errors import CatalogError

SHIPPED_CATALOG = "catalog.json"


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool a server offers."""

    name: str
    description: str = ""
    input_schema: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start the server: a command and its arguments."""

    command: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PackageRef:
    """A package a server is distributed as (``server.json`` ``packages`` item)."""

    registry_type: str  # "npm" | "pypi" | "oci" | ...
    identifier: str
    version: str | None = None
    transport: str = "stdio"
    runtime_hint: str | None = None


class ToolsSource(StrEnum):
    """Where an entry's tool list came from, so a matcher can weigh what it knows."""

    README = "readme"  # read from the package's own README by `catalog refresh`
    CATALOG = "catalog"  # listed by the catalog file (written by hand, or carried by package name)
    NONE = "none"  # no tool list could be found: only the description and summary describe it


@dataclass(frozen=True, slots=True)
class ServerEntry:
    """One MCP server in a catalog.

    ``tools_source`` is `ToolsSource.NONE` whenever ``tools`` is empty.
    """

    name: str
    description: str
    tools: tuple[ToolSpec, ...] = ()
    category: str | None = None
    repository: str | None = None
    launch: Launch | None = None
    packages: tuple[PackageRef, ...] = ()
    license: str | None = None
    deprecated: bool = False
    tools_source: ToolsSource = ToolsSource.CATALOG
    summary: str = ""

    def __post_init__(self) -> None:
        if not self.tools and self.tools_source is not ToolsSource.NONE:
            object.__setattr__(self, "tools_source", ToolsSource.NONE)

    @property
    def tool_names(self) -> tuple[str, ...]:
        return tuple(tool.name for tool in self.tools)


@dataclass(frozen=True, slots=True)
class Catalog:
    """An ordered, name-indexed set of servers."""

    entries: tuple[ServerEntry, ...]
    source: str = "<memory>"
    _by_name: Mapping[str, ServerEntry] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self._by_name:
            object.__setattr__(self, "_by_name", {entry.name: entry for entry in self.entries})

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[ServerEntry]:
        return iter(self.entries)

    def get(self, name: str) -> ServerEntry | None:
        return self._by_name.get(name)

    @property
    def tool_count(self) -> int:
        return sum(len(entry.tools) for entry in self.entries)


# -- edge models ---------------------------------------------------------------------------------


class _ToolModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    name: str = Field(min_length=1)
    description: str | None = ""
    input_schema: dict[str, Any] = Field(default_factory=dict, alias="inputSchema")


class _LaunchModel(BaseModel):
    model_config = ConfigDict(extra="ignore")
    command: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)


class _TransportModel(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str = "stdio"


class _PackageModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    registry_type: str = Field(alias="registryType", min_length=1)
    identifier: str = Field(min_length=1)
    version: str | None = None
    transport: _TransportModel = Field(default_factory=_TransportModel)
    runtime_hint: str | None = Field(default=None, alias="runtimeHint")


class _RepositoryModel(BaseModel):
    model_config = ConfigDict(extra="ignore")
    url: str


class _EntryModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    name: str = Field(min_length=1)
    description: str | None = ""
    tools: list[_ToolModel] = Field(default_factory=list)
    category: str | None = None
    repository: str | _RepositoryModel | None = None
    launch: _LaunchModel | None = None
    packages: list[_PackageModel] = Field(default_factory=list)
    license: str | None = None
    deprecated: bool = False
    tools_source: ToolsSource = Field(default=ToolsSource.CATALOG, alias="toolsSource")
    summary: str | None = ""

    @field_validator("name")
    @classmethod
    def _strip_name(cls, value: str) -> str:
        stripped = value.strip()
        if not stripped:
            raise ValueError("must not be blank")
        return stripped

    def to_entry(self) -> ServerEntry:
        repository = self.repository.url if isinstance(self.repository, _RepositoryModel) else self.repository
        return ServerEntry(
            name=self.name,
            description=(self.description or "").strip(),
            tools=tuple(ToolSpec(t.name, (t.description or "").strip(), t.input_schema) for t in self.tools),
            category=self.category,
            repository=repository,
            launch=Launch(self.launch.command, tuple(self.launch.args)) if self.launch else None,
            packages=tuple(
                PackageRef(p.registry_type, p.identifier, p.version, p.transport.type, p.runtime_hint)
                for p in self.packages
            ),
            license=self.license,
            deprecated=self.deprecated,
            tools_source=self.tools_source,
            summary=(self.summary or "").strip(),
        )


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "entry"
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def parse_catalog(data: object, source: str = "<memory>") -> Catalog:
    """Validate decoded catalog JSON.

    Raises:
        CatalogError: not an array, an invalid entry, or a duplicate name.
    """
    if not isinstance(data, list):
        raise CatalogError(f"catalog {source}: expected a JSON array of servers, got {type(data).__name__}")
    entries: list[ServerEntry] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(data):
        label = f"entry {index}"
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            label += f" ({raw['name']!r})"
        try:
            entry = _EntryModel.model_validate(raw).to_entry()
        except ValidationError as exc:
            raise CatalogError(f"catalog {source}: {label}: {_describe(exc)}") from exc
        if entry.name in seen:
            raise CatalogError(
                f"catalog {source}: {label}: duplicate server name, first used by entry {seen[entry.name]}"
            )
        seen[entry.name] = index
        entries.append(entry)
    return Catalog(tuple(entries), source)


def load_catalog(path: Path) -> Catalog:
    """Read and validate a catalog file.

    Raises:
        CatalogError: unreadable file, invalid JSON, or an invalid entry.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"catalog {path}: cannot read ({exc.strerror or exc})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(f"catalog {path}: invalid JSON at line {exc.lineno} column {exc.colno}") from exc
    return parse_catalog(data, str(path))


def shipped_catalog_path() -> Path:
    """Path of the offline catalog shipped inside the package."""
    return Path(str(resources.files("vsm_mcp.discovery") / "data" / SHIPPED_CATALOG))


def load_shipped_catalog() -> Catalog:
    """The offline catalog of real MCP servers shipped with VSM-MCP."""
    return load_catalog(shipped_catalog_path())


def entry_to_json(entry: ServerEntry) -> dict[str, Any]:
    """The catalog-format JSON object of ``entry`` (inverse of parsing)."""
    out: dict[str, Any] = {
        "name": entry.name,
        "description": entry.description,
        "tools": [
            {"name": t.name, "description": t.description, "inputSchema": dict(t.input_schema)}
            for t in entry.tools
        ],
    }
    if entry.category is not None:
        out["category"] = entry.category
    if entry.repository is not None:
        out["repository"] = entry.repository
    if entry.launch is not None:
        out["launch"] = {"command": entry.launch.command, "args": list(entry.launch.args)}
    if entry.packages:
        out["packages"] = [_package_json(p) for p in entry.packages]
    if entry.license is not None:
        out["license"] = entry.license
    if entry.deprecated:
        out["deprecated"] = True
    out["toolsSource"] = entry.tools_source.value
    if entry.summary:
        out["summary"] = entry.summary
    return out


def _package_json(package: PackageRef) -> dict[str, Any]:
    out: dict[str, Any] = {
        "registryType": package.registry_type,
        "identifier": package.identifier,
        "transport": {"type": package.transport},
    }
    if package.version is not None:
        out["version"] = package.version
    if package.runtime_hint is not None:
        out["runtimeHint"] = package.runtime_hint
    return out


def dump_catalog(entries: Sequence[ServerEntry]) -> str:
    """Serialise entries in the catalog format (stable, pretty-printed, UTF-8)."""
    return json.dumps([entry_to_json(e) for e in entries], ensure_ascii=False, indent=1) + "\n"
