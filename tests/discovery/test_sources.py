from __future__ import annotations

import socket

import httpx
import pytest
from tests.discovery.conftest import registry_item, serve_registry

from vsm_mcp.core.breaker import BreakerState
from vsm_mcp.discovery.catalog import Catalog, PackageRef, ServerEntry, ToolSpec, ToolsSource
from vsm_mcp.discovery.resilience import MemoryKeyValue, TtlCache
from vsm_mcp.discovery.sources import (
    CatalogSource,
    Gathered,
    GuardedSource,
    NameProbeSource,
    NpmSearchSource,
    RegistrySource,
    beside_catalog,
    discover,
    gather,
    probe_names,
)
from vsm_mcp.errors import SourceError

ITEMS = [
    registry_item("io.github.a/pdf-forge", "Create and merge PDF documents", npm="pdf-forge"),
    registry_item("io.github.b/weather-now", "Weather forecasts", npm="weather-now"),
]
OFFLINE = Catalog(
    (
        ServerEntry("chart-server", "Generate charts", (ToolSpec("bar_chart", "Draw a bar chart"),)),
        ServerEntry("git-server", "Git repositories", (ToolSpec("git_log", "Show commits"),)),
    )
)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.anyio
async def test_guarded_source_caches_answers_in_the_store() -> None:
    kv = MemoryKeyValue()
    async with serve_registry(ITEMS) as registry, httpx.AsyncClient(trust_env=False) as client:
        source = GuardedSource(RegistrySource(client, registry.url), TtlCache(kv))
        first = await source.candidates("pdf", 5)
        second = await source.candidates("PDF ", 5)
    assert [e.name for e in first] == ["io.github.a/pdf-forge"]
    assert second == first
    assert len(registry.requests) == 1
    assert list(kv.data) == ["cache:discovery:mcp-registry:5:pdf"]


@pytest.mark.anyio
async def test_breaker_stops_calling_a_failing_registry() -> None:
    async with serve_registry(ITEMS) as registry, httpx.AsyncClient(trust_env=False) as client:
        registry.mode = "error"
        source = GuardedSource(RegistrySource(client, registry.url))
        for _ in range(3):
            with pytest.raises(SourceError, match="HTTP 500"):
                await source.candidates("pdf", 5)
        with pytest.raises(SourceError, match="circuit open after 3 failures"):
            await source.candidates("pdf", 5)
    assert source.breaker.state is BreakerState.OPEN
    assert len(registry.requests) == 3


@pytest.mark.anyio
async def test_discover_merges_sources_and_survives_a_dead_one() -> None:
    async with serve_registry(ITEMS) as registry, httpx.AsyncClient(trust_env=False) as client:
        dead = RegistrySource(client, closed_port_url(), name="dead-registry")
        result = await discover(
            [
                CatalogSource(OFFLINE),
                GuardedSource(RegistrySource(client, registry.url)),
                GuardedSource(dead),
            ],
            "merge pdf documents and draw a bar chart",
            limit=5,
        )
    assert {m.name for m in result.matches[:2]} == {"io.github.a/pdf-forge", "chart-server"}
    assert result.origin["chart-server"] == "catalog"
    assert result.origin["io.github.a/pdf-forge"] == "mcp-registry"
    assert list(result.errors) == ["dead-registry"]
    assert "ConnectError" in result.errors["dead-registry"]


def npm_search_handler(request: httpx.Request) -> httpx.Response:
    """npm search finding two MCP packages described alike; only their READMEs tell them apart."""
    npm = "https://registry.npmjs.org"
    url = str(request.url)
    if request.url.path == "/-/v1/search":
        hits = [
            {"package": {"name": n, "version": "1.0.0", "description": "An MCP server"}}
            for n in ("sky-mcp", "@x/docs-mcp")
        ]
        return httpx.Response(200, json={"objects": hits})
    readmes = {
        f"{npm}/sky-mcp": "# sky\n\nWeather for any place.\n\n## Tools\n\n- `get_forecast`: Weather forecast for a place\n",
        f"{npm}/@x%2Fdocs-mcp": "# docs\n\nMerges PDF documents.\n\n## Tools\n\n- `merge_pdfs`: Merge PDF files\n",
    }
    if url in readmes:
        return httpx.Response(200, json={"readme": readmes[url]})
    return httpx.Response(404)


