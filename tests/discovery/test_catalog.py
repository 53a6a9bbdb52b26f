from __future__ import annotations

import json
from pathlib import Path

import pytest

from vsm_mcp.discovery.catalog import (
    ServerEntry,
    ToolSpec,
    ToolsSource,
    dump_catalog,
    entry_to_json,
    load_catalog,
    load_shipped_catalog,
    parse_catalog,
)
from vsm_mcp.discovery.readme import MAX_SUMMARY
from vsm_mcp.discovery.toolnames import looks_like_tool_list, naming_style
from vsm_mcp.errors import CatalogError

ENTRY = {
    "name": "Weather",
    "description": "Forecasts",
    "category": "Discovery",
    "repository": {"url": "https://github.com/x/weather", "source": "github"},
    "launch": {"command": "npx", "args": ["-y", "weather-mcp@1.2.3"]},
    "packages": [
        {
            "registryType": "npm",
            "identifier": "weather-mcp",
            "version": "1.2.3",
            "transport": {"type": "stdio"},
        }
    ],
    "tools": [
        {"name": "get_forecast", "description": "Forecast for a city", "inputSchema": {"type": "object"}}
    ],
}


def test_parse_catalog_builds_typed_entries() -> None:
    catalog = parse_catalog([ENTRY, {"name": "Bare", "description": "x"}], "mem.json")
    weather = catalog.get("Weather")
    assert weather is not None
    assert weather.repository == "https://github.com/x/weather"
    assert weather.launch is not None and weather.launch.args == ("-y", "weather-mcp@1.2.3")
    assert weather.packages[0].version == "1.2.3"
    assert weather.tool_names == ("get_forecast",)
    assert weather.tools[0].input_schema == {"type": "object"}
    assert len(catalog) == 2
    assert catalog.tool_count == 1


def test_error_names_file_entry_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([ENTRY, {"name": "Broken", "tools": [{"description": "no name"}]}]))
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert str(info.value).startswith(f"catalog {path}: entry 1 ('Broken'): tools.0.name: Field required")


def test_duplicate_names_are_rejected() -> None:
    with pytest.raises(
        CatalogError, match=r"entry 1 \('Weather'\): duplicate server name, first used by entry 0"
    ):
        parse_catalog([ENTRY, ENTRY], "dup.json")


def test_not_an_array_and_bad_json(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="expected a JSON array of servers, got dict"):
        parse_catalog({"servers": []}, "x.json")
    path = tmp_path / "broken.json"
    path.write_text("[{")
    with pytest.raises(CatalogError, match="invalid JSON at line 1 column 3"):
        load_catalog(path)
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(tmp_path / "missing.json")


def test_dump_then_parse_round_trips() -> None:
    catalog = parse_catalog([ENTRY], "a")
    again = parse_catalog(json.loads(dump_catalog(catalog.entries)), "b")
    assert again.entries == catalog.entries


def test_catalogs_without_tools_source_or_summary_load_with_defaults() -> None:
    catalog = parse_catalog([ENTRY, {"name": "Bare", "description": "x"}], "old.json")
    weather, bare = catalog.entries
    assert (weather.tools_source, weather.summary) == (ToolsSource.CATALOG, "")
    assert (bare.tools_source, bare.summary) == (ToolsSource.NONE, "")


def test_tools_source_and_summary_round_trip() -> None:
    entry = ServerEntry(
        "weather-mcp",
        "Forecasts",
        (ToolSpec("get_forecast", "Forecast for a city"),),
        tools_source=ToolsSource.README,
        summary="A weather server: forecasts and alerts.",
    )
    data = entry_to_json(entry)
    assert (data["toolsSource"], data["summary"]) == ("readme", "A weather server: forecasts and alerts.")
    assert parse_catalog([data], "x").entries == (entry,)


def test_an_entry_without_tools_is_always_marked_none() -> None:
    assert ServerEntry("x", "d", tools_source=ToolsSource.README).tools_source is ToolsSource.NONE
    with pytest.raises(CatalogError, match="toolsSource"):
        parse_catalog([{"name": "x", "toolsSource": "guess"}], "bad.json")


def test_shipped_catalog_has_300_real_pinned_servers() -> None:
    catalog = load_shipped_catalog()
    assert len(catalog) >= 300
    registries = {entry.packages[0].registry_type for entry in catalog}
    assert registries == {"npm", "pypi"}
    for entry in catalog:
        package = entry.packages[0]
        assert package.version, entry.name
        assert entry.launch is not None
        pinned = (
            f"{package.identifier}@{package.version}"
            if package.registry_type == "npm"
            else (f"{package.identifier}=={package.version}")
        )
        assert pinned in entry.launch.args, entry.name
    filesystem = catalog.get("@modelcontextprotocol/server-filesystem")
    assert filesystem is not None and "write_file" in filesystem.tool_names


def test_shipped_catalog_says_where_tools_came_from_and_summarises_readmes() -> None:
    catalog = load_shipped_catalog()
    sources = {entry.tools_source for entry in catalog}
    assert ToolsSource.README in sources and ToolsSource.NONE in sources
    for entry in catalog:
        assert (entry.tools_source is ToolsSource.NONE) == (not entry.tools), entry.name
        assert len(entry.summary) <= MAX_SUMMARY + 1, entry.name
        assert "](" not in entry.summary and "```" not in entry.summary, entry.name
    assert sum(1 for entry in catalog if entry.summary) >= len(catalog) * 3 // 4


def test_no_shipped_tool_list_reads_as_parameter_names() -> None:
    """No entry's tools are (mostly) camelCase/PascalCase/UPPER nouns without an action verb.

    Parameter and response-field names (``GradeDate``, ``perPage``,
    ``userId``) are nouns in camel or Pascal case; tool names are operations
    (``get_forecast``) or snake/kebab-case nouns (``sequential_thinking``).
    A list fails when more than half of it is camel/Pascal/UPPER case and
    fewer than half of it holds an action verb (`looks_like_tool_list`).
    """
    suspicious = []
    for entry in load_shipped_catalog():
        names = entry.tool_names
        shouty = sum(naming_style(n) in {"camel", "pascal", "upper", "dotted"} for n in names)
        if names and 2 * shouty > len(names) and not looks_like_tool_list(names):
            suspicious.append(entry.name)
    assert suspicious == []
