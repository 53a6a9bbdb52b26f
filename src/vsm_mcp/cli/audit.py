"""`vsm-mcp audit`: the audit log, who did what to what and through which face.

Every change an operator makes is in it: through the command line (servers,
tokens, secrets, approvals, alert acknowledgements, as the local user),
through the operator page or API (by token), and every MCP request that a
``manage`` or ``approve`` scope let through (by token). Newest first.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Annotated

import anyio
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vsm_mcp.cli.context import state_of

_out = Console()


def audit(
    ctx: typer.Context,
    actor: Annotated[
        str | None,
        typer.Option("--actor", help="Only this actor's (as shown: token 'ops', local user NAME)."),
    ] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="Only actions starting with this (servers., approval.).")
    ] = None,
    limit: Annotated[int, typer.Option("-n", "--limit", min=1, help="How many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The audit log: who (token or local user) did what, through which face; newest first."""
    from vsm_mcp.fleet.logfile import printable
    from vsm_mcp.store import SqliteStore

    settings = state_of(ctx).settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)

    async def read() -> list[dict[str, object]]:
        async with SqliteStore.open(settings.database_path) as store:
            return [asdict(a) for a in await store.actions(limit, actor=actor, action=action)]

    rows = anyio.run(read)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        _out.print(
            "the audit log is empty" + (" for that filter" if actor or action else ""), highlight=False
        )
        return
    table = Table("#", "when", "who", "via", "action", "target", "ok", "detail")
    for row in rows:
        table.add_row(
            str(row["id"]),
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(row["at"]))),  # type: ignore[arg-type]
            Text(printable(str(row["actor"]))),
            str(row["via"]),
            Text(printable(str(row["action"]))),
            Text(printable(str(row["target"]))),
            "yes" if row["ok"] else "NO",
            Text(printable(str(row["detail"]))[:200]),
        )
    _out.print(table)


def register(root: typer.Typer) -> None:
    """Add ``audit`` to the root app."""
    root.command("audit")(audit)
