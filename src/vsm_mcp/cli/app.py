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

from vsm_mcp.cli.context import CliState
from vsm_mcp.cli.lazy import LazyGroup
from vsm_mcp.errors import VsmError

app = typer.Typer(
    name="vsm-mcp",
    help="A self-governing MCP gateway: Stafford Beer's Viable System Model, running.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # vsm-mcp --install-completion
    cls=LazyGroup,  # each command's module is imported only when that command runs (`cli.lazy`)
    # Plain help and errors: typer's rich formatter imports a Markdown renderer (0.2 s) before a line shows.
    rich_markup_mode=None,
)


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


#: The root's own options; given after a command they are taken as if given before it.
GLOBAL_OPTIONS = ("--state-dir", "--config")


def hoist_global_options(argv: list[str]) -> list[str]:
    """``argv`` with root options given after the command moved before it
    (``vsm-mcp servers list --state-dir D`` is ``vsm-mcp --state-dir D servers list``).

    Nothing after ``--`` moves (a server's own command line), nor anything when no command is given.
    """
    end = argv.index("--") if "--" in argv else len(argv)
    # The root's options before the command take a value each: skip over them to find the command.
    i = 0
    while i < end and argv[i] in GLOBAL_OPTIONS:
        i += 2
    command = next((j for j in range(i, end) if not argv[j].startswith("-")), None)
    if command is None:
        return argv
    moved: list[str] = []
    rest: list[str] = []
    j = command
    while j < end:
        arg = argv[j]
        if arg in GLOBAL_OPTIONS and j + 1 < end:
            moved += [arg, argv[j + 1]]
            j += 2
            continue
        if arg.split("=", 1)[0] in GLOBAL_OPTIONS and "=" in arg:
            moved.append(arg)
        else:
            rest.append(arg)
        j += 1
    return [*argv[:command], *moved, *rest, *argv[end:]]


def main() -> None:
    """Console entry point."""
    try:
        app(args=hoist_global_options(sys.argv[1:]))
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
