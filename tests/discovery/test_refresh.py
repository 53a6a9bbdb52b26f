from __future__ import annotations

from typing import Any

import httpx
import pytest
from tests.discovery.conftest import npm_tarball

from vsm_mcp.discovery import packages
from vsm_mcp.discovery.catalog import Catalog, Launch, PackageRef, ServerEntry, ToolSpec, ToolsSource
from vsm_mcp.discovery.refresh import (
    Seed,
    entries_by_package,
    load_seeds,
    package_of_launch,
    refresh_catalog,
    tools_by_package,
)

NPM = "https://registry.npmjs.org"
WEATHER_README = """# Weather MCP

[![npm](https://img.shields.io/npm/v/weather-mcp.svg)](https://www.npmjs.com/package/weather-mcp)

Forecasts and alerts from the [national weather service](https://example.org).

## Tools

- `get_forecast`: Forecast for a place
  - `latitude` (number): where
- `get_alerts`: Active alerts for a state
"""
NOTES_README = """# notes-mcp

Keeps notes in a local folder.

## Tools

| Tool | Description |
|------|-------------|
| `create_note` | Create a note |
"""


def manifest(name: str, version: str = "1.0.0") -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "description": f"{name} server",
        "license": "MIT",
        "dist": {"tarball": f"{NPM}/{name}/-/{name}-{version}.tgz"},
    }


def registry_handler(request: httpx.Request) -> httpx.Response:
    """npm and PyPI as the refresh sees them, for a handful of packages."""
    url = str(request.url)
    routes: dict[str, httpx.Response] = {
        # the full document carries no readme (as mirrors serve it): the tarball's README is read
        f"{NPM}/weather-mcp/latest": httpx.Response(200, json=manifest("weather-mcp", "2.1.0")),
        f"{NPM}/weather-mcp": httpx.Response(200, json={"name": "weather-mcp", "versions": {}}),
        f"{NPM}/weather-mcp/-/weather-mcp-2.1.0.tgz": httpx.Response(
            200, content=npm_tarball({"package.json": "{}", "README.md": WEATHER_README})
        ),
        # the full document carries the readme: no tarball is fetched
        f"{NPM}/notes-mcp/latest": httpx.Response(200, json=manifest("notes-mcp")),
        f"{NPM}/notes-mcp": httpx.Response(200, json={"name": "notes-mcp", "readme": NOTES_README}),
        f"{NPM}/quotes-mcp/latest": httpx.Response(200, json=manifest("quotes-mcp")),
        f"{NPM}/quotes-mcp": httpx.Response(200, json={"readme": "ERROR: No README data found!"}),
        f"{NPM}/quotes-mcp/-/quotes-mcp-1.0.0.tgz": httpx.Response(
            200, content=npm_tarball({"index.js": ""})
        ),
        "https://pypi.org/pypi/clock-mcp/json": httpx.Response(
            200,
            json={
                "info": {
                    "name": "clock-mcp",
                    "version": "0.3.0",
                    "summary": "Time",
                    "description": "Tells time.",
                }
            },
        ),
        f"{NPM}/flaky-mcp/latest": httpx.Response(503),
    }
    return routes.get(url, httpx.Response(404))


def test_package_of_launch_reads_npx_and_uvx_forms() -> None:
    assert package_of_launch(Launch("npx", ("-y", "@scope/pkg@latest"))) == ("npm", "@scope/pkg")
    assert package_of_launch(Launch("npx", ("mcp-deepwiki@1.0.0",))) == ("npm", "mcp-deepwiki")
    assert package_of_launch(Launch("uvx", ("--from", "office-word-mcp-server", "word_mcp_server"))) == (
        "pypi",
        "office-word-mcp-server",
    )
    assert package_of_launch(Launch("uvx", ("mcp-simple-arxiv==0.2.3", "x"))) == ("pypi", "mcp-simple-arxiv")
    assert package_of_launch(Launch("uv", ("tool", "run", "arxiv-mcp-server", "--x"))) == (
        "pypi",
        "arxiv-mcp-server",
    )
    assert package_of_launch(Launch("npx", ("-y", "github:flrngel/mcp-painter"))) is None
    assert package_of_launch(Launch("docker", ("run", "x"))) is None


