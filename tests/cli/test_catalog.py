from __future__ import annotations

import json
from pathlib import Path

import httpx
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
    # its README lists its tools now, with descriptions: the known names are not needed
    assert memory["toolsSource"] == "readme"
    assert memory["tools"][0]["name"] == "create_entities" and memory["tools"][0]["description"]
    assert memory["summary"]
    assert memory["launch"]["args"] == [
        "-y",
        f"@modelcontextprotocol/server-memory@{memory['packages'][0]['version']}",
    ]


def test_refresh_flags_unfilled_entries_and_explains_removed_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = "# w\n\nWeather forecasts.\n\n## Tools\n\n- `get_forecast`: Forecast for a place\n"

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/weather-mcp/latest":
            return httpx.Response(200, json={"name": "weather-mcp", "version": "2.0.0", "dist": {}})
        if path == "/weather-mcp":
            return httpx.Response(200, json={"readme": readme})
        if path == "/bare-mcp/latest":
            return httpx.Response(200, json={"name": "bare-mcp", "version": "1.0.0"})
        if path == "/bare-mcp":
            return httpx.Response(200, json={})
        return httpx.Response(404)

    monkeypatch.setattr(
        catalog, "refresh_client", lambda: httpx.AsyncClient(transport=httpx.MockTransport(handler))
    )
    seeds = tmp_path / "seeds.json"
    seeds.write_text(
        json.dumps([{"registry": "npm", "name": n} for n in ("weather-mcp", "bare-mcp", "gone-mcp")])
    )
    out = tmp_path / "out.json"
    previous = [
        {
            "name": name,
            "description": "",
            "packages": [{"registryType": "npm", "identifier": name, "version": "0.1.0"}],
            "tools": [{"name": "GradeDate"}, {"name": "Firm"}] if name == "bare-mcp" else [],
        }
        for name in ("weather-mcp", "bare-mcp", "gone-mcp", "old-mcp")
    ]
    out.write_text(json.dumps(previous))
    args = ["catalog", "refresh", "--seeds", str(seeds), "--output", str(out)]
    result = CliRunner().invoke(app(), [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {k: report[k] for k in ("servers", "with_tools", "tools_source", "unfilled", "missing")} == {
        "servers": 2,
        "with_tools": 1,
        "tools_source": {"readme": 1, "catalog": 0, "none": 1},
        "unfilled": {"bare-mcp": "no README found"},
        "missing": ["npm:gone-mcp"],
    }
    assert report["dropped_tool_names"] == {"bare-mcp": ["GradeDate", "Firm"]}
    assert report["lost"] == {"gone-mcp": "not on the registry", "old-mcp": "no longer in the seed list"}
    weather, bare = json.loads(out.read_text())
    assert (weather["toolsSource"], weather["summary"]) == (
        "readme",
        "Weather forecasts. get_forecast: Forecast for a place.",
    )
    assert (bare["toolsSource"], bare["tools"]) == ("none", [])

    out.write_text(json.dumps(previous))
    text = CliRunner().invoke(app(), args)
    assert text.exit_code == 0, text.output
    assert "1 without tools (no README found, none known): bare-mcp" in text.output
    assert "removed old-mcp: no longer in the seed list" in text.output
