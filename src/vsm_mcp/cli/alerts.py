"""`vsm-mcp alerts ...`: the algedonic alerts, and the operator's acknowledgement of escalated ones.

``list`` shows the stored alerts, most recent first, with whether each was
acknowledged and by whom; ``ack ID...`` acknowledges alerts: a running
gateway's S5 clears them from its attention within a couple of seconds
(`vsm_mcp.bridge.acknowledgements`).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vsm_mcp.cli.context import audited, with_store

if TYPE_CHECKING:
    from vsm_mcp.core.ports import Store

app = typer.Typer(help="Algedonic alerts: list them, acknowledge the escalated ones.", no_args_is_help=True)
_out = Console()


@app.command("list")
def list_(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("-n", "--limit", min=1, help="How many, most recent first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The stored alerts, most recent first, with their acknowledgement."""
    from vsm_mcp.bridge.acknowledgements import alert_rows
    from vsm_mcp.fleet.logfile import printable

    async def read(store: Store) -> list[dict[str, Any]]:
        return await alert_rows(store, limit)

    rows = with_store(ctx, read)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        _out.print("no alerts", highlight=False)
        return
    table = Table("id", "when", "source", "kind", "severity", "count", "acknowledged", "detail")
    for r in rows:
        ack = r["acknowledged"]
        table.add_row(
            str(r["id"]),
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["last_at"])),
            r["source"],
            r["kind"],
            r["severity"],
            str(r["count"]),
            ack["by"] if ack else "-",
            Text(printable(r["detail"])),
        )
    _out.print(table)


@app.command("ack")
def ack(
    ctx: typer.Context,
    ids: Annotated[list[int], typer.Argument(metavar="ID...", help="Alerts to acknowledge.")],
) -> None:
    """Acknowledge alerts: a running gateway's S5 stops holding them for attention."""
    from vsm_mcp.bridge.acknowledgements import acknowledge
    from vsm_mcp.errors import ConfigError
    from vsm_mcp.gateway.access import LOCAL_OPERATOR

    async def act(store: Store) -> list[int]:
        known = {a.id for a in await store.alerts(limit=100_000)}
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise ConfigError(f"no alert {unknown[0]} (see `vsm-mcp alerts list`)")
        new = await acknowledge(store, ids, by=f"local user {LOCAL_OPERATOR.name}", at=time.time())
        for alert_id in new:
            await audited(store, "alert.ack", str(alert_id))
        return new

    new = with_store(ctx, act)
    done = ", ".join(str(i) for i in new) or "none new"
    _out.print(f"acknowledged: {done}", highlight=False)
