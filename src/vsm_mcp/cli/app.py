"""The `vsm-mcp` command line: one typer app; each topic's commands live in its own module.

A `VsmError` is a user error: it is printed as one line on stderr, without a
traceback, and the exit code is 1. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from vsm_mcp.cli import (
    acquire,
    approvals,
    bench,
    catalog,
    inspect,
    match,
    profiles,
    secrets,
    serve,
    servers,
    token,
    up,
)
from vsm_mcp.cli.context import CliState
from vsm_mcp.errors import VsmError

app = typer.Typer(
    name="vsm-mcp",
    help="A self-governing MCP gateway: Stafford Beer's Viable System Model, running.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # vsm-mcp --install-completion
)
app.add_typer(bench.app, name="bench")
app.add_typer(catalog.app, name="catalog")
app.add_typer(servers.app, name="servers")
app.add_typer(servers.dlq_app, name="dlq")
app.add_typer(secrets.app, name="secrets")
app.add_typer(token.app, name="token")
app.add_typer(profiles.app, name="profiles")
app.add_typer(approvals.app, name="approvals")
up.register(app)
serve.register(app)
inspect.register(app)
match.register(app)
acquire.register(app)


@app.callback()
def _root(
    ctx: typer.Context,
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="State directory (database, installs, logs).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Settings TOML file (default: <state-dir>/config.toml).")
    ] = None,
) -> None:
    ctx.obj = CliState(state_dir=state_dir, config=config)


def main() -> None:
    """Console entry point."""
    try:
        app()
    except VsmError as exc:
        _user_error(exc)
    except BaseExceptionGroup as group:
        # A user error raised inside a task group (a port in use at start) is still one line.
        found = _first_user_error(group)
        if found is None:
            raise
        _user_error(found)


def _user_error(exc: VsmError) -> NoReturn:
    # The message is text, never markup: "[acquisition] sandbox" must print as written.
    Console(stderr=True).print(
        Text.assemble(("error:", "bold red"), " ", str(exc)), highlight=False, soft_wrap=True
    )
    sys.exit(1)


def _first_user_error(group: BaseExceptionGroup[BaseException]) -> VsmError | None:
    """The first `VsmError` in ``group`` (depth first), when every leaf is one or a cancellation."""
    leaves: list[BaseException] = []
    todo: list[BaseException] = [group]
    while todo:
        exc = todo.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            todo[:0] = list(exc.exceptions)
        else:
            leaves.append(exc)
    errors = [e for e in leaves if isinstance(e, VsmError)]
    others = [e for e in leaves if not isinstance(e, VsmError | KeyboardInterrupt | SystemExit)]
    return errors[0] if errors and not any(type(e).__name__ != "CancelledError" for e in others) else None
