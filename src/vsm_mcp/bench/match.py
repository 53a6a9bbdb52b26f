"""`vsm-mcp bench match`: how well the matcher finds the servers and tools a task needs.

Tasks file: a JSON array of ``{id, query, gold_servers, gold_tools}``. Each
item of ``gold_servers`` is one *need*: a server name, or a list of
interchangeable servers; a need is met at k when any of them is in the top k.

Metrics (means over tasks, measured, never estimated):
- ``recall_at_k`` (k = 1, 3, 5): needs met at k / needs;
- ``all_gold_at_5``: share of tasks whose needs are all met at 5;
- ``tool_recall_at_10``: share of gold tool names among the top 10 tools, over
  the tasks that name gold tools (``None`` when none does);
- ``ms_per_query``: wall-clock mean of ``rank`` after one warm-up query (index build
  excluded, reported apart).

Cross-validation (`cross_validate`): the tasks are dealt into K folds by the
SHA-256 of their id (sorted by hash, dealt in turn: stable across runs and
file orders, fold sizes differ by at most one). It is repeated R times
(``repeats``), each repeat dealing by the hash of ``"<repeat>:<id>"`` (repeat 0
by the id alone), so a figure does not hang on one lucky or unlucky deal of a
small task set; the figures are over all R x K held-out folds. For each fold, the matcher's
parameters are chosen among the default `MatcherConfig` and the `CV_GRID`
configurations by `OBJECTIVE` on the *other* K-1 folds only (ties go to the
default, then to grid order), and that choice is scored on the held-out fold.
The plain-BM25 floor (`PlainBm25`, no parameters) is scored on the same folds.
Each ranker runs every task once; folds only pick which per-task scores count.

The report (`run_benchmark`, printed by ``--json``) holds:
- ``tasks_file``, ``catalog``: the data the tasks' figures were measured on;
- ``cross_validation`` (when K >= 2): ``folds``, ``repeats``, ``tasks``, ``objective``,
  ``grid`` (the grid actually searched), ``default`` (the default values of
  the grid's fields), ``matcher`` and ``baseline_bm25`` (per metric: ``mean``
  over the R x K folds, sample ``std`` across them, ``min``, ``max``) and ``per_fold``
  (repeat, fold, tasks, chosen parameters, both rankers' held-out metrics), and
  ``without_embedding_model``: the same cross-validation of the matcher with the
  model switched off (its grid without ``semantic_weight``), on the same folds;
- ``recall_at_1_ceiling``: the best recall@1 any ranking can reach on the
  tasks (one server at rank 1 meets only the needs it is named in);
- ``in_sample``: the default configuration and the floor on all tasks (not
  cross-validated: no choice was made on them, but they are the tasks the
  defaults were benchmarked on);
- ``catalog_queries`` (unless disabled): the shipped labelled query set
  (``data/catalog_queries.json``) on the shipped catalog, default
  configuration beside its floor, and ``misses``: the queries whose first
  need is not met at 1, with the top 3 servers;
- ``speed``: ``catalog`` (the tasks' catalog) and ``synthetic`` (10,000
  servers generated deterministically from its vocabulary): servers, tools,
  index build seconds and ms/query;
- ``memory`` (unless disabled): what a matcher over the shipped catalog, the
  gateway's, adds to a fresh process, with and without the embedding model
  (`matcher_memory`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vsm_mcp.bench.matcher_memory import measure_matcher_memory
from vsm_mcp.discovery.baseline import PlainBm25
from vsm_mcp.discovery.catalog import Catalog, ServerEntry, ToolSpec, load_catalog, shipped_catalog_path
from vsm_mcp.discovery.embed import Embedder, load_embedder
from vsm_mcp.discovery.matcher import Matcher, MatcherConfig
from vsm_mcp.errors import CatalogError

SYNTHETIC_SERVERS = 10_000
SYNTHETIC_SEED = 20250101  # fixed: the synthetic catalog must be identical on every run
SPEED_QUERIES = 200
DEFAULT_FOLDS = 5
DEFAULT_REPEATS = 5
CATALOG_QUERIES = "catalog_queries.json"

#: MatcherConfig fields cross-validation may set, and their candidate values. Keys
#: MatcherConfig does not have are ignored. All are query-time weights, so one index serves
#: every configuration (`Matcher.reconfigured`): 3 x 3 x 4 x 4 = 144 configurations on ~50
#: tasks and a ~70-server catalog take ~30 s. tool_server_share only moves the tool ranking,
#: which `OBJECTIVE` scores through tool recall.
CV_GRID: dict[str, tuple[float, ...]] = {
    "aspect_share": (0.5, 1.0, 2.0),
    "tool_level_share": (0.3, 0.5, 0.7),
    "semantic_weight": (0.2, 0.35, 0.5, 0.65),
    "tool_server_share": (0.35, 0.5, 0.65, 0.8),
}

OBJECTIVE = (
    "mean of the four target metrics (recall@1, recall@5, all_gold@5, tool_recall@10) on the "
    "training folds; ties go to the default configuration"
)

METRICS = ("recall_at_1", "recall_at_3", "recall_at_5", "all_gold_at_5", "tool_recall_at_10")


class Ranker(Protocol):
    def rank(self, query: str, top_k: int = 10) -> tuple[list[str], list[tuple[str, str]]]: ...


class _TaskModel(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    query: str = Field(min_length=1)
    gold_servers: list[str | list[str]] = Field(min_length=1)
    gold_tools: list[str] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    query: str
    needs: tuple[frozenset[str], ...]
    gold_tools: frozenset[str]


@dataclass(frozen=True, slots=True)
class TaskScore:
    """One task's outcome under one ranker."""

    task: Task
    recall: tuple[float, float, float]  # at 1, 3, 5
    all_gold_at_5: bool
    tool_recall_at_10: float | None  # None: the task names no gold tool
    seconds: float
    servers: tuple[str, ...]  # the ranking, best first (top 10)


