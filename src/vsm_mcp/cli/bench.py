"""`vsm-mcp bench …`: measurements, printed side by side in one run."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vsm_mcp.bench import variety as variety_bench
from vsm_mcp.cli import acquire as acquire_cli
from vsm_mcp.cli import match as match_cli
from vsm_mcp.cli import serve as serve_cli

app = typer.Typer(help="Benchmarks that print measured ratios (compare, don't quote absolute times).")
match_cli.register_bench(app)
acquire_cli.register_bench(app)
serve_cli.register_bench(app)


@app.command("variety")
def variety(
    events: Annotated[int, typer.Option(min=10_000, help="Events per measured pass.")] = 1_000_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Throughput (single and batch) and memory of the variety engine."""
    console = Console()
    if as_json:
        result = variety_bench.run(events)
    else:
        with console.status(f"measuring {events:,} events x 3 passes ..."):
            result = variety_bench.run(events)
    data = result.to_dict()
    if as_json:
        typer.echo(json.dumps(data))
        return
    table = Table(title="variety engine (one thread)", show_header=True)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in data.items():
        table.add_row(
            key, f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
        )
    console.print(table)


@app.command("cli")
def cli_start(
    runs: Annotated[int, typer.Option(min=1, help="Fresh processes per target.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """How fast commands start (--help, status), beside Python doing nothing and importing typer."""
    from vsm_mcp.bench import cli_start

    result = cli_start.run(runs)
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table(title=f"command start-up, {runs} fresh processes each (target {result['target_s']} s)")
    for column in ("target", "median s", "p90 s", "median / target"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for row in result["rows"]:
        table.add_row(
            row["target"], f"{row['median_s']:.3f}", f"{row['p90_s']:.3f}", f"{row['vs_target']:.2f}"
        )
    Console().print(table)


@app.command("sandbox")
def sandbox(
    rounds: Annotated[int, typer.Option(min=1, help="Rounds (one pass per target each).")] = 7,
    calls: Annotated[int, typer.Option(min=10, help="Sequential calls per pass.")] = 1000,
    starts: Annotated[int, typer.Option(min=1, help="Fresh starts per target.")] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The echo server plain vs sandboxed (bwrap, no network) vs sandboxed with egress: calls/s, start-up."""
    import anyio

    from vsm_mcp.bench import sandbox as sandbox_bench

    if as_json:
        result = anyio.run(sandbox_bench.run, rounds, calls, starts)
        typer.echo(json.dumps(result))
        return
    console = Console()
    with console.status(f"measuring {rounds} rounds x {calls:,} calls and {starts} starts per target ..."):
        result = anyio.run(sandbox_bench.run, rounds, calls, starts)
    for table in sandbox_bench.render(result):
        console.print(table)
