"""`vsm-mcp bench match`: how well the matcher finds the servers and tools a task needs.

Tasks file: a JSON array of ``{id, query, gold_servers, gold_tools}``. Each
item of ``gold_servers`` is one *need*: a server name, or a list of
interchangeable servers; a need is met at k when any of them is in the top k.

Metrics (means over tasks, measured, never estimated):
- ``recall_at_k`` (k = 1, 3, 5): needs met at k / needs;
- ``all_gold_at_5``: share of tasks whose needs are all met at 5;
- ``tool_recall_at_10``: share of gold tool names among the top 10 tools;
- ``ms_per_query``: wall-clock mean of ``rank`` after one warm-up query (index build
  excluded, reported apart).

The same figures are computed for the plain-BM25 floor (``baseline_*``), on
the two halves of the tasks (split by a hash of the task id, stable across
runs), and on a synthetic catalog of 10,000 servers generated
deterministically from the real catalog's vocabulary (speed only).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vsm_mcp.discovery.baseline import PlainBm25
from vsm_mcp.discovery.catalog import Catalog, ServerEntry, ToolSpec, load_catalog
from vsm_mcp.discovery.matcher import Matcher, MatcherConfig
from vsm_mcp.errors import CatalogError

SYNTHETIC_SERVERS = 10_000
SYNTHETIC_SEED = 20250101  # fixed: the synthetic catalog must be identical on every run
SPEED_QUERIES = 200


class Ranker(Protocol):
    def rank(self, query: str, top_k: int = 10) -> tuple[list[str], list[tuple[str, str]]]: ...


class _TaskModel(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    query: str = Field(min_length=1)
    gold_servers: list[str | list[str]]
    gold_tools: list[str] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    query: str
    needs: tuple[frozenset[str], ...]
    gold_tools: frozenset[str]


@dataclass(frozen=True, slots=True)
class MatchMetrics:
    tasks: int
    recall_at_1: float
    recall_at_3: float
    recall_at_5: float
    all_gold_at_5: float
    tool_recall_at_10: float
    ms_per_query: float


def load_tasks(path: Path) -> list[Task]:
    """Read a tasks file.

    Raises:
        CatalogError: unreadable, not JSON, or an invalid task (named by index and id).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CatalogError(f"tasks {path}: cannot read as JSON ({exc})") from exc
    if not isinstance(data, list):
        raise CatalogError(f"tasks {path}: expected a JSON array of tasks")
    tasks: list[Task] = []
    for index, raw in enumerate(data):
        try:
            model = _TaskModel.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise CatalogError(f"tasks {path}: task {index}: {where}: {first['msg']}") from exc
        needs = tuple(frozenset([g] if isinstance(g, str) else g) for g in model.gold_servers)
        tasks.append(Task(model.id, model.query, needs, frozenset(model.gold_tools)))
    return tasks


def split_halves(tasks: Sequence[Task]) -> tuple[list[Task], list[Task]]:
    """Two halves by the SHA-256 of the task id: stable, independent of file order."""
    ordered = sorted(tasks, key=lambda t: hashlib.sha256(t.id.encode()).hexdigest())
    middle = len(ordered) // 2
    return ordered[:middle], ordered[middle:]