def test_tool_names_are_keyed_by_package_without_descriptions() -> None:
    catalog = Catalog(
        (
            ServerEntry(
                "Time",
                "t",
                (ToolSpec("get_current_time", "Now"),),
                launch=Launch("uvx", ("mcp-server-time",)),
            ),
        )
    )
    assert tools_by_package([catalog]) == {("pypi", "mcp-server-time"): (ToolSpec("get_current_time"),)}


def test_shipped_seeds_load() -> None:
    seeds = load_seeds()
    assert len(seeds) >= 300
    assert Seed(registry="npm", name="@modelcontextprotocol/server-filesystem") in seeds


@pytest.mark.external
@pytest.mark.anyio
async def test_refresh_builds_pinned_entries_from_live_metadata() -> None:
    seeds = [
        Seed(registry="pypi", name="mcp-server-time"),
        Seed(registry="npm", name="@modelcontextprotocol/server-memory"),
        Seed(registry="npm", name="vsm-mcp-no-such-package-4f1c2a"),
    ]
    known = {("pypi", "mcp-server-time"): (ToolSpec("get_current_time"), ToolSpec("convert_time"))}
    progressed: list[str] = []
    async with httpx.AsyncClient() as client:
        report = await refresh_catalog(seeds, known, client, progressed.append)
    assert sorted(progressed) == sorted(s.name for s in seeds)
    assert [e.name for e in report.entries] == ["mcp-server-time", "@modelcontextprotocol/server-memory"]
    assert report.missing == ["npm:vsm-mcp-no-such-package-4f1c2a"]
    assert report.failed == {}
    time_entry = report.entries[0]
    assert time_entry.tool_names == ("get_current_time", "convert_time")
    assert time_entry.tools_source is ToolsSource.README
    memory = report.entries[1]
    assert "create_entities" in memory.tool_names and memory.tools_source is ToolsSource.README
    version = time_entry.packages[0].version
    assert time_entry.launch == Launch("uvx", (f"mcp-server-time=={version}",))
    assert time_entry.packages[0].transport == "stdio"


@pytest.mark.anyio
async def test_refresh_fills_tools_and_summaries_and_flags_what_it_could_not_fill() -> None:
    seeds = [
        Seed(registry="npm", name="weather-mcp"),
        Seed(registry="npm", name="notes-mcp"),
        Seed(registry="npm", name="quotes-mcp"),
        Seed(registry="pypi", name="clock-mcp"),
        Seed(registry="npm", name="flaky-mcp"),
        Seed(registry="npm", name="gone-mcp"),
    ]
    known = {
        # an older extractor's list of response fields: not shipped
        ("npm", "quotes-mcp"): (
            ToolSpec("GradeDate"),
            ToolSpec("Firm"),
            ToolSpec("get_quote"),
            ToolSpec("perPage"),
        ),
        ("pypi", "clock-mcp"): (ToolSpec("get_current_time"), ToolSpec("convert_time")),
        ("npm", "weather-mcp"): (ToolSpec("old_tool"),),
    }
    flaky = ServerEntry(
        "flaky-mcp",
        "kept",
        (ToolSpec("run_flaky"),),
        packages=(PackageRef("npm", "flaky-mcp", "0.9.0"),),
        tools_source=ToolsSource.README,
    )
    previous = entries_by_package(Catalog((flaky,)))
    async with httpx.AsyncClient(transport=httpx.MockTransport(registry_handler)) as client:
        report = await refresh_catalog(seeds, known, client, previous=previous)
    by_name = {entry.name: entry for entry in report.entries}
    assert list(by_name) == ["weather-mcp", "notes-mcp", "quotes-mcp", "clock-mcp", "flaky-mcp"]

    weather = by_name["weather-mcp"]
    assert weather.tools == (
        ToolSpec("get_forecast", "Forecast for a place"),
        ToolSpec("get_alerts", "Active alerts for a state"),
    )
    assert weather.tools_source is ToolsSource.README
    assert weather.summary == (
        "Forecasts and alerts from the national weather service. "
        "get_forecast: Forecast for a place. get_alerts: Active alerts for a state."
    )
    assert weather.packages[0].version == "2.1.0"
    assert by_name["notes-mcp"].tools == (ToolSpec("create_note", "Create a note"),)
    assert by_name["notes-mcp"].summary == "Keeps notes in a local folder."

    quotes = by_name["quotes-mcp"]
    assert (quotes.tools, quotes.tools_source, quotes.summary) == ((), ToolsSource.NONE, "")
    assert report.dropped == {"quotes-mcp": ("GradeDate", "Firm", "get_quote", "perPage")}

    clock = by_name["clock-mcp"]
    assert clock.tool_names == ("get_current_time", "convert_time")
    assert clock.tools_source is ToolsSource.CATALOG
    assert clock.summary == "Tells time."

    assert by_name["flaky-mcp"] is flaky
    assert report.kept == ["npm:flaky-mcp"]
    assert report.failed == {"npm:flaky-mcp": "npm flaky-mcp: HTTP 503"}
    assert report.missing == ["npm:gone-mcp"]
    assert report.unfilled == {"quotes-mcp": "no README found"}
    assert report.by_source() == {"readme": 3, "catalog": 1, "none": 1}


