from __future__ import annotations

import httpx
import pytest
from tests.discovery.conftest import registry_item, serve_registry

from vsm_mcp.discovery.registry import list_servers
from vsm_mcp.errors import SourceError

ITEMS = [
    registry_item("io.github.a/alpha-weather", "Weather forecasts", npm="@a/alpha-weather"),
    registry_item("io.github.b/beta-notes", "Notes, deprecated", status="deprecated"),
    registry_item("io.github.c/gamma-charts", "Charts and plots", npm="gamma-charts"),
    registry_item("io.github.d/delta-gone", "Deleted weather", status="deleted"),
    registry_item("io.github.e/epsilon-git", "Git repositories"),
]


@pytest.mark.anyio
async def test_follows_cursor_pages_and_keeps_only_active_entries() -> None:
    async with serve_registry(ITEMS) as registry, httpx.AsyncClient(trust_env=False) as client:
        entries = await list_servers(client, registry.url, limit=2)
    assert [e.name for e in entries] == [
        "io.github.a/alpha-weather",
        "io.github.c/gamma-charts",
        "io.github.e/epsilon-git",
    ]
    assert [r.get("cursor") for r in registry.requests] == [
        None,
        "io.github.b/beta-notes",
        "io.github.d/delta-gone",
    ]
    assert all(r["version"] == "latest" and r["limit"] == "2" for r in registry.requests)
    alpha = entries[0]
    assert alpha.packages[0].identifier == "@a/alpha-weather"
    assert alpha.packages[0].version == "1.0.0"
    assert alpha.launch is not None and alpha.launch.args == ("-y", "@a/alpha-weather@1.0.0")
    assert alpha.repository == "https://github.com/alpha-weather"
    assert entries[2].launch is None  # no package: nothing to launch locally


@pytest.mark.anyio
async def test_search_is_passed_to_the_registry() -> None:
    async with serve_registry(ITEMS) as registry, httpx.AsyncClient(trust_env=False) as client:
        entries = await list_servers(client, registry.url, search="weather")
    assert [e.name for e in entries] == ["io.github.a/alpha-weather"]  # the deleted one is filtered out
    assert registry.requests[0]["search"] == "weather"


@pytest.mark.anyio
async def test_max_pages_bounds_the_walk() -> None:
    async with serve_registry(ITEMS) as registry, httpx.AsyncClient(trust_env=False) as client:
        entries = await list_servers(client, registry.url, limit=2, max_pages=1)
    assert [e.name for e in entries] == ["io.github.a/alpha-weather"]
    assert len(registry.requests) == 1


@pytest.mark.anyio
async def test_http_errors_and_bad_pages_are_source_errors() -> None:
    async with serve_registry(ITEMS) as registry, httpx.AsyncClient(trust_env=False) as client:
        registry.mode = "error"
        with pytest.raises(SourceError, match="HTTP 500"):
            await list_servers(client, registry.url)
        registry.mode = "malformed"
        with pytest.raises(SourceError, match="not in the documented format"):
            await list_servers(client, registry.url)
