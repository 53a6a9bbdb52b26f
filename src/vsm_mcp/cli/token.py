"""`vsm-mcp token ...`: the bearer tokens of the HTTP face (`serve --http`, `up`).

The admin token (every scope) lives in ``<state>/admin.token`` (0600),
created on the first start of the HTTP face; ``show`` prints it. Named tokens
get the scopes they are created with (``call``, ``manage``, ``approve``);
``create`` and ``rotate`` print a value once and the store keeps only its
SHA-256, so a lost value is rotated, not recovered. ``list`` never shows a
value. A running gateway sees a revocation or rotation within a second.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import anyio
import typer
from rich.console import Console
from rich.table import Table

from vsm_mcp.cli.context import audited, state_of
from vsm_mcp.core.access import ADMIN, Scope, parse_scopes, scopes_text
from vsm_mcp.errors import ConfigError
from vsm_mcp.gateway.tokens import AdminTokenFile, TokenBook
from vsm_mcp.gateway.transport import PROFILE_PATH
from vsm_mcp.store import SqliteStore

app = typer.Typer(
    help="Bearer tokens of the HTTP face: every request needs `Authorization: Bearer <token>`.",
    no_args_is_help=True,
)
_out = Console()
_T = TypeVar("_T")


def _admin(ctx: typer.Context) -> AdminTokenFile:
    return AdminTokenFile.in_state(state_of(ctx).settings().state_dir)


def _with_book(
    ctx: typer.Context, action: Callable[[TokenBook], Awaitable[_T]], audit: tuple[str, str] | None = None
) -> _T:
    """Run ``action`` on the state dir's tokens; once it has worked, ``audit`` (an action and its
    target) goes to the audit log."""
    settings = state_of(ctx).settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> _T:
        async with SqliteStore.open(settings.database_path) as store:
            done = await action(TokenBook(store, AdminTokenFile.in_state(settings.state_dir)))
            if audit is not None:
                await audited(store, *audit)
            return done

    return anyio.run(run)


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at is not None else "never"


@app.command("show")
def show(ctx: typer.Context) -> None:
    """Print the admin token (it holds every scope; keep it to yourself)."""
    print(_admin(ctx).read())


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Its name: 1-64 letters, digits, '_', '-' or '.'.")],
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="call (tools, resources, status), manage (change the fleet), approve (acquire, approve); "
            "repeatable or comma-separated. Default: call.",
        ),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="Bind it to a profile (`vsm-mcp profiles add`): on every path it sees that profile's "
            "tools only.",
        ),
    ] = None,
) -> None:
    """Create a token and print its value once (only its digest is stored)."""
    try:
        scopes = parse_scopes(scope or [Scope.CALL.value])
    except ValueError as exc:
        raise ConfigError(f"--scope: {exc}") from None
    value = _with_book(ctx, lambda book: book.create(name, scopes, profile=profile), ("token.create", name))
    print(value)
    bound = f", profile {profile}: {PROFILE_PATH.format(profile=profile)}" if profile else ""
    Console(stderr=True).print(
        f"token {name} ({scopes_text(scopes)}{bound}) created; the value above is shown only now",
        highlight=False,
        soft_wrap=True,
    )


@app.command("list")
def list_(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every token: name, scopes, created, last use (never values)."""
    views = _with_book(ctx, lambda book: book.list())
    if as_json:
        rows = [
            {
                "name": v.name,
                "scopes": scopes_text(v.scopes).split(),
                "created_at": v.created_at,
                "last_used_at": v.last_used_at,
                "profile": v.profile,
            }
            for v in views
        ]
        print(json.dumps(rows, indent=2))
        return
    table = Table("name", "scopes", "profile", "created", "last use")
    for v in views:
        table.add_row(
            v.name, scopes_text(v.scopes), v.profile or "-", _when(v.created_at), _when(v.last_used_at)
        )
    _out.print(table)


@app.command("revoke")
def revoke(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The token to forget.")]) -> None:
    """Revoke a token: a running gateway refuses it within a second (the admin token is rotated instead)."""
    _with_book(ctx, lambda book: book.revoke(name), ("token.revoke", name))
    _out.print(f"token {name} revoked", highlight=False)


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The token to renew (default: the admin token).")] = ADMIN,
) -> None:
    """Give a token a new value and print it; the old value stops working within a second."""
    value = _with_book(ctx, lambda book: book.rotate(name), ("token.rotate", name))
    print(value)
    Console(stderr=True).print(
        f"token {name} rotated; the old value stops working within a second", highlight=False, soft_wrap=True
    )
