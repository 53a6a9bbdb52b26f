"""`vsm-mcp secrets ...`: values the servers' specs refer to as ``${secret:NAME}``.

A server's ``env`` or ``headers`` value holds a reference (``--env
API_KEY='${secret:github}'``), never the value; the value lives in the state
database (readable by its owner only) and is filled in at each start of the
server (`vsm_mcp.fleet.secrets`). ``set`` reads the value from standard input
(a prompt that does not echo on a terminal) or from a named environment
variable, never from the command line, which every user of the machine can
read in the process list. Nothing here prints a value. A running gateway
uses a new value at the server's next start (``servers restart NAME``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import anyio
import typer
from rich.console import Console
from rich.table import Table

from vsm_mcp.cli.context import audited, state_of
from vsm_mcp.core.ports import Store
from vsm_mcp.core.secrets import check_secret_name
from vsm_mcp.errors import ConfigError
from vsm_mcp.fleet.registry import FleetRegistry
from vsm_mcp.fleet.secrets import secret_users
from vsm_mcp.store import SqliteStore

app = typer.Typer(
    help="Secrets of the servers, referred to as ${secret:NAME} in their env or headers.",
    no_args_is_help=True,
)
_out = Console()
_T = TypeVar("_T")


def _with_store(ctx: typer.Context, action: Callable[[Store, dict[str, list[str]]], Awaitable[_T]]) -> _T:
    """Run ``action`` with the store and, per secret name, the servers that refer to it."""
    settings = state_of(ctx).settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> _T:
        async with SqliteStore.open(settings.database_path) as store:
            desired = await FleetRegistry(store, settings.servers.values()).desired()
            return await action(store, secret_users(desired.values()))

    return anyio.run(run)


def _read_value(name: str, from_env: str | None) -> str:
    if from_env is not None:
        value = os.environ.get(from_env)
        if value is None:
            raise ConfigError(f"--from-env: the environment has no variable {from_env!r}")
        return value
    if sys.stdin.isatty():
        return str(typer.prompt(f"value of secret {name}", hide_input=True))
    text = sys.stdin.read()
    return text.removesuffix("\n").removesuffix("\r")  # `echo value |` adds one line end


@app.command("set")
def set_(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Its name, as in ${secret:NAME}.")],
    from_env: Annotated[
        str | None,
        typer.Option("--from-env", help="Take the value from this environment variable, not stdin."),
    ] = None,
) -> None:
    """Set (or replace) a secret; the value comes from stdin or --from-env, never from argv."""
    try:
        check_secret_name(name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    value = _read_value(name, from_env)
    if not value:
        raise ConfigError(f"secret {name!r}: the value is empty; nothing stored")

    async def put(store: Store, users: dict[str, list[str]]) -> list[str]:
        await store.put_secret(name, value, time.time())
        await audited(store, "secret.set", name)  # the name only, never the value
        return users.get(name, [])

    users = _with_store(ctx, put)
    restarts = "; ".join(f"vsm-mcp servers restart {user}" for user in users)
    used = (
        f"used by {', '.join(users)} from its next start (now: {restarts})"
        if users
        else "no server refers to it yet"
    )
    _out.print(f"secret {name} set ({len(value)} characters); {used}", highlight=False, soft_wrap=True)


@app.command("list")
def list_(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every secret set or referred to: when it was set and which servers use it (never values)."""

    async def rows(store: Store, users: dict[str, list[str]]) -> list[dict[str, Any]]:
        kept = dict(await store.secret_names())
        return [
            {"name": name, "set_at": kept.get(name), "used_by": users.get(name, [])}
            for name in sorted(kept.keys() | users.keys())
        ]

    found = _with_store(ctx, rows)
    if as_json:
        print(json.dumps(found, indent=2))
        return
    table = Table("name", "set", "used by")
    for row in found:
        when = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["set_at"]))
            if row["set_at"] is not None
            else "[bold red]NOT SET[/]"
        )
        table.add_row(row["name"], when, ", ".join(row["used_by"]) or "-")
    _out.print(table)


@app.command("remove")
def remove(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The secret to forget.")]) -> None:
    """Forget a secret; servers that refer to it will not start until it is set again."""

    async def delete(store: Store, users: dict[str, list[str]]) -> tuple[bool, list[str]]:
        removed = await store.delete_secret(name)
        if removed:
            await audited(store, "secret.remove", name)
        return removed, users.get(name, [])

    removed, users = _with_store(ctx, delete)
    if not removed:
        raise ConfigError(f"no secret named {name!r} is set")
    warning = f"; {', '.join(users)} will not start until it is set again" if users else ""
    _out.print(f"secret {name} removed{warning}", highlight=False, soft_wrap=True)
