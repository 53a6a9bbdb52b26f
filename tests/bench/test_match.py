from __future__ import annotations

import json
from pathlib import Path

import pytest

from vsm_mcp.bench.match import (
    CV_GRID,
    Candidate,
    Task,
    assign_folds,
    catalog_queries_path,
    cross_validate,
    evaluate,
    grid_configs,
    load_tasks,
    measure_speed,
    recall_at_1_ceiling,
    run_benchmark,
    score_tasks,
    spread,
    synthetic_catalog,
)
from vsm_mcp.discovery.catalog import load_catalog, load_shipped_catalog
from vsm_mcp.discovery.matcher import Matcher, MatcherConfig
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


def test_folds_are_stable_balanced_disjoint_and_covering() -> None:
    tasks = [Task(f"task-{i}", "q", (), frozenset()) for i in range(23)]
    folds = assign_folds(tasks, 5)
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]  # every task in exactly one fold, every fold used
    assert sorted(folds.count(f) for f in range(5)) == [4, 4, 5, 5, 5]
    by_id = dict(zip((t.id for t in tasks), folds, strict=True))
    shuffled = tasks[7:] + tasks[:7]
    assert dict(zip((t.id for t in shuffled), assign_folds(shuffled, 5), strict=True)) == by_id
    assert assign_folds(tasks, 5) == folds
    # a repeat deals the same tasks again, otherwise: balanced too, not the same deal
    again = assign_folds(tasks, 5, repeat=1)
    assert sorted(again.count(f) for f in range(5)) == [4, 4, 5, 5, 5]
    assert again != folds
    assert assign_folds(tasks, 5, repeat=1) == again
    assert assign_folds(tasks, 5, repeat=0) == folds
    with pytest.raises(ValueError, match="6 folds"):
        assign_folds(tasks[:5], 6)
    with pytest.raises(ValueError, match="unique"):
        assign_folds([*tasks, tasks[0]], 5)


class TableRanker:
    """Ranks ``gold`` first for the queries in ``good``, ``decoy`` first otherwise."""

    def __init__(self, good: set[str]) -> None:
        self.good = good

    def rank(self, query: str, top_k: int = 10) -> tuple[list[str], list[tuple[str, str]]]:
        order = ["gold", "decoy"] if query in self.good else ["decoy", "x1", "x2", "x3", "x4", "gold"]
        return order[:top_k], [("gold", "t")] if query in self.good else []


def test_each_fold_is_scored_with_the_configuration_chosen_on_the_others() -> None:
    tasks = [Task(f"t{i}", f"q{i}", (frozenset({"gold"}),), frozenset({"t"})) for i in range(20)]
    folds = assign_folds(tasks, 4)
    fold0 = {t.query for t, f in zip(tasks, folds, strict=True) if f == 0}
    others = {t.query for t in tasks} - fold0
    # the default finds a quarter of the tasks; the tuned setting finds every task outside fold 0
    quarter = {t.query for t in tasks if int(t.id[1:]) % 4 == 0}
    default = Candidate({"w": 1.0}, score_tasks(TableRanker(quarter), tasks))
    tuned = Candidate({"w": 2.0}, score_tasks(TableRanker(others), tasks))
    floor = score_tasks(TableRanker(set()), tasks)
    results = cross_validate([default, tuned], floor, folds)
    assert [r.fold for r in results] == [0, 1, 2, 3]
    assert [r.tasks for r in results] == [5, 5, 5, 5]
    # fold 0: "tuned" wins on folds 1-3 and is then scored on fold 0, where it finds nothing
    assert results[0].chosen == {"w": 2.0}
    assert results[0].matcher.recall_at_1 == 0.0
    assert results[0].matcher.recall_at_5 == 0.0
    assert results[0].matcher.tool_recall_at_10 == 0.0
    for result in results[1:]:
        assert result.chosen == {"w": 2.0}
        assert result.matcher.recall_at_1 == 1.0
    assert all(r.baseline.recall_at_1 == 0.0 and r.baseline.recall_at_5 == 0.0 for r in results)
    assert all(r.baseline.tool_recall_at_10 == 0.0 for r in results)
    # a tie on the training folds goes to the default (candidate 0)
    same = Candidate({"w": 3.0}, default.scores)
    assert [r.chosen for r in cross_validate([default, same], floor, folds)] == [{"w": 1.0}] * 4


