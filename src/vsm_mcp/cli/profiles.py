"""`vsm-mcp profiles ...`: named subsets of servers and tools, one per kind of client.

A profile is served at ``/mcp/p/<name>`` on the HTTP face (`serve --http`,
`up`) and on stdio with ``serve --profile NAME``; a token created with
``token create --profile NAME`` sees only that profile on every path.
Patterns are globs over server names and over public tool names
(``github``, ``git*``, ``github__create_*``); deny wins over allow; the
gateway's own ``vsm_*`` tools stay unless ``--deny-tool`` names them. A
running gateway picks up a change within a second and tells its clients
(``list_changed``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import anyio
import typer
from rich.console import Console
from rich.table import Table

from vsm_mcp.cli.context import state_of
from vsm_mcp.core.profiles import Profile, ToolOverride
from vsm_mcp.errors import ConfigError
from vsm_mcp.gateway.profiles import ProfileBook
from vsm_mcp.gateway.transport import PROFILE_PATH
from vsm_mcp.store import SqliteStore

app = typer.Typer(
    help="Profiles: named subsets of servers and tools, served at /mcp/p/NAME and bindable to a token.",
    no_args_is_help=True,
)
_out = Console()
_T = TypeVar("_T")


def _with_book(ctx: typer.Context, action: Callable[[ProfileBook], Awaitable[_T]]) -> _T:
    settings = state_of(ctx).settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> _T:
        async with SqliteStore.open(settings.database_path) as store:
            return await action(ProfileBook(store))

    return anyio.run(run)


def _pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    """``TOOL=VALUE`` options as a mapping.

    Raises:
        ConfigError: one without ``=``, or a tool named twice.
    """
    pairs: dict[str, str] = {}
    for value in values or []:
        tool, sep, text = value.partition("=")
        if not sep or not tool or not text:
            raise ConfigError(f"{flag} expects TOOL=VALUE, got {value!r}")
        if tool in pairs:
            raise ConfigError(f"{flag}: {tool!r} given twice")
        pairs[tool] = text
    return pairs


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Its name: 1-64 letters, digits, '_', '-' or '.'.")],
    *,
    server: Annotated[
        list[str] | None,
        typer.Option("--server", help="Servers it admits (glob; repeatable). None given: every server."),
    ] = None,
    deny_server: Annotated[
        list[str] | None, typer.Option("--deny-server", help="Servers it never admits (glob; repeatable).")
    ] = None,
    tool: Annotated[
        list[str] | None,
        typer.Option(
            "--tool",
            help="Tools it admits, by public name (glob, e.g. 'github__create_*'; repeatable). "
            "None given: every tool of an admitted server.",
        ),
    ] = None,
    deny_tool: Annotated[
        list[str] | None,
        typer.Option("--deny-tool", help="Tools it never shows, its own vsm_* tools too (glob; repeatable)."),
    ] = None,
    rename: Annotated[
        list[str] | None, typer.Option("--rename", help="TOOL=NEW_NAME: the tool's name in this profile.")
    ] = None,
    describe: Annotated[
        list[str] | None,
        typer.Option("--describe", help="TOOL=TEXT: the tool's description in this profile."),
    ] = None,
    description: Annotated[str, typer.Option("--description", help="What the profile is for.")] = "",
    replace: Annotated[bool, typer.Option("--replace", help="Replace a profile of that name.")] = False,
) -> None:
    """Add a profile (or replace one with --replace)."""
    names, texts = _pairs(rename, "--rename"), _pairs(describe, "--describe")
    overrides = {t: ToolOverride(names.get(t), texts.get(t)) for t in sorted({*names, *texts})}
    try:
        profile = Profile(
            name=name,
            description=description,
            servers=tuple(server or ()),
            deny_servers=tuple(deny_server or ()),
            tools=tuple(tool or ()),
            deny_tools=tuple(deny_tool or ()),
            overrides=overrides,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    _with_book(ctx, lambda book: book.add(profile, replace_existing=replace))
    _out.print(
        f"profile {name} {'replaced' if replace else 'added'}: served at {PROFILE_PATH.format(profile=name)}; "
        f"bind a token with `vsm-mcp token create NAME --profile {name}`",
        highlight=False,
        soft_wrap=True,
    )


def _rules(profile: Profile) -> str:
    parts = [
        f"servers {', '.join(profile.servers)}" if profile.servers else "every server",
        *([f"not {', '.join(profile.deny_servers)}"] if profile.deny_servers else []),
        f"tools {', '.join(profile.tools)}" if profile.tools else "every tool",
        *([f"not {', '.join(profile.deny_tools)}"] if profile.deny_tools else []),
    ]
    if profile.overrides:
        parts.append(f"{len(profile.overrides)} override(s)")
    return "; ".join(parts)


@app.command("list")
def list_(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every profile: its rules and the tokens bound to it."""

    async def gather(book: ProfileBook) -> list[tuple[Profile, list[str]]]:
        return [(p, await book.bound_tokens(p.name)) for p in (await book.all()).values()]

    rows = _with_book(ctx, gather)
    if as_json:
        print(json.dumps([{**p.to_json(), "tokens": bound} for p, bound in rows], indent=2))
        return
    if not rows:
        _out.print("no profiles (add one with `vsm-mcp profiles add NAME --server ...`)", highlight=False)
        return
    table = Table("name", "rules", "tokens", "path", "description")
    for profile, bound in rows:
        table.add_row(
            profile.name,
            _rules(profile),
            ", ".join(bound) or "-",
            PROFILE_PATH.format(profile=profile.name),
            profile.description,
        )
    _out.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The profile.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One profile: its rules, overrides and bound tokens."""

    async def gather(book: ProfileBook) -> tuple[Profile, list[str]]:
        return await book.get(name), await book.bound_tokens(name)

    profile, bound = _with_book(ctx, gather)
    if as_json:
        print(json.dumps({**profile.to_json(), "tokens": bound}, indent=2))
        return
    _out.print(f"profile {profile.name}: {_rules(profile)}", highlight=False, soft_wrap=True)
    if profile.description:
        _out.print(f"  {profile.description}", highlight=False)
    _out.print(f"  path: {PROFILE_PATH.format(profile=profile.name)}", highlight=False)
    _out.print(f"  tokens: {', '.join(bound) or 'none'}", highlight=False)
    for public, override in sorted(profile.overrides.items()):
        changes = [f"name {override.name}"] if override.name else []
        if override.description is not None:
            changes.append(f"description {override.description!r}")
        _out.print(f"  {public}: {'; '.join(changes)}", highlight=False, soft_wrap=True)


@app.command("remove")
def remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The profile to remove.")],
    force: Annotated[
        bool, typer.Option("--force", help="Remove it though tokens are bound to it (they are refused).")
    ] = False,
) -> None:
    """Remove a profile; refused while tokens are bound to it, unless --force."""
    bound = _with_book(ctx, lambda book: book.remove(name, force=force))
    tail = f"; tokens {', '.join(bound)} are refused until revoked" if bound else ""
    _out.print(f"profile {name} removed{tail}", highlight=False, soft_wrap=True)