@dataclass(frozen=True, slots=True)
class MatchMetrics:
    tasks: int
    recall_at_1: float
    recall_at_3: float
    recall_at_5: float
    all_gold_at_5: float
    tool_recall_at_10: float | None
    ms_per_query: float


def _parse_tasks(data: object, where: str) -> list[Task]:
    if not isinstance(data, list):
        raise CatalogError(f"{where}: expected a JSON array of tasks")
    tasks: list[Task] = []
    for index, raw in enumerate(data):
        try:
            model = _TaskModel.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise CatalogError(f"{where}: task {index}: {loc}: {first['msg']}") from exc
        needs = tuple(frozenset([g] if isinstance(g, str) else g) for g in model.gold_servers)
        tasks.append(Task(model.id, model.query, needs, frozenset(model.gold_tools)))
    return tasks


def load_tasks(path: Path) -> list[Task]:
    """Read a tasks file.

    Raises:
        CatalogError: unreadable, not JSON, or an invalid task (named by index and id).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CatalogError(f"tasks {path}: cannot read as JSON ({exc})") from exc
    return _parse_tasks(data, f"tasks {path}")


def catalog_queries_path() -> Path:
    """The labelled query set shipped for the shipped catalog."""
    return Path(str(resources.files("vsm_mcp.bench") / "data" / CATALOG_QUERIES))


def score_task(ranker: Ranker, task: Task) -> TaskScore:
    """Rank ``task``'s query and score the ranking against its gold labels."""
    started = time.perf_counter()
    servers, tools = ranker.rank(task.query, top_k=10)
    seconds = time.perf_counter() - started
    recall = tuple(
        sum(1 for need in task.needs if need & set(servers[:k])) / len(task.needs) for k in (1, 3, 5)
    )
    top5 = set(servers[:5])
    tool_recall = None
    if task.gold_tools:
        top_tools = {name for _, name in tools[:10]}
        tool_recall = len(task.gold_tools & top_tools) / len(task.gold_tools)
    return TaskScore(
        task,
        (recall[0], recall[1], recall[2]),
        all(need & top5 for need in task.needs),
        tool_recall,
        seconds,
        tuple(servers),
    )


def score_tasks(ranker: Ranker, tasks: Sequence[Task]) -> list[TaskScore]:
    """Every task through ``ranker``, after one warm-up query (caches) outside the timing."""
    if tasks:
        ranker.rank(tasks[0].query, top_k=10)
    return [score_task(ranker, task) for task in tasks]


