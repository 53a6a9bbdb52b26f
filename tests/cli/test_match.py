from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from vsm_mcp.cli import match

CATALOG = [
    {
        "name": "Charts",
        "description": "Generate charts",
        "tools": [{"name": "bar_chart", "description": "Bar chart"}],
    },
    {
        "name": "Files",
        "description": "Filesystem",
        "tools": [{"name": "write_file", "description": "Write a file"}],
    },
    {
        "name": "Weather",
        "description": "Forecasts",
        "tools": [{"name": "get_forecast", "description": "Forecast"}],
    },
]


def app() -> typer.Typer:
    root = typer.Typer()
    match.register(root)
    bench = typer.Typer()
    match.register_bench(bench)
    root.add_typer(bench, name="bench")
    return root


def test_match_json_ranks_servers_and_tools(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(CATALOG))
    result = CliRunner().invoke(
        app(), ["match", "draw a bar chart", "--catalog", str(path), "--top", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["servers"][0]["name"] == "Charts"
    assert data["servers"][0]["tools"] == ["bar_chart"]
    assert data["tools"][0] == {"server": "Charts", "tool": "bar_chart", "score": data["tools"][0]["score"]}
    assert len(data["servers"]) == 2


def test_match_uses_learned_outcomes_of_a_category(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(CATALOG))
    args = ["match", "draw a bar chart", "--catalog", str(path), "--category", "viz", "--json"]
    result = CliRunner().invoke(app(), args, env={"VSM_MCP_STATE_DIR": str(tmp_path / "state")})
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["servers"][0]["name"] == "Charts"


def test_match_on_the_shipped_catalog() -> None:
    table = CliRunner().invoke(app(), ["match", "read and write files on disk", "--top", "3"])
    assert table.exit_code == 0, table.output
    assert "best 3 of" in table.output
    result = CliRunner().invoke(app(), ["match", "read and write files on disk", "--json"])
    names = [s["name"] for s in json.loads(result.output)["servers"]]
    assert names[0] == "@modelcontextprotocol/server-filesystem"


def test_bench_match_json(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps(CATALOG))
    tasks = tmp_path / "tasks.json"
    tasks.write_text(
        json.dumps(
            [
                {
                    "id": "1",
                    "query": "bar chart of sales",
                    "gold_servers": ["Charts"],
                    "gold_tools": ["bar_chart"],
                },
                {
                    "id": "2",
                    "query": "save the forecast to /tmp/a/w.md",
                    "gold_servers": ["Weather", "Files"],
                },
            ]
        )
    )
    args = ["bench", "match", "--catalog", str(catalog), "--tasks", str(tasks), "--no-synthetic", "--json"]
    result = CliRunner().invoke(app(), args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["tasks"] == 2
    assert report["recall_at_5"] == 1.0
    assert report["all_gold_at_5"] == 1.0
    assert report["tool_recall_at_10"] == 1.0
    assert set(report["cross_validation"]) == {"a_to_b", "b_to_a"}
    assert "baseline_bm25_recall_at_5" in report