@pytest.mark.anyio
async def test_a_tarball_over_the_limit_gives_no_readme(monkeypatch: pytest.MonkeyPatch) -> None:
    readme = WEATHER_README + "\n" + "x" * 5000
    body = npm_tarball({"filler.bin": "y" * 20000, "README.md": readme})

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(".tgz"):
            return httpx.Response(200, content=body)
        return httpx.Response(200, json={"name": "weather-mcp"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        whole = await packages.npm_readme(client, "weather-mcp", f"{NPM}/weather-mcp/-/w.tgz")
        monkeypatch.setattr(packages, "MAX_TARBALL_BYTES", len(body) // 2)
        cut = await packages.npm_readme(client, "weather-mcp", f"{NPM}/weather-mcp/-/w.tgz")
    assert whole == readme
    assert cut == ""


@pytest.mark.anyio
async def test_refresh_reads_the_tools_page_an_npm_readme_points_to_in_the_same_tarball() -> None:
    readme = "# atlas-mcp\n\nMaps for agents. Every tool: [Tool reference](docs/tool-reference.md).\n"
    page = "## Tools\n\n- `geocode_address`: Coordinates of an address\n"
    body = npm_tarball({"package.json": "{}", "README.md": readme, "docs/tool-reference.md": page})

    def handler(request: httpx.Request) -> httpx.Response:
        routes = {
            f"{NPM}/atlas-mcp/latest": httpx.Response(200, json=manifest("atlas-mcp")),
            f"{NPM}/atlas-mcp": httpx.Response(200, json={"name": "atlas-mcp", "readme": readme}),
            f"{NPM}/atlas-mcp/-/atlas-mcp-1.0.0.tgz": httpx.Response(200, content=body),
        }
        return routes.get(str(request.url), registry_handler(request))

    seeds = [Seed(registry="npm", name="atlas-mcp"), Seed(registry="npm", name="quotes-mcp")]
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        report = await refresh_catalog(seeds, {}, client)
    atlas, quotes = report.entries
    assert atlas.tools == (ToolSpec("geocode_address", "Coordinates of an address"),)
    assert atlas.tools_source is ToolsSource.README
    assert atlas.summary == "Maps for agents. Every tool: Tool reference."
    assert (quotes.tools, quotes.tools_source) == ((), ToolsSource.NONE)  # its tarball ships no such page
    assert report.unfilled == {"quotes-mcp": "no README found"}
