from __future__ import annotations

import json
from pathlib import Path

import pytest

from vsm_mcp.bench.match import (
    Task,
    evaluate,
    load_tasks,
    measure_speed,
    run_benchmark,
    split_halves,
    synthetic_catalog,
)
from vsm_mcp.discovery.catalog import load_catalog
from vsm_mcp.discovery.matcher import Matcher
from vsm_mcp.errors import CatalogError

LIVEMCP = Path(__file__).resolve().parents[2].parent / "shared" / "bench" / "livemcp"


class FixedRanker:
    def __init__(self, servers: list[str], tools: list[tuple[str, str]]) -> None:
        self.servers, self.tools = servers, tools

    def rank(self, query: str, top_k: int = 10) -> tuple[list[str], list[tuple[str, str]]]:
        return self.servers[:top_k], self.tools[:top_k]


def test_metrics_count_needs_and_interchangeable_servers() -> None:
    tasks = [
        Task("1", "q", (frozenset({"a"}), frozenset({"x", "c"})), frozenset({"t1", "t2"})),
        Task("2", "q", (frozenset({"f"}),), frozenset()),
    ]
    ranker = FixedRanker(["a", "b", "c", "d", "e", "f"], [("a", "t1"), ("b", "zz")])
    metrics = evaluate(ranker, tasks)
    assert metrics.tasks == 2
    assert metrics.recall_at_1 == pytest.approx((0.5 + 0.0) / 2)
    assert metrics.recall_at_3 == pytest.approx((1.0 + 0.0) / 2)
    assert metrics.recall_at_5 == pytest.approx((1.0 + 0.0) / 2)
    assert metrics.all_gold_at_5 == pytest.approx(0.5)
    assert metrics.tool_recall_at_10 == pytest.approx(0.5)  # one task has gold tools; 1 of 2 found


def test_load_tasks_names_the_bad_task(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps([{"id": "a", "query": "q", "gold_servers": ["s", ["t", "u"]]}, {"id": "b"}]))
    with pytest.raises(CatalogError, match=r"task 1: query: Field required"):
        load_tasks(path)
    path.write_text(json.dumps([{"id": "a", "query": "q", "gold_servers": ["s", ["t", "u"]]}]))
    assert load_tasks(path)[0].needs == (frozenset({"s"}), frozenset({"t", "u"}))


def test_halves_are_stable_and_disjoint() -> None:
    tasks = [Task(str(i), "q", (), frozenset()) for i in range(11)]
    a, b = split_halves(tasks)
    assert (len(a), len(b)) == (5, 6)
    assert {t.id for t in a} | {t.id for t in b} == {str(i) for i in range(11)}
    assert split_halves(list(reversed(tasks))) == (a, b)


def livemcp() -> Path:
    if not (LIVEMCP / "catalog.json").exists():
        pytest.skip(f"LiveMCPBench dev data not found at {LIVEMCP}")
    return LIVEMCP


def test_synthetic_catalog_is_deterministic() -> None:
    real = load_catalog(livemcp() / "catalog.json")
    one, two = synthetic_catalog(real, size=300), synthetic_catalog(real, size=300)
    assert len(one) == 300
    assert one.entries == two.entries
    assert one.tool_count == sum(len(real.entries[i % len(real)].tools) for i in range(300))


def test_matcher_beats_the_floor_on_the_dev_tasks() -> None:
    data = livemcp()
    report = run_benchmark(data / "catalog.json", data / "tasks_dev.json", synthetic=False, cross=False)
    assert report["tasks"] == 47
    # the floor reproduces the README's plain BM25 figures
    assert round(float(report["baseline_bm25_recall_at_1"]), 2) == 0.44
    assert round(float(report["baseline_bm25_recall_at_5"]), 2) == 0.66
    assert round(float(report["baseline_bm25_all_gold_at_5"]), 2) == 0.49
    # the matcher has no rule written from these tasks: well above the floor, not the fitted 0.88 / 0.79
    assert float(report["recall_at_5"]) >= 0.78
    assert float(report["all_gold_at_5"]) >= 0.62


@pytest.mark.slow
def test_ten_thousand_servers_stay_fast() -> None:
    data = livemcp()
    real = load_catalog(data / "catalog.json")
    queries = [t.query for t in load_tasks(data / "tasks_dev.json")]
    reading = measure_speed(Matcher, synthetic_catalog(real), queries)
    assert reading.servers == 10_000
    # target 20 ms (see `vsm-mcp bench match`); doubled here because CI shares two cores
    assert reading.ms_per_query < 40.0
