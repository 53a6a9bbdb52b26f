"""Client of the official MCP registry API, ``GET /v0.1/servers``.

Documented format (modelcontextprotocol/registry, docs/reference/api):
``{"servers": [{"server": <server.json>, "_meta": {"io.modelcontextprotocol.registry/official":
{"status": "active"|"deprecated"|"deleted", "isLatest": bool, ...}}}], "metadata": {"nextCursor": str,
"count": int}}``; query parameters ``cursor``, ``limit``, ``search`` (name and
description) and ``version=latest``.

Invariants:
- pages are followed through ``metadata.nextCursor`` until it is empty, a
  cursor repeats, or ``max_pages`` is reached;
- only entries whose status is ``active`` are returned (an entry without a
  status is taken as active), each server name at most once;
- every transport failure, HTTP error or malformed page is a `SourceError`.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vsm_mcp.discovery.catalog import Launch, PackageRef, ServerEntry
from vsm_mcp.errors import SourceError

OFFICIAL_REGISTRY = "https://registry.modelcontextprotocol.io"
REGISTRY_TIMEOUT_S = 10.0  # one page of JSON; slower means the registry is struggling
PAGE_LIMIT = 100  # the API's maximum page size
MAX_PAGES = 20  # a search never needs more than 2,000 entries
OFFICIAL_META = "io.modelcontextprotocol.registry/official"


class _Transport(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str = "stdio"


class _Package(BaseModel):
    model_config = ConfigDict(extra="ignore")
    registryType: str
    identifier: str
    version: str | None = None
    transport: _Transport = Field(default_factory=_Transport)
    runtimeHint: str | None = None


class _Repository(BaseModel):
    model_config = ConfigDict(extra="ignore")
    url: str | None = None


class _ServerDetail(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    description: str = ""
    version: str | None = None
    status: str | None = None  # pre-2025-09 responses kept it here
    repository: _Repository | None = None
    packages: list[_Package] = Field(default_factory=list)


class _ServerResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")
    server: _ServerDetail
    meta: dict[str, Any] = Field(default_factory=dict, alias="_meta")

    @property
    def status(self) -> str:
        official = self.meta.get(OFFICIAL_META)
        if isinstance(official, dict) and isinstance(official.get("status"), str):
            return str(official["status"])
        return self.server.status or "active"


class _Metadata(BaseModel):
    model_config = ConfigDict(extra="ignore")
    nextCursor: str | None = None


class _ListResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")
    servers: list[_ServerResponse]
    metadata: _Metadata = Field(default_factory=_Metadata)


def _launch(packages: list[PackageRef]) -> Launch | None:
    for package in packages:
        version = package.version
        if package.registry_type == "npm" and package.transport == "stdio":
            return Launch("npx", ("-y", f"{package.identifier}@{version}" if version else package.identifier))
        if package.registry_type == "pypi" and package.transport == "stdio":
            return Launch("uvx", (f"{package.identifier}=={version}" if version else package.identifier,))
    return None


def entry_from_server(detail: _ServerDetail) -> ServerEntry:
    packages = [
        PackageRef(p.registryType, p.identifier, p.version or detail.version, p.transport.type, p.runtimeHint)
        for p in detail.packages
    ]
    return ServerEntry(
        name=detail.name,
        description=detail.description.strip(),
        repository=detail.repository.url if detail.repository else None,
        launch=_launch(packages),
        packages=tuple(packages),
    )


async def list_servers(
    client: httpx.AsyncClient,
    base_url: str = OFFICIAL_REGISTRY,
    search: str | None = None,
    max_pages: int = MAX_PAGES,
    limit: int = PAGE_LIMIT,
) -> list[ServerEntry]:
    """Active servers of the registry at ``base_url``, optionally filtered by ``search``.

    Raises:
        SourceError: a page failed, timed out or did not match the documented format.
    """
    entries: list[ServerEntry] = []
    seen_names: set[str] = set()
    seen_cursors: set[str] = set()
    cursor: str | None = None
    for _ in range(max_pages):
        params: dict[str, str | int] = {"limit": limit, "version": "latest"}
        if search:
            params["search"] = search
        if cursor:
            params["cursor"] = cursor
        page = await _get_page(client, f"{base_url.rstrip('/')}/v0.1/servers", params)
        for item in page.servers:
            if item.status == "active" and item.server.name not in seen_names:
                seen_names.add(item.server.name)
                entries.append(entry_from_server(item.server))
        cursor = page.metadata.nextCursor
        if not cursor or cursor in seen_cursors:
            break
        seen_cursors.add(cursor)
    return entries


async def _get_page(client: httpx.AsyncClient, url: str, params: dict[str, str | int]) -> _ListResponse:
    try:
        response = await client.get(url, params=params, timeout=REGISTRY_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise SourceError(f"MCP registry {url}: {type(exc).__name__}: {exc}") from exc
    if response.status_code != 200:
        raise SourceError(f"MCP registry {url}: HTTP {response.status_code}")
    try:
        return _ListResponse.model_validate_json(response.content)
    except ValidationError as exc:
        raise SourceError(f"MCP registry {url}: page not in the documented format") from exc
