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


def _bench_fixture(tmp_path: Path) -> tuple[Path, Path]:
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
                {"id": "3", "query": "write a file", "gold_servers": ["Files"], "gold_tools": ["write_file"]},
                {"id": "4", "query": "weather forecast", "gold_servers": ["Weather"]},
            ]
        )
    )
    return catalog, tasks


def test_bench_match_json(tmp_path: Path) -> None:
    catalog, tasks = _bench_fixture(tmp_path)
    args = ["bench", "match", "--catalog", str(catalog), "--tasks", str(tasks), "--cv", "2", "--no-memory"]
    result = CliRunner().invoke(
        app(), [*args, "--repeats", "3", "--no-synthetic", "--no-catalog-queries", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    cross = report["cross_validation"]
    assert (cross["folds"], cross["repeats"], cross["tasks"]) == (2, 3, 4)
    assert [(f["repeat"], f["fold"], f["tasks"]) for f in cross["per_fold"]] == [
        (r, f, 2) for r in range(3) for f in range(2)
    ]
    assert cross["matcher"]["recall_at_5"] == {"mean": 1.0, "std": 0.0, "min": 1.0, "max": 1.0}
    assert cross["matcher"]["all_gold_at_5"]["mean"] == 1.0
    assert set(cross["without_embedding_model"]) == set(cross["baseline_bm25"])
    assert set(cross["baseline_bm25"]) == {
        "recall_at_1",
        "recall_at_3",
        "recall_at_5",
        "all_gold_at_5",
        "tool_recall_at_10",
    }
    assert report["in_sample"]["matcher"]["tasks"] == 4
    assert report["speed"]["catalog"]["servers"] == 3
    assert "catalog_queries" not in report
    assert "synthetic" not in report["speed"]


def test_bench_match_table_says_the_figures_are_cross_validated(tmp_path: Path) -> None:
    catalog, tasks = _bench_fixture(tmp_path)
    args = ["bench", "match", "--catalog", str(catalog), "--tasks", str(tasks), "--cv", "2", "--no-synthetic"]
    args.append("--no-memory")
    result = CliRunner().invoke(app(), [*args, "--repeats", "1", "--no-catalog-queries"])
    assert result.exit_code == 0, result.output
    assert "2-fold cross-validated on 4 tasks" in result.output
    assert "2 of 2 folds chose" in result.output
    # tasks 2 needs Weather and Files: one server at rank 1 meets half of it
    assert "recall@1 can reach at most 0.875 on these tasks" in " ".join(result.output.split())
    assert "chosen on all tasks (the shipped defaults)" in result.output
    repeated = CliRunner().invoke(app(), [*args, "--no-catalog-queries"])
    assert repeated.exit_code == 0, repeated.output
    assert "2-fold cross-validated (5 deals into folds) on 4 tasks" in repeated.output
    assert "mean over the 10 held-out folds" in repeated.output
    assert "no model: the same cross-validation without the embedding model" in " ".join(
        repeated.output.split()
    )
    no_repeat = CliRunner().invoke(app(), [*args, "--repeats", "0", "--no-catalog-queries"])
    assert no_repeat.exit_code == 2
    assert "shipped query set" not in result.output
    quick = CliRunner().invoke(app(), [*args, "--cv", "0", "--no-catalog-queries"])
    assert quick.exit_code == 0, quick.output
    assert "NOT cross-validated: default configuration on all 4 tasks" in quick.output
    assert "cross-validated on" not in quick.output.replace("NOT cross-validated", "")
    refused = CliRunner().invoke(app(), [*args, "--cv", "5", "--no-catalog-queries"])
    assert refused.exit_code == 2
    assert "5 folds need at least 2 folds and 5 tasks (4 given)" in refused.output


def test_bench_match_scores_the_shipped_query_set_without_tasks() -> None:
    result = CliRunner().invoke(app(), ["bench", "match", "--no-synthetic", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert "cross_validation" not in report
    queries = report["catalog_queries"]
    assert queries["servers"] == 425
    assert queries["matcher"]["tasks"] == queries["baseline_bm25"]["tasks"] >= 40
    assert all(set(miss) == {"id", "query", "first_need", "top"} for miss in queries["misses"])
    assert report["speed"]["catalog"]["servers"] == 425
    memory = report["memory"]
    assert memory["servers"] == 425
    # measured in a fresh process: the model is most of it, and the rest is not nothing
    assert 0.0 < memory["matcher_without_model_mib"] < memory["matcher_mib"]
    assert memory["model_share_mib"] > 0.0
    assert memory["peak_mib"] >= memory["base_mib"] + memory["matcher_mib"] - 1.0
    table = CliRunner().invoke(app(), ["bench", "match", "--no-synthetic", "--show-misses"])
    assert table.exit_code == 0, table.output
    assert f"shipped query set: {queries['matcher']['tasks']} labelled needs" in table.output
    assert f"first need not met at 1: {len(queries['misses'])} of" in table.output
    for miss in queries["misses"]:
        assert f"  {miss['id']}: " in table.output
    assert "memory: a matcher over the shipped catalog (425 servers" in " ".join(table.output.split())