def summarise(scores: Sequence[TaskScore]) -> MatchMetrics:
    """The metrics of a set of task scores (means over its tasks)."""
    n = len(scores)
    if not n:
        return MatchMetrics(0, 0.0, 0.0, 0.0, 0.0, None, 0.0)
    tool = [s.tool_recall_at_10 for s in scores if s.tool_recall_at_10 is not None]
    return MatchMetrics(
        n,
        sum(s.recall[0] for s in scores) / n,
        sum(s.recall[1] for s in scores) / n,
        sum(s.recall[2] for s in scores) / n,
        sum(s.all_gold_at_5 for s in scores) / n,
        sum(tool) / len(tool) if tool else None,
        1000.0 * sum(s.seconds for s in scores) / n,
    )


def recall_at_1_ceiling(tasks: Sequence[Task]) -> float:
    """The best recall@1 any ranking can reach on ``tasks``: one server at rank 1 meets at most
    the needs it is named in, so a task of two needs served by different servers scores 0.5."""
    if not tasks:
        return 0.0
    best = (
        max(sum(1 for need in task.needs if server in need) for need in task.needs for server in need)
        / len(task.needs)
        for task in tasks
    )
    return sum(best) / len(tasks)


def evaluate(ranker: Ranker, tasks: Sequence[Task]) -> MatchMetrics:
    """Run every task through ``ranker`` and compute the metrics."""
    return summarise(score_tasks(ranker, tasks))


def objective(scores: Sequence[TaskScore]) -> float:
    """What cross-validation maximises (`OBJECTIVE`): the metrics the matcher is judged on, equally
    weighted; tool recall counts only when the tasks name gold tools."""
    metrics = summarise(scores)
    values = [metrics.recall_at_1, metrics.recall_at_5, metrics.all_gold_at_5]
    if metrics.tool_recall_at_10 is not None:
        values.append(metrics.tool_recall_at_10)
    return sum(values) / len(values)


def assign_folds(tasks: Sequence[Task], k: int, repeat: int = 0) -> list[int]:
    """Fold (0..k-1) of each task: sorted by SHA-256 of the id (of ``"<repeat>:<id>"`` for a
    repeat after the first), dealt in turn.

    Raises:
        ValueError: fewer than 2 folds, more folds than tasks, or a repeated task id.
    """
    if k < 2 or k > len(tasks):
        raise ValueError(f"{k} folds need at least 2 folds and {k} tasks ({len(tasks)} given)")
    ids = [t.id for t in tasks]
    if len(set(ids)) != len(ids):
        raise ValueError("task ids must be unique to be dealt into folds")
    keys = ids if repeat == 0 else [f"{repeat}:{task_id}" for task_id in ids]
    order = sorted(range(len(tasks)), key=lambda i: hashlib.sha256(keys[i].encode()).hexdigest())
    folds = [0] * len(tasks)
    for position, index in enumerate(order):
        folds[index] = position % k
    return folds


@dataclass(frozen=True, slots=True)
class Candidate:
    """One parameter setting and its score on every task (aligned with the tasks)."""

    params: Mapping[str, float]
    scores: Sequence[TaskScore]


@dataclass(frozen=True, slots=True)
class FoldResult:
    repeat: int
    fold: int
    tasks: int
    chosen: Mapping[str, float]
    matcher: MatchMetrics
    baseline: MatchMetrics


def choose(candidates: Sequence[Candidate], train: Sequence[int]) -> int:
    """Index of the candidate with the best objective on the ``train`` task indices.

    Candidate 0 is the default: it wins ties, then the earlier candidate does.
    """
    best, best_value = 0, objective([candidates[0].scores[i] for i in train])
    for index, candidate in enumerate(candidates[1:], start=1):
        value = objective([candidate.scores[i] for i in train])
        if value > best_value:
            best, best_value = index, value
    return best


def cross_validate(
    candidates: Sequence[Candidate], floor: Sequence[TaskScore], folds: Sequence[int], repeat: int = 0
) -> list[FoldResult]:
    """For each fold: choose on the other folds, score the choice and the floor on this one."""
    out: list[FoldResult] = []
    for fold in sorted(set(folds)):
        train = [i for i, f in enumerate(folds) if f != fold]
        test = [i for i, f in enumerate(folds) if f == fold]
        chosen = candidates[choose(candidates, train)]
        out.append(
            FoldResult(
                repeat,
                fold,
                len(test),
                dict(chosen.params),
                summarise([chosen.scores[i] for i in test]),
                summarise([floor[i] for i in test]),
            )
        )
    return out


