"""`vsm-mcp match QUERY` and `vsm-mcp bench match`: rank servers for a task, offline.

Wire into the root app with ``match.register(app)`` and into the bench group
with ``match.register_bench(bench.app)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from rich.console import Console
from rich.table import Table

from vsm_mcp.bench.match import run_benchmark
from vsm_mcp.cli.catalog import open_catalog
from vsm_mcp.cli.context import state_of
from vsm_mcp.discovery.matcher import Matcher, MatchResult
from vsm_mcp.discovery.outcomes import OutcomeLedger
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
    catalog: Annotated[Path, typer.Option("--catalog", help="Catalog JSON file.")],
    tasks: Annotated[Path, typer.Option("--tasks", help="Tasks JSON file.")],
    synthetic: Annotated[
        bool, typer.Option(help="Also time the matcher on a synthetic 10,000-server catalog.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Server recall@1/3/5, all-gold@5, tool recall@10 and ms/query, beside the plain-BM25 floor."""
    console = Console(stderr=True)
    with console.status("matching every task (and building the synthetic catalog) ..."):
        report = run_benchmark(catalog, tasks, synthetic=synthetic)
    if as_json:
        typer.echo(json.dumps(report))
        return
    table = Table(title=f"bench match: {report['tasks']} tasks")
    for column in ("metric", "matcher", "plain BM25", "half A", "half B"):
        table.add_column(column, justify="right")
    halves: Any = report["halves"]
    for key in (
        "recall_at_1",
        "recall_at_3",
        "recall_at_5",
        "all_gold_at_5",
        "tool_recall_at_10",
        "ms_per_query",
    ):
        table.add_row(
            key,
            f"{report[key]:.3f}",
            f"{report['baseline_bm25_' + key]:.3f}",
            f"{halves['a']['matcher'][key]:.3f}",
            f"{halves['b']['matcher'][key]:.3f}",
        )
    Console().print(table)
    cross: Any = report.get("cross_validation")
    if cross:
        for name, fold in cross.items():
            Console().print(
                f"cross-validation {name}: tuned on {fold['tuned_on']} -> held-out recall@5 "
                f"{fold['held_out']['recall_at_5']:.3f}, all_gold@5 {fold['held_out']['all_gold_at_5']:.3f}"
            )
    synth: Any = report.get("synthetic")
    if synth:
        Console().print(
            f"synthetic catalog: {synth['servers']:,} servers, {synth['tools']:,} tools, "
            f"build {synth['build_s']:.1f} s, {synth['ms_per_query']:.2f} ms/query"
        )


def register(root: typer.Typer) -> None:
    """Add `match` to the root command."""
    root.command("match")(match)


def register_bench(bench: typer.Typer) -> None:
    """Add `match` to the `bench` group."""
    bench.command("match")(bench_match)