def evaluate(ranker: Ranker, tasks: Sequence[Task]) -> MatchMetrics:
    """Run every task through ``ranker`` and compute the metrics."""
    if not tasks:
        return MatchMetrics(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    ranker.rank(tasks[0].query, top_k=10)  # warm caches (stems, lexicon) outside the timing
    recall = {1: 0.0, 3: 0.0, 5: 0.0}
    all_gold = 0
    tool_recall = 0.0
    elapsed = 0.0
    for task in tasks:
        started = time.perf_counter()
        servers, tools = ranker.rank(task.query, top_k=10)
        elapsed += time.perf_counter() - started
        for k in recall:
            top = set(servers[:k])
            recall[k] += sum(1 for need in task.needs if need & top) / len(task.needs)
        top5 = set(servers[:5])
        all_gold += all(need & top5 for need in task.needs)
        if task.gold_tools:
            top_tools = {name for _, name in tools[:10]}
            tool_recall += len(task.gold_tools & top_tools) / len(task.gold_tools)
    n = len(tasks)
    with_tools = sum(1 for t in tasks if t.gold_tools) or 1
    return MatchMetrics(
        n,
        recall[1] / n,
        recall[3] / n,
        recall[5] / n,
        all_gold / n,
        tool_recall / with_tools,
        1000.0 * elapsed / n,
    )


def synthetic_catalog(real: Catalog, size: int = SYNTHETIC_SERVERS, seed: int = SYNTHETIC_SEED) -> Catalog:
    """A deterministic catalog of ``size`` servers whose words come from ``real``.

    Each synthetic server takes the tool count and text lengths of a real one
    and fills them with words drawn from the real catalog's vocabulary (with
    its frequencies), so posting-list lengths resemble a large real catalog.
    """
    rng = random.Random(seed)
    vocabulary = [word for entry in real for word in f"{entry.description}".split()]
    tool_words = [word for entry in real for tool in entry.tools for word in tool.description.split()]
    name_words = [word for entry in real for tool in entry.tools for word in tool.name.split("_")]
    templates = list(real)
    entries: list[ServerEntry] = []
    for index in range(size):
        template = templates[index % len(templates)]
        tools = tuple(
            ToolSpec(
                "_".join(rng.choices(name_words, k=2)) + f"_{index}_{n}",
                " ".join(rng.choices(tool_words, k=max(4, len(tool.description.split())))),
            )
            for n, tool in enumerate(template.tools)
        )
        description = " ".join(rng.choices(vocabulary, k=max(6, len(template.description.split()))))
        entries.append(ServerEntry(f"synthetic-{index:05d}", description, tools))
    return Catalog(tuple(entries), f"<synthetic {size}>")


@dataclass(frozen=True, slots=True)
class SpeedReading:
    servers: int
    tools: int
    build_s: float
    ms_per_query: float


def measure_speed(
    build: Callable[[Catalog], Ranker], catalog: Catalog, queries: Sequence[str]
) -> SpeedReading:
    """Build time and mean query time of a ranker on ``catalog``."""
    started = time.perf_counter()
    ranker = build(catalog)
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    for query in queries:
        ranker.rank(query, top_k=10)
    per_query = 1000.0 * (time.perf_counter() - started) / max(1, len(queries))
    return SpeedReading(len(catalog), catalog.tool_count, build_s, per_query)


#: the knobs cross-validation may tune, and their candidate values (3 x 3 x 3 = 27 configurations)
TUNING_GRID: dict[str, tuple[float, ...]] = {
    "aspect_share": (0.5, 1.0, 2.0),
    "expansion_weight": (0.2, 0.35, 0.5),
    "tool_level_share": (0.3, 0.5, 0.7),
}


def _objective(metrics: MatchMetrics) -> float:
    return metrics.recall_at_5 + metrics.all_gold_at_5


def tune(catalog: Catalog, tasks: Sequence[Task], base: MatcherConfig) -> MatcherConfig:
    """The grid configuration with the best recall@5 + all_gold@5 on ``tasks`` (first wins ties)."""
    best, best_score = base, -1.0
    for aspect_share in TUNING_GRID["aspect_share"]:
        for expansion in TUNING_GRID["expansion_weight"]:
            for tool_share in TUNING_GRID["tool_level_share"]:
                config = replace(
                    base, aspect_share=aspect_share, expansion_weight=expansion, tool_level_share=tool_share
                )
                score = _objective(evaluate(Matcher(catalog, config), tasks))
                if score > best_score:
                    best, best_score = config, score
    return best


def cross_validate(catalog: Catalog, tasks: Sequence[Task], base: MatcherConfig) -> dict[str, object]:
    """Tune on one half, report on the other, both ways (a guard against overfitting)."""
    half_a, half_b = split_halves(tasks)
    out: dict[str, object] = {}
    for name, train, test in (("a_to_b", half_a, half_b), ("b_to_a", half_b, half_a)):
        config = tune(catalog, train, base)
        out[name] = {
            "tuned_on": f"{len(train)} tasks",
            "config": {key: getattr(config, key) for key in TUNING_GRID},
            "held_out": asdict(evaluate(Matcher(catalog, config), test)),
            "held_out_with_defaults": asdict(evaluate(Matcher(catalog, base), test)),
        }
    return out


def run_benchmark(
    catalog_path: Path,
    tasks_path: Path,
    config: MatcherConfig | None = None,
    synthetic: bool = True,
    cross: bool = True,
) -> dict[str, Any]:
    """Every figure of `vsm-mcp bench match`, as a JSON-ready mapping."""
    catalog = load_catalog(catalog_path)
    tasks = load_tasks(tasks_path)
    config = config or MatcherConfig()
    matcher = Matcher(catalog, config)
    baseline = PlainBm25(catalog)
    report: dict[str, Any] = {"catalog": str(catalog_path), "tasks_file": str(tasks_path)}
    report.update(asdict(evaluate(matcher, tasks)))
    for key, value in asdict(evaluate(baseline, tasks)).items():
        if key != "tasks":
            report[f"baseline_bm25_{key}"] = value
    half_a, half_b = split_halves(tasks)
    report["halves"] = {
        "a": {"matcher": asdict(evaluate(matcher, half_a)), "baseline": asdict(evaluate(baseline, half_a))},
        "b": {"matcher": asdict(evaluate(matcher, half_b)), "baseline": asdict(evaluate(baseline, half_b))},
    }
    if cross:
        report["cross_validation"] = cross_validate(catalog, tasks, config)
    if synthetic:
        big = synthetic_catalog(catalog)
        queries = [t.query for t in tasks] * (SPEED_QUERIES // max(1, len(tasks)) + 1)
        reading = measure_speed(lambda c: Matcher(c, config), big, queries[:SPEED_QUERIES])
        report["synthetic"] = asdict(reading)
    return report
