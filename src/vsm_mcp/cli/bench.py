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
