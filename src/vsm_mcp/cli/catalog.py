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
from vsm_mcp.discovery.refresh import (
    RefreshReport,
    entries_by_package,
    load_seeds,
    refresh_catalog,
    tools_by_package,
)
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


def refresh_client() -> httpx.AsyncClient:
    """The HTTP client `catalog refresh` asks the registries with (replaced in tests)."""
    return httpx.AsyncClient(headers={"User-Agent": "vsm-mcp catalog refresh"})


def _lost(previous: Catalog | None, report: RefreshReport) -> dict[str, str]:
    """Entries of the previous catalog the refresh did not write, each with why."""
    if previous is None:
        return {}
    written = {entry.name for entry in report.entries}
    reasons = {label.split(":", 1)[1].lower(): "not on the registry" for label in report.missing}
    reasons.update({label.split(":", 1)[1].lower(): f"failed: {why}" for label, why in report.failed.items()})
    lost: dict[str, str] = {}
    for entry in previous:
        if entry.name not in written:
            package = entry.packages[0].identifier.lower() if entry.packages else entry.name.lower()
            lost[entry.name] = reasons.get(package, "no longer in the seed list")
    return lost


def _refresh_summary(target: Path, report: RefreshReport, lost: dict[str, str]) -> dict[str, object]:
    return {
        "path": str(target),
        "servers": len(report.entries),
        "with_tools": sum(1 for e in report.entries if e.tools),
        "tools_source": report.by_source(),
        "unfilled": report.unfilled,
        "dropped_tool_names": {name: list(names) for name, names in report.dropped.items()},
        "missing": report.missing,
        "failed": report.failed,
        "kept_previous": report.kept,
        "lost": lost,
    }


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
    as_json: Annotated[
        bool, typer.Option("--json", help="Print what was written and what could not be filled as JSON.")
    ] = False,
) -> None:
    """Regenerate the catalog from live npm and PyPI metadata and READMEs (versions, licences, tools).

    Each entry says where its tools came from (readme, catalog, none); entries
    left without tools are listed, as are known tool names dropped because
    they read as parameter names, and entries of the previous catalog not written.
    """
    target = output or shipped_catalog_path()
    sources: list[Catalog] = [load_catalog(p) for p in tools_from or []]
    previous = load_catalog(target) if target.exists() else None
    if previous is not None:
        sources.insert(0, previous)
    seed_list = load_seeds(seeds)
    known = tools_by_package(sources)
    kept = entries_by_package(previous) if previous is not None else {}
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=as_json) as progress:
        task = progress.add_task("fetching npm/PyPI metadata and READMEs", total=len(seed_list))

        async def run() -> RefreshReport:
            async with refresh_client() as client:
                return await refresh_catalog(
                    seed_list, known, client, lambda _name: progress.advance(task), previous=kept
                )

        report = anyio.run(run)
    target.write_text(dump_catalog(report.entries), encoding="utf-8")
    lost = _lost(previous, report)
    if as_json:
        typer.echo(json.dumps(_refresh_summary(target, report, lost), ensure_ascii=False, indent=2))
        return
    with_tools = sum(1 for e in report.entries if e.tools)
    sources_text = ", ".join(f"{source} {count}" for source, count in report.by_source().items())
    console.print(
        f"wrote {len(report.entries)} servers ({with_tools} with tools; by source: {sources_text}) to {target}; "
        f"{len(report.missing)} seeds not found, {len(report.failed)} failed",
        highlight=False,
    )
    for reason in sorted(set(report.unfilled.values())):
        unfilled = [name for name, why in report.unfilled.items() if why == reason]
        console.print(
            f"  {len(unfilled)} without tools ({reason}, none known): " + ", ".join(unfilled),
            highlight=False,
            markup=False,
        )
    for name, names in report.dropped.items():
        console.print(
            f"  dropped known tool names of {name} (too few read as operations): {', '.join(names)}",
            highlight=False,
            markup=False,
        )
    for label in report.missing:
        console.print(f"  not found {label}", highlight=False, markup=False)
    for label, reason in sorted(report.failed.items()):
        kept_note = " (previous entry kept)" if label in report.kept else ""
        console.print(f"  failed {label}: {reason}{kept_note}", highlight=False, markup=False)
    for name, reason in lost.items():
        console.print(f"  removed {name}: {reason}", highlight=False, markup=False)