def spread(values: Sequence[float | None]) -> dict[str, float] | None:
    """Mean, sample standard deviation, min and max of per-fold values (folds without one skipped)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {
        "mean": statistics.fmean(present),
        "std": statistics.stdev(present) if len(present) > 1 else 0.0,
        "min": min(present),
        "max": max(present),
    }


def grid_configs(
    base: MatcherConfig, grid: Mapping[str, tuple[float, ...]] = CV_GRID
) -> tuple[dict[str, tuple[float, ...]], list[tuple[dict[str, float], MatcherConfig]]]:
    """The grid restricted to ``MatcherConfig``'s fields, and its configurations, ``base`` first."""
    known = {f.name for f in fields(MatcherConfig)}
    usable = {key: values for key, values in grid.items() if key in known}
    default = {key: float(getattr(base, key)) for key in usable}
    configs = [(default, base)]
    for values in itertools.product(*usable.values()):
        params = dict(zip(usable, values, strict=True))
        if params != default:
            configs.append((params, replace(base, **params)))
    return usable, configs


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


def _cross_validated(
    matcher: Matcher,
    tasks: Sequence[Task],
    grid: Mapping[str, tuple[float, ...]],
    floor: Sequence[TaskScore],
    *,
    k: int,
    repeats: int,
    default_scores: Sequence[TaskScore] | None = None,
) -> tuple[dict[str, tuple[float, ...]], list[Candidate], list[FoldResult]]:
    """Every configuration of ``grid`` around ``matcher``'s, scored once on every task (one index
    serves them all: the grid varies query-time weights only), and the R x K folds' choices."""
    usable, configs = grid_configs(matcher.config, grid)
    first = default_scores if default_scores is not None else score_tasks(matcher, tasks)
    candidates = [Candidate(configs[0][0], first)]
    candidates += [
        Candidate(params, score_tasks(matcher.reconfigured(cfg), tasks)) for params, cfg in configs[1:]
    ]
    results = [
        result
        for repeat in range(repeats)
        for result in cross_validate(candidates, floor, assign_folds(tasks, k, repeat), repeat)
    ]
    return usable, candidates, results


def _cv_report(
    matcher: Matcher,
    tasks: Sequence[Task],
    *,
    k: int,
    repeats: int,
    default_scores: Sequence[TaskScore],
    floor: Sequence[TaskScore],
) -> dict[str, Any]:
    """Cross-validation of ``matcher`` (whose own scores are ``default_scores``) on ``tasks``."""
    grid, candidates, results = _cross_validated(
        matcher, tasks, CV_GRID, floor, k=k, repeats=repeats, default_scores=default_scores
    )
    # the same procedure without the embedding model (its grid without semantic_weight): what
    # the model adds, measured on the same folds rather than estimated
    words_only = Matcher(matcher.catalog, replace(matcher.config, semantic_weight=0.0), embedder=None)
    lexical_grid = {key: values for key, values in CV_GRID.items() if key != "semantic_weight"}
    _, _, without_model = _cross_validated(words_only, tasks, lexical_grid, floor, k=k, repeats=repeats)
    return {
        "folds": k,
        "repeats": repeats,
        "tasks": len(tasks),
        "objective": OBJECTIVE,
        "grid": {key: list(values) for key, values in grid.items()},
        "default": dict(candidates[0].params),
        # the same choice made on every task: what the shipped defaults should be (its own score
        # on these tasks is in-sample, so it is not reported)
        "chosen_on_all_tasks": dict(candidates[choose(candidates, range(len(tasks)))].params),
        "matcher": {m: spread([getattr(r.matcher, m) for r in results]) for m in METRICS},
        "without_embedding_model": {
            m: spread([getattr(r.matcher, m) for r in without_model]) for m in METRICS
        },
        "baseline_bm25": {m: spread([getattr(r.baseline, m) for r in results]) for m in METRICS},
        "per_fold": [
            {
                "repeat": r.repeat,
                "fold": r.fold,
                "tasks": r.tasks,
                "chosen": dict(r.chosen),
                "matcher": asdict(r.matcher),
                "baseline_bm25": asdict(r.baseline),
            }
            for r in results
        ],
    }


