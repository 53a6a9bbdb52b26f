"""`vsm-mcp match QUERY` and `vsm-mcp bench match`: rank servers for a task, offline.

Wire into the root app with ``match.register(app)`` and into the bench group
with ``match.register_bench(bench.app)``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from rich.console import Console
from rich.table import Table

from vsm_mcp.bench.match import DEFAULT_FOLDS, DEFAULT_REPEATS, METRICS, run_benchmark
from vsm_mcp.cli.catalog import open_catalog
from vsm_mcp.cli.context import state_of
from vsm_mcp.discovery.matcher import Matcher, MatchResult
from vsm_mcp.discovery.outcomes import OutcomeLedger
from vsm_mcp.errors import CatalogError
from vsm_mcp.store.sqlite import SqliteStore


async def _load_ledger(database: Path) -> OutcomeLedger:
    async with SqliteStore.open(database) as store:
        return await OutcomeLedger.load(store)


def _result_json(result: MatchResult) -> dict[str, Any]:
    return {
        "query": result.query,
        "servers": [
            {
                "name": s.name,
                "score": round(s.score, 4),
                "tools": [t.tool for t in s.tools],
                "matched_terms": list(s.matched_terms),
            }
            for s in result.servers
        ],
        "tools": [{"server": t.server, "tool": t.tool, "score": round(t.score, 4)} for t in result.tools],
    }


def match(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="The task, in plain words.")],
    *,
    catalog: Annotated[
        Path | None, typer.Option("--catalog", help="Catalog JSON file (default: the shipped catalog).")
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="How many servers.")] = 5,
    category: Annotated[
        str | None,
        typer.Option("--category", help="Demand category: apply outcomes learned for it (state database)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Rank the servers and tools of a catalog for QUERY (no LLM, no network)."""
    servers = open_catalog(catalog)
    ledger = None
    if category is not None:
        database = state_of(ctx).settings().database_path
        ledger = anyio.run(_load_ledger, database) if database.exists() else OutcomeLedger()
    result = Matcher(servers, outcomes=ledger).match(query, top_k=top, category=category)
    if as_json:
        typer.echo(json.dumps(_result_json(result), ensure_ascii=False))
        return
    table = Table(title=f"best {len(result.servers)} of {len(servers)} servers")
    for column in ("#", "server", "score", "best tools", "matched"):
        table.add_column(column)
    for rank, server in enumerate(result.servers, 1):
        table.add_row(
            str(rank),
            server.name,
            f"{server.score:.3f}",
            ", ".join(t.tool for t in server.tools),
            " ".join(server.matched_terms[:8]),
        )
    Console().print(table)


