from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from vsm_mcp.cli import catalog
from vsm_mcp.errors import CatalogError

ENTRIES = [
    {
        "name": "weather-mcp",
        "description": "Weather forecasts",
        "tools": [{"name": "get_forecast", "description": "Forecast"}],
        "packages": [{"registryType": "npm", "identifier": "weather-mcp", "version": "1.2.3"}],
    }
]


def app() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(catalog.app, name="catalog")
    return root


def test_search_and_show(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(ENTRIES))
    found = CliRunner().invoke(app(), ["catalog", "search", "weather forecast", "--catalog", str(path)])
    assert found.exit_code == 0, found.output
    assert "weather-mcp" in found.output and "1.2.3" in found.output
    as_json = CliRunner().invoke(
        app(), ["catalog", "search", "weather forecast", "--catalog", str(path), "--json"]
    )
    (row,) = json.loads(as_json.output)
    assert {k: row[k] for k in ("rank", "server", "version", "description")} == {
        "rank": 1,
        "server": "weather-mcp",
        "version": "1.2.3",
        "description": "Weather forecasts",
    }
    assert row["score"] > 0
    shown = CliRunner().invoke(app(), ["catalog", "show", "weather-mcp", "--catalog", str(path)])
    assert shown.exit_code == 0
    assert json.loads(shown.output)["packages"][0]["version"] == "1.2.3"


def test_show_unknown_server_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(ENTRIES))
    result = CliRunner().invoke(app(), ["catalog", "show", "nope", "--catalog", str(path)])
    assert isinstance(result.exception, CatalogError)
    assert str(result.exception) == f"catalog {path}: no server named 'nope'"


@pytest.mark.external
def test_refresh_writes_a_catalog_from_live_metadata(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.json"
    seeds.write_text(
        json.dumps(
            [
                {"registry": "pypi", "name": "mcp-server-time"},
                {"registry": "npm", "name": "@modelcontextprotocol/server-memory"},
            ]
        )
    )
    known = [
        {
            "name": "Memory",
            "description": "",
            "launch": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"]},
            "tools": [{"name": "create_entities", "description": "not copied"}],
        }
    ]
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(known))
    out = tmp_path / "out.json"
    args = ["catalog", "refresh", "--seeds", str(seeds), "--output", str(out), "--tools-from", str(tools)]
    result = CliRunner().invoke(app(), args)
    assert result.exit_code == 0, result.output
    time_entry, memory = json.loads(out.read_text())
    assert time_entry["name"] == "mcp-server-time"
    assert [t["name"] for t in time_entry["tools"]] == ["get_current_time", "convert_time"]  # from its README
    assert time_entry["launch"]["args"] == [f"mcp-server-time=={time_entry['packages'][0]['version']}"]
    assert memory["tools"] == [{"name": "create_entities", "description": "", "inputSchema": {}}]
    assert memory["launch"]["args"] == [
        "-y",
        f"@modelcontextprotocol/server-memory@{memory['packages'][0]['version']}",
    ]