def test_spread_is_mean_sample_std_min_max() -> None:
    assert spread([0.5, 1.0, 0.0]) == {"mean": 0.5, "std": 0.5, "min": 0.0, "max": 1.0}
    assert spread([None, 0.25]) == {"mean": 0.25, "std": 0.0, "min": 0.25, "max": 0.25}
    assert spread([None]) is None


def test_grid_starts_with_the_defaults_and_ignores_unknown_fields() -> None:
    base = MatcherConfig(aspect_share=1.0)
    grid, configs = grid_configs(base, {"aspect_share": (1.0, 2.0), "no_such_field": (1.0, 9.0)})
    assert grid == {"aspect_share": (1.0, 2.0)}
    assert configs[0] == ({"aspect_share": base.aspect_share}, base)
    assert [params for params, _ in configs] == [{"aspect_share": 1.0}, {"aspect_share": 2.0}]
    assert configs[1][1].aspect_share == 2.0
    assert set(grid_configs(MatcherConfig())[0]) <= set(CV_GRID)


def test_catalog_queries_name_servers_of_the_shipped_catalog() -> None:
    queries = load_tasks(catalog_queries_path())
    assert 40 <= len(queries) <= 60
    assert len({q.id for q in queries}) == len(queries)
    catalog = load_shipped_catalog()
    for query in queries:
        for need in query.needs:
            for name in need:
                assert catalog.get(name) is not None, f"{query.id}: {name} is not in the shipped catalog"
        entries = [catalog.get(name) for need in query.needs for name in need]
        tools = {tool.name for entry in entries if entry is not None for tool in entry.tools}
        assert query.gold_tools <= tools, f"{query.id}: {sorted(query.gold_tools - tools)}"


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
    report = run_benchmark(
        data / "catalog.json",
        data / "tasks_dev.json",
        folds=0,
        synthetic=False,
        catalog_queries=False,
        memory=False,
    )
    assert "cross_validation" not in report
    matcher, floor = report["in_sample"]["matcher"], report["in_sample"]["baseline_bm25"]
    assert matcher["tasks"] == 47
    # the floor reproduces the README's plain BM25 figures
    assert round(float(floor["recall_at_1"]), 2) == 0.44
    assert round(float(floor["recall_at_5"]), 2) == 0.66
    assert round(float(floor["all_gold_at_5"]), 2) == 0.49
    # the matcher has no rule written from these tasks: well above the floor, not the fitted 0.88 / 0.79
    assert float(matcher["recall_at_5"]) >= 0.78
    assert float(matcher["all_gold_at_5"]) >= 0.62


@pytest.mark.slow
def test_the_shipped_defaults_are_what_cross_validation_chooses_on_every_dev_task() -> None:
    data = livemcp()
    report = run_benchmark(
        data / "catalog.json",
        data / "tasks_dev.json",
        folds=5,
        synthetic=False,
        catalog_queries=False,
        memory=False,
    )
    chosen = report["cross_validation"]["chosen_on_all_tasks"]
    defaults = MatcherConfig()
    assert chosen == {key: getattr(defaults, key) for key in chosen}
    assert report["cross_validation"]["default"] == chosen


@pytest.mark.slow
def test_ten_thousand_servers_stay_fast() -> None:
    data = livemcp()
    real = load_catalog(data / "catalog.json")
    queries = [t.query for t in load_tasks(data / "tasks_dev.json")]
    reading = measure_speed(Matcher, synthetic_catalog(real), queries)
    assert reading.servers == 10_000
    # The 20 ms target is measured by `vsm-mcp bench match` (BENCHMARKS.md), not here: under coverage
    # on two shared cores a timing is noise. This bound only catches a catastrophic regression
    # (a scan per query of every server's tools, say).
    assert 0.0 < reading.ms_per_query < 200.0


def test_recall_at_1_ceiling_counts_the_needs_one_server_can_meet() -> None:
    one = Task("a", "q", (frozenset({"x"}),), frozenset())
    two = Task("b", "q", (frozenset({"x"}), frozenset({"y"})), frozenset())
    shared = Task("c", "q", (frozenset({"x"}), frozenset({"x", "z"})), frozenset())  # x meets both
    three = Task("d", "q", (frozenset({"x"}), frozenset({"y"}), frozenset({"z"})), frozenset())
    assert recall_at_1_ceiling([one]) == 1.0
    assert recall_at_1_ceiling([two, shared]) == 0.75
    assert recall_at_1_ceiling([one, two, three]) == pytest.approx((1.0 + 0.5 + 1 / 3) / 3)
    assert recall_at_1_ceiling([]) == 0.0
