from __future__ import annotations

import json
from pathlib import Path

import pytest

from vsm_mcp.discovery.catalog import (
    dump_catalog,
    load_catalog,
    load_shipped_catalog,
    parse_catalog,
)
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
    assert filesystem is not None and "read_file" in filesystem.tool_names