@pytest.mark.anyio
async def test_npm_search_hits_carry_their_readme_tools_and_rank_by_them() -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(npm_search_handler)) as client:
        source = NpmSearchSource(client)
        entries = await source.candidates("weather forecast", 5)
        result = await discover([source], "weather forecast", limit=5)
        bare = await NpmSearchSource(client, readmes=False).candidates("weather forecast", 5)
    sky, docs = entries
    assert sky.tools == (ToolSpec("get_forecast", "Weather forecast for a place"),)
    assert (sky.tools_source, sky.summary) == (
        ToolsSource.README,
        "Weather for any place. get_forecast: Weather forecast for a place.",
    )
    assert docs.tool_names == ("merge_pdfs",)
    assert result.matches[0].name == "sky-mcp"
    assert [(e.tools, e.tools_source, e.summary) for e in bare] == [((), ToolsSource.NONE, "")] * 2


def test_beside_the_catalog_a_live_answer_that_is_a_catalog_entry_is_that_entry() -> None:
    listed = ServerEntry(
        "pdf-viewer", "View PDF files", packages=(PackageRef("npm", "pdf-viewer-mcp", "2.0.0"),)
    )
    catalog = Catalog((*OFFLINE.entries, listed))
    found = Gathered(
        {
            "pdf-viewer-mcp": ServerEntry(
                "pdf-viewer-mcp", "", packages=(PackageRef("npm", "pdf-viewer-mcp", "2.1.0"),)
            ),
            "git-server": ServerEntry("git-server", "a namesake"),
            "pdf-forge": ServerEntry(
                "pdf-forge", "Merge PDFs", packages=(PackageRef("npm", "pdf-forge", "1.0.0"),)
            ),
        },
        {"pdf-viewer-mcp": "npm", "git-server": "npm", "pdf-forge": "mcp-registry"},
        {"other": "HTTP 500"},
    )
    merged = beside_catalog(catalog, [OFFLINE.entries[0]], found)
    assert merged.origin == {
        "chart-server": "catalog",
        "pdf-viewer": "catalog",  # npm's hit of its package, outside the pool: the catalog's entry
        "git-server": "catalog",  # same name: the catalog's entry, not the namesake
        "pdf-forge": "mcp-registry",
    }
    assert merged.entries["pdf-viewer"] is listed
    assert merged.entries["git-server"] is OFFLINE.entries[1]
    assert merged.errors == {"other": "HTTP 500"}


@pytest.mark.anyio
async def test_gather_keeps_the_first_source_s_entry_and_each_failure() -> None:
    async with serve_registry(ITEMS) as registry, httpx.AsyncClient(trust_env=False) as client:
        found = await gather(
            [
                CatalogSource(OFFLINE),
                GuardedSource(RegistrySource(client, registry.url)),
                GuardedSource(RegistrySource(client, registry.url, name="mirror")),
                GuardedSource(RegistrySource(client, closed_port_url(), name="dead")),
            ],
            "pdf chart",
            limit=5,
        )
    # The mirror answered the same server: it stays the first source's.
    assert found.origin["io.github.a/pdf-forge"] == "mcp-registry"
    assert set(found.origin.values()) == {"catalog", "mcp-registry"}
    assert list(found.errors) == ["dead"]


WEATHER_README = "# Weather\n\nForecasts for any city.\n\n## Tools\n\n- `get_forecast`: Forecast for a city\n"