def bench_match(
    *,
    catalog: Annotated[
        Path | None,
        typer.Option(
            "--catalog", help="Catalog JSON file the tasks are labelled on (default: the shipped one)."
        ),
    ] = None,
    tasks: Annotated[
        Path | None,
        typer.Option("--tasks", help="Tasks JSON file, scored by K-fold cross-validation on --catalog."),
    ] = None,
    cv: Annotated[
        int,
        typer.Option(
            "--cv",
            min=0,
            help="Folds K of the cross-validation over --tasks (0: skip it, in-sample figures only, faster).",
        ),
    ] = DEFAULT_FOLDS,
    repeats: Annotated[
        int,
        typer.Option(
            "--repeats",
            min=1,
            help="Times the K-fold cross-validation is repeated with other deals of the tasks into folds.",
        ),
    ] = DEFAULT_REPEATS,
    catalog_queries: Annotated[
        bool,
        typer.Option(help="Also score the shipped labelled query set on the shipped catalog."),
    ] = True,
    show_misses: Annotated[
        bool,
        typer.Option("--show-misses", help="List the catalog queries whose first need is not met at 1."),
    ] = False,
    synthetic: Annotated[
        bool, typer.Option(help="Also time the matcher on a synthetic 10,000-server catalog.")
    ] = True,
    memory: Annotated[
        bool,
        typer.Option(help="Also measure the memory a matcher over the shipped catalog adds to a process."),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Server recall@1/3/5, all-gold@5, tool recall@10 and ms/query, beside the plain-BM25 floor.

    With --tasks: K-fold cross-validated figures (parameters chosen on K-1 folds, scored on the
    held-out one). Always (unless --no-catalog-queries): the shipped query set on the shipped catalog.
    """
    if cv == 1:
        raise typer.BadParameter(
            "cross-validation needs at least 2 folds (or 0 to skip it)", param_hint="--cv"
        )
    console = Console(stderr=True)
    with console.status("matching every task under every configuration of the grid ..."):
        try:
            report = run_benchmark(
                catalog,
                tasks,
                folds=cv,
                repeats=repeats,
                synthetic=synthetic,
                catalog_queries=catalog_queries,
                memory=memory,
            )
        except (CatalogError, ValueError) as exc:
            console.print(f"[red]bench match: {exc}[/red]")
            raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(report))
        return
    out = Console()
    cross: Any = report.get("cross_validation")
    if cross:
        _print_cross_validation(out, report, cross)
    elif "in_sample" in report:
        _print_in_sample(out, report)
    queries: Any = report.get("catalog_queries")
    if queries:
        _print_catalog_queries(out, queries, show_misses)
    speed: Any = report.get("speed", {})
    if "catalog" in speed:
        real = speed["catalog"]
        out.print(
            f"speed: {real['servers']:,} servers ({real['tools']:,} tools): {real['ms_per_query']:.2f} ms/query, "
            f"build {real['build_s']:.2f} s"
        )
    if "synthetic" in speed:
        synth = speed["synthetic"]
        out.print(
            f"speed: synthetic catalog of {synth['servers']:,} servers ({synth['tools']:,} tools): "
            f"{synth['ms_per_query']:.2f} ms/query, build {synth['build_s']:.1f} s"
        )
    held: Any = report.get("memory")
    if held:
        out.print(
            f"memory: a matcher over the shipped catalog ({held['servers']} servers, {held['tools']:,} tools) "
            f"adds {held['matcher_mib']:.1f} MiB to a process ({held['model_share_mib']:.1f} of them the "
            f"embedding model; {held['matcher_without_model_mib']:.1f} without it); the process held "
            f"{held['base_mib']:.1f} MiB with the catalog loaded and peaked at {held['peak_mib']:.1f} MiB",
            highlight=False,
        )


_LABELS = {
    "recall_at_1": "recall@1",
    "recall_at_3": "recall@3",
    "recall_at_5": "recall@5",
    "all_gold_at_5": "all-gold@5",
    "tool_recall_at_10": "tool recall@10",
}


def _heading(out: Console, text: str) -> None:
    out.print(text, style="bold", soft_wrap=True, highlight=False, markup=False)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _spread_cells(cell: dict[str, float] | None) -> tuple[str, str, str]:
    if cell is None:
        return "-", "-", "-"
    return f"{cell['mean']:.3f}", f"{cell['std']:.3f}", f"{cell['min']:.2f}-{cell['max']:.2f}"


def _print_cross_validation(out: Console, report: dict[str, Any], cross: dict[str, Any]) -> None:
    repeated = f" ({cross['repeats']} deals into folds)" if cross["repeats"] > 1 else ""
    _heading(
        out,
        f"{cross['folds']}-fold cross-validated{repeated} on {cross['tasks']} tasks of "
        f"{report['tasks_file']} (catalog {report['catalog']})",
    )
    table = Table(
        caption=f"mean over the {len(cross['per_fold'])} held-out folds, sample std across them, "
        "min-max; no model: the same cross-validation without the embedding model; BM25: the plain "
        "floor on the same folds (its spread is in --json)"
    )
    for column in ("metric", "matcher", "std", "min-max", "no model", "BM25"):
        table.add_column(column, justify="right", no_wrap=True)
    for key in METRICS:
        words_only, floor = cross["without_embedding_model"][key], cross["baseline_bm25"][key]
        table.add_row(
            _LABELS[key],
            *_spread_cells(cross["matcher"][key]),
            _fmt(None if words_only is None else words_only["mean"]),
            _fmt(None if floor is None else floor["mean"]),
        )
    out.print(table)
    out.print(
        f"recall@1 can reach at most {report['recall_at_1_ceiling']:.3f} on these tasks "
        "(one server at rank 1 meets only the needs it is named in)",
        highlight=False,
    )
    out.print(f"parameters chosen on the other folds by: {cross['objective']}")
    out.print(f"grid: {cross['grid']} (default {cross['default']})")
    choices = Counter(
        " ".join(f"{k}={v:g}" for k, v in fold["chosen"].items()) or "(no grid)" for fold in cross["per_fold"]
    )
    for chosen, times in choices.most_common():
        out.print(f"  {times} of {len(cross['per_fold'])} folds chose {chosen}", highlight=False)
    out.print(
        "  chosen on all tasks (the shipped defaults): "
        + " ".join(f"{k}={v:g}" for k, v in cross["chosen_on_all_tasks"].items()),
        highlight=False,
    )


def _metrics_table(figures: dict[str, Any]) -> Table:
    """The matcher's figures beside plain BM25's, one row per metric."""
    table = Table()
    for column in ("metric", "matcher", "plain BM25"):
        table.add_column(column, justify="right")
    for key in METRICS:
        table.add_row(_LABELS[key], _fmt(figures["matcher"][key]), _fmt(figures["baseline_bm25"][key]))
    return table


def _print_in_sample(out: Console, report: dict[str, Any]) -> None:
    sample = report["in_sample"]
    _heading(
        out,
        f"NOT cross-validated: default configuration on all {sample['matcher']['tasks']} tasks of "
        f"{report['tasks_file']} (catalog {report['catalog']})",
    )
    out.print(_metrics_table(sample))


def _print_catalog_queries(out: Console, queries: dict[str, Any], show_misses: bool) -> None:
    _heading(
        out,
        f"shipped query set: {queries['matcher']['tasks']} labelled needs on the shipped catalog "
        f"({queries['servers']} servers), default configuration, never tuned on",
    )
    out.print(_metrics_table(queries))
    out.print(f"queries: {queries['queries_file']}\ncatalog: {queries['catalog']}", highlight=False)
    misses = queries["misses"]
    out.print(f"first need not met at 1: {len(misses)} of {queries['matcher']['tasks']} queries")
    if show_misses:
        for miss in misses:
            out.print(
                f"  {miss['id']}: {miss['query']!r}: wanted {' | '.join(miss['first_need'])}; "
                f"got {', '.join(miss['top'])}",
                markup=False,
                highlight=False,
            )


def register(root: typer.Typer) -> None:
    """Add `match` to the root command."""
    root.command("match")(match)


def register_bench(bench: typer.Typer) -> None:
    """Add `match` to the `bench` group."""
    bench.command("match")(bench_match)
