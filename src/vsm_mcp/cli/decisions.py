"""`vsm-mcp decisions ...`: what the systems decided, by number, with rule, rationale and inputs.

``list`` shows the stored decisions newest first (``--system`` keeps one
system's: s3, s4, s5, gateway); ``show ID`` one decision whole, its inputs and
alternatives included, and for an acquisition what followed it (its calls
since against the success it predicted, the category's unanswered share
before and after: `bridge.reflection.observed`). The same records are the MCP resources
``vsm://decisions`` and ``vsm://decisions/{id}``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vsm_mcp.cli.context import with_store

if TYPE_CHECKING:
    from vsm_mcp.core.ports import Store

app = typer.Typer(
    help="What the systems decided: list the stored decisions, show one whole.", no_args_is_help=True
)
_out = Console()


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


@app.command("list")
def list_(
    ctx: typer.Context,
    system: Annotated[
        str | None, typer.Option("--system", help="Only this system's (s3, s4, s5, gateway).")
    ] = None,
    limit: Annotated[int, typer.Option("-n", "--limit", min=1, help="How many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The stored decisions, newest first: number, time, system, subject, choice, rule."""
    from vsm_mcp.fleet.logfile import printable

    async def read(store: Store) -> list[dict[str, Any]]:
        found = await store.decisions(limit if system is None else 1000)
        kept = [d for d in found if system is None or d.system == system][:limit]
        return [dataclasses.asdict(d) for d in kept]

    rows = with_store(ctx, read)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        _out.print("no decisions stored" + (f" by {system}" if system else ""), highlight=False)
        return
    table = Table("#", "when", "system", "subject", "choice", "rule", "rationale")
    for d in rows:
        table.add_row(
            str(d["id"]),
            _when(d["at"]),
            d["system"],
            Text(printable(d["subject"])),
            d["choice"],
            Text(printable(d["rule"])),
            Text(printable(d["rationale"])[:160]),
        )
    _out.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    decision_id: Annotated[int, typer.Argument(metavar="ID", help="The decision's number (from `list`).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One decision whole: its rule, rationale, inputs and alternatives."""
    from vsm_mcp.errors import ConfigError
    from vsm_mcp.fleet.logfile import printable

    async def read(store: Store) -> dict[str, Any] | None:
        from vsm_mcp.bridge.reflection import DecisionRecords
        from vsm_mcp.discovery.outcomes import OutcomeLedger

        ledger = await OutcomeLedger.load(store)  # as the gateway last saved it
        return await DecisionRecords(store, lambda: ledger).decision(decision_id)

    record = with_store(ctx, read)
    if record is None:
        raise ConfigError(f"no decision {decision_id} (see `vsm-mcp decisions list`)")
    if as_json:
        print(json.dumps(record, indent=2))
        return
    for key in ("id", "at", "system", "subject", "choice", "rule", "rationale"):
        value = _when(record[key]) if key == "at" else record[key]
        _out.print(Text(f"{key}: {printable(str(value))}"))
    for key in ("inputs", "alternatives", "observed"):
        if key in record:
            _out.print(Text(f"{key}: {printable(json.dumps(record[key], indent=2, default=str))}"))