class PackageWeb:
    """PyPI's JSON API and npm's package documents for a few conventionally named packages;
    every other name is a 404, and ``failing`` makes every lookup an HTTP 503."""

    def __init__(self) -> None:
        self.failing = False
        self.asked: list[str] = []

    def pypi(
        self, name: str, summary: str, readme: str = "", classifiers: tuple[str, ...] = ()
    ) -> dict[str, object]:
        info = {"name": name, "version": "1.0.0", "summary": summary, "description": readme}
        return {"info": {**info, "classifiers": list(classifiers)}}

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(f"{request.url.host}{request.url.path}")
        if self.failing:
            return httpx.Response(503)
        documents: dict[str, dict[str, object]] = {
            "/pypi/weather-mcp/json": self.pypi("weather-mcp", "Weather forecasts", WEATHER_README),
            "/pypi/mcp-weather/json": self.pypi(
                "mcp-weather", "Old weather", classifiers=("Development Status :: 7 - Inactive",)
            ),
            "/pypi/forecast-mcp/json": self.pypi("forecast-mcp", "DEPRECATED: renamed to horizon-mcp"),
            "/mcp-server-weather/latest": {
                "name": "mcp-server-weather",
                "version": "0.3.1",
                "description": "Weather",
            },
            "/mcp-server-weather": {"readme": WEATHER_README},
        }
        found = documents.get(request.url.path)
        return httpx.Response(200, json=found) if found is not None else httpx.Response(404)


def test_probe_names_are_the_conventional_names_of_the_need_s_telling_words() -> None:
    assert probe_names("get the weather forecast for Berlin") == [
        f"{pattern.format(word)}"
        for word in ("forecast", "weather", "berlin")
        for pattern in ("mcp-server-{}", "{}-mcp", "{}-mcp-server", "mcp-{}")
    ]
    assert probe_names("今天的天气") == []  # a package name is ASCII
    # with a rarity, the words fewest servers have come first (length breaks ties)
    common = {"get": 0.0, "weather": 0.2, "forecast": 0.5}
    assert probe_names("get the weather forecast for Berlin", 2, lambda w: common.get(w, 1.0)) == [
        "mcp-server-berlin",
        "berlin-mcp",
        "berlin-mcp-server",
        "mcp-berlin",
        "mcp-server-forecast",
        "forecast-mcp",
        "forecast-mcp-server",
        "mcp-forecast",
    ]


@pytest.mark.anyio
async def test_name_probes_find_packages_nobody_indexed_with_their_readme_tools() -> None:
    web = PackageWeb()
    async with httpx.AsyncClient(transport=httpx.MockTransport(web.handle)) as client:
        pypi, npm = NameProbeSource(client, "pypi"), NameProbeSource(client, "npm")
        on_pypi = await pypi.candidates("weather forecast for Berlin", 5)
        on_npm = await npm.candidates("weather forecast for Berlin", 5)
        result = await discover([pypi, npm], "weather forecast for Berlin", limit=5)
        nothing = await pypi.candidates("今天的天气", 5)
    names = probe_names("weather forecast for Berlin")
    # the PyPI probe is exactly its 12 lookups (PyPI's document carries the README)
    assert sorted(web.asked[: len(names)]) == sorted(f"pypi.org/pypi/{name}/json" for name in names)
    assert len(names) == 12
    # the inactive project and the one whose description says it is deprecated are no candidates
    [weather] = on_pypi
    assert (weather.name, weather.tool_names, weather.tools_source) == (
        "weather-mcp",
        ("get_forecast",),
        ToolsSource.README,
    )
    assert weather.packages[0].registry_type == "pypi"
    [server] = on_npm
    assert (server.name, server.tool_names, server.packages[0].identifier) == (
        "mcp-server-weather",
        ("get_forecast",),
        "mcp-server-weather",
    )
    assert (pypi.name, npm.name) == ("pypi-names", "npm-names")
    assert result.origin == {"weather-mcp": "pypi-names", "mcp-server-weather": "npm-names"}
    assert nothing == []


@pytest.mark.anyio
async def test_a_name_probe_fails_only_when_every_lookup_does() -> None:
    web = PackageWeb()
    web.failing = True
    async with httpx.AsyncClient(transport=httpx.MockTransport(web.handle)) as client:
        guarded = GuardedSource(NameProbeSource(client, "pypi"), deadline_s=5.0)
        found = await gather([guarded], "weather forecast for Berlin")
        with pytest.raises(ValueError, match="no name probe for registry type 'cargo'"):
            NameProbeSource(client, "cargo")
    assert found.entries == {}
    assert "HTTP 503" in found.errors["pypi-names"]
