"""`vsm-mcp catalog search|show|refresh`: the offline server catalog.

Wire into the root app with ``app.add_typer(catalog.app, name="catalog")``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import anyio
import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vsm_mcp.discovery.catalog import (
    Catalog,
    dump_catalog,
    entry_to_json,
    load_catalog,
    load_shipped_catalog,
    shipped_catalog_path,
)
from vsm_mcp.discovery.matcher import Matcher
from vsm_mcp.discovery.refresh import RefreshReport, load_seeds, refresh_catalog, tools_by_package
from vsm_mcp.errors import CatalogError

app = typer.Typer(
    help="Search, show and regenerate the offline catalog of MCP servers.", no_args_is_help=True
)

CatalogOption = Annotated[
    Path | None, typer.Option("--catalog", help="Catalog JSON file (default: the shipped offline catalog).")
]


def open_catalog(path: Path | None) -> Catalog:
    """``path`` or the shipped catalog."""
    return load_catalog(path) if path is not None else load_shipped_catalog()


@app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="What the server should do.")],
    catalog: CatalogOption = None,
    top: Annotated[int, typer.Option("--top", min=1, help="How many servers.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array.")] = False,
) -> None:
    """Servers of the catalog that best match QUERY (offline)."""
    servers = open_catalog(catalog)
    result = Matcher(servers).match(query, top_k=top)
    if as_json:
        rows = []
        for rank, match in enumerate(result.servers, 1):
            entry = servers.get(match.name)
            assert entry is not None  # the matcher only returns names of this catalog
            version = entry.packages[0].version if entry.packages and entry.packages[0].version else None
            rows.append(
                {
                    "rank": rank,
                    "server": match.name,
                    "score": round(match.score, 6),
                    "version": version,
                    "description": entry.description,
                }
            )
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"{len(result.servers)} of {len(servers)} servers for {query!r}")
    for column in ("#", "server", "version", "description"):
        table.add_column(column)
    for rank, match in enumerate(result.servers, 1):
        entry = servers.get(match.name)
        assert entry is not None  # the matcher only returns names of this catalog
        version = entry.packages[0].version if entry.packages and entry.packages[0].version else ""
        table.add_row(str(rank), match.name, version, entry.description[:90])
    Console().print(table)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Server name as listed by `catalog search`.")],
    catalog: CatalogOption = None,
) -> None:
    """Everything the catalog knows about one server, as JSON."""
    servers = open_catalog(catalog)
    entry = servers.get(name)
    if entry is None:
        raise CatalogError(f"catalog {servers.source}: no server named {name!r}")
    typer.echo(json.dumps(entry_to_json(entry), ensure_ascii=False, indent=2))


@app.command("refresh")
def refresh(
    output: Annotated[
        Path | None, typer.Option("--output", help="Where to write (default: the shipped catalog).")
    ] = None,
    seeds: Annotated[
        Path | None, typer.Option("--seeds", help="Seed list (default: the shipped one).")
    ] = None,
    tools_from: Annotated[
        list[Path] | None,
        typer.Option("--tools-from", help="Catalog(s) to take known tool lists from, by package."),
    ] = None,
) -> None:
    """Regenerate the catalog from live npm and PyPI metadata (exact versions, licences)."""
    target = output or shipped_catalog_path()
    sources: list[Catalog] = [load_catalog(p) for p in tools_from or []]
    if target.exists():
        sources.insert(0, load_catalog(target))
    seed_list = load_seeds(seeds)
    known = tools_by_package(sources)
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("fetching npm/PyPI metadata", total=len(seed_list))

        async def run() -> RefreshReport:
            async with httpx.AsyncClient(headers={"User-Agent": "vsm-mcp catalog refresh"}) as client:
                return await refresh_catalog(seed_list, known, client, lambda _name: progress.advance(task))

        report = anyio.run(run)
    target.write_text(dump_catalog(report.entries), encoding="utf-8")
    with_tools = sum(1 for e in report.entries if e.tools)
    console.print(
        f"wrote {len(report.entries)} servers ({with_tools} with known tools) to {target}; "
        f"{len(report.missing)} seeds not found, {len(report.failed)} failed"
    )
    for label, reason in sorted(report.failed.items()):
        console.print(f"  failed {label}: {reason}", highlight=False)