def _first_need_misses(scores: Sequence[TaskScore]) -> list[dict[str, Any]]:
    return [
        {
            "id": s.task.id,
            "query": s.task.query,
            "first_need": sorted(s.task.needs[0]),
            "top": list(s.servers[:3]),
        }
        for s in scores
        if not s.task.needs[0] & set(s.servers[:1])
    ]


def catalog_queries_report(
    config: MatcherConfig, embedder: Embedder | None, queries_path: Path | None = None
) -> dict[str, Any]:
    """The labelled query set on the shipped catalog: default configuration beside the floor."""
    path = queries_path or catalog_queries_path()
    catalog = load_catalog(shipped_catalog_path())
    tasks = load_tasks(path)
    scores = score_tasks(Matcher(catalog, config, embedder=embedder), tasks)
    return {
        "queries_file": str(path),
        "catalog": str(shipped_catalog_path()),
        "servers": len(catalog),
        "matcher": asdict(summarise(scores)),
        "baseline_bm25": asdict(evaluate(PlainBm25(catalog), tasks)),
        "misses": _first_need_misses(scores),
    }


def run_benchmark(
    catalog_path: Path | None,
    tasks_path: Path | None,
    config: MatcherConfig | None = None,
    *,
    folds: int = DEFAULT_FOLDS,
    repeats: int = DEFAULT_REPEATS,
    synthetic: bool = True,
    catalog_queries: bool = True,
    memory: bool = True,
) -> dict[str, Any]:
    """Every figure of `vsm-mcp bench match`, as a JSON-ready mapping (see the module docstring).

    ``folds`` < 2 skips cross-validation, which is repeated ``repeats`` (>= 1) times with
    different deals of the tasks into folds; without ``tasks_path`` only the
    catalog query set is scored (and timed on the shipped catalog).

    Raises:
        CatalogError: an unreadable catalog or tasks file.
        ValueError: more folds than tasks, or fewer than one repeat.
    """
    if repeats < 1:
        raise ValueError(f"cross-validation needs at least one repeat ({repeats} given)")
    config = config or MatcherConfig()
    embedder = load_embedder()  # once: every configuration shares the model
    report: dict[str, Any] = {}
    speed_catalog: Catalog | None = None
    speed_queries: list[str] = []
    if tasks_path is not None:
        catalog = (
            load_catalog(catalog_path) if catalog_path is not None else load_catalog(shipped_catalog_path())
        )
        tasks = load_tasks(tasks_path)
        report["catalog"] = str(catalog_path or shipped_catalog_path())
        report["tasks_file"] = str(tasks_path)
        started = time.perf_counter()
        matcher = Matcher(catalog, config, embedder=embedder)
        build_s = time.perf_counter() - started
        default_scores = score_tasks(matcher, tasks)
        floor = score_tasks(PlainBm25(catalog), tasks)
        if folds >= 2:
            report["cross_validation"] = _cv_report(
                matcher,
                tasks,
                k=folds,
                repeats=repeats,
                default_scores=default_scores,
                floor=floor,
            )
        report["in_sample"] = {
            "matcher": asdict(summarise(default_scores)),
            "baseline_bm25": asdict(summarise(floor)),
        }
        report["recall_at_1_ceiling"] = recall_at_1_ceiling(tasks)
        default = summarise(default_scores)
        report["speed"] = {
            "catalog": asdict(SpeedReading(len(catalog), catalog.tool_count, build_s, default.ms_per_query))
        }
        speed_catalog, speed_queries = catalog, [t.query for t in tasks]
    if catalog_queries:
        report["catalog_queries"] = catalog_queries_report(config, embedder)
        if speed_catalog is None:
            speed_catalog = load_catalog(shipped_catalog_path())
            speed_queries = [t.query for t in load_tasks(catalog_queries_path())]
            reading = measure_speed(
                lambda c: Matcher(c, config, embedder=embedder), speed_catalog, speed_queries
            )
            report["speed"] = {"catalog": asdict(reading)}
    if synthetic and speed_catalog is not None:
        big = synthetic_catalog(speed_catalog)
        queries = speed_queries * (SPEED_QUERIES // max(1, len(speed_queries)) + 1)
        reading = measure_speed(lambda c: Matcher(c, config, embedder=embedder), big, queries[:SPEED_QUERIES])
        report["speed"]["synthetic"] = asdict(reading)
    if memory:
        report["memory"] = measure_matcher_memory(shipped_catalog_path())
    return report
