"""`vsm-mcp servers ...` and `vsm-mcp dlq ...`: the fleet and its dead letters, from the shell.

Changes are persisted in the state database; a running gateway applies them
within a second (`vsm_mcp.fleet.registry`). A stdio server is sandboxed as the
``[sandbox]`` settings say unless ``servers add`` is given its own choice
(``--sandbox``, ``--network/--no-network``, ``--data-dir``); ``servers list``
shows what a running gateway reports (``bwrap, no network``, ``UNSANDBOXED``,
``REFUSED``) or else what the policy asks for. ``dlq replay`` is
`vsm_mcp.cli.replay` (through the running gateway when there is one). ``servers logs`` reads the tail of a server's log (and
its rotated files) from the end, in bounded memory, and prints it without
control characters (`vsm_mcp.fleet.logfile`). ``servers list`` shows a
quarantined server (its tool definitions changed) from its stored record,
whether or not a gateway runs it; ``servers approve`` is `vsm_mcp.cli.approve`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vsm_mcp import report
from vsm_mcp.cli.approve import approve
from vsm_mcp.cli.context import audited, state_of
from vsm_mcp.errors import ConfigError, SandboxError, UnknownUnitError
from vsm_mcp.fleet import definitions
from vsm_mcp.fleet.confinement import Confinement
from vsm_mcp.fleet.logfile import follow, printable, read_tail, rotated_paths
from vsm_mcp.fleet.pins import trust as trust_pin
from vsm_mcp.fleet.secrets import referenced
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.settings import Settings
from vsm_mcp.store import SqliteStore

if TYPE_CHECKING:  # the registry imports the fleet and the MCP SDK: loaded when a command needs it
    from vsm_mcp.fleet.registry import FleetRegistry

#: A running gateway stores its live status every 2 s; older than this, nobody is running.
LIVE_STATUS_MAX_AGE_S = 10.0
#: How often `servers logs --follow` looks for new lines: quick enough to feel live, idle otherwise.
FOLLOW_POLL_S = 0.25

app = typer.Typer(help="Downstream MCP servers (System 1 units).", no_args_is_help=True)
dlq_app = typer.Typer(help="Failed calls kept for inspection and replay.", no_args_is_help=True)
_out = Console()
_T = TypeVar("_T")
app.command("approve")(approve)


def _with_registry(
    ctx: typer.Context,
    action: Callable[[FleetRegistry, Settings], Awaitable[_T]],
    audit: tuple[str, str] | None = None,
) -> _T:
    """Run ``action`` on the registry of the state dir; once it has worked, ``audit`` (an action
    and its target) goes to the audit log."""
    settings = state_of(ctx).settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> _T:
        from vsm_mcp.fleet.registry import FleetRegistry

        async with SqliteStore.open(settings.database_path) as store:
            done = await action(FleetRegistry(store, settings.servers.values()), settings)
            if audit is not None:
                await audited(store, *audit)
            return done

    return anyio.run(run)


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Short name; tools appear as NAME__tool.")],
    command: Annotated[list[str] | None, typer.Argument(help="-- COMMAND ARGS... (stdio server)")] = None,
    *,
    url: Annotated[
        str | None, typer.Option("--url", help="Streamable HTTP endpoint instead of a command.")
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            help="KEY=VALUE for the server (repeatable); a value may refer to a secret as "
            "'${secret:NAME}' (single quotes keep the shell from expanding it).",
        ),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", help="Tool name prefix ('' for none).")
    ] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace a server of the same name.")] = False,
    sandbox: Annotated[
        str | None,
        typer.Option(
            "--sandbox",
            help="require | prefer (bubblewrap, else unsandboxed) | off  [default: settings [sandbox] mode]",
        ),
    ] = None,
    network: Annotated[
        bool | None,
        typer.Option("--network/--no-network", help="Share the host network  [default: settings]"),
    ] = None,
    data_dir: Annotated[
        list[Path] | None,
        typer.Option("--data-dir", help="A directory the server may write besides its prefix (repeatable)."),
    ] = None,
) -> None:
    """Add a server: `vsm-mcp servers add time -- uvx mcp-server-time`."""
    variables: dict[str, str] = {}
    for item in env or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--env expects KEY=VALUE, got {item!r}")
        variables[key] = value
    fields: dict[str, Any] = {"name": name, "env": variables, "namespace": namespace}
    if command:
        fields |= {"command": command[0], "args": command[1:]}
    if url:
        fields["url"] = url
    if sandbox is not None and sandbox not in ("require", "prefer", "off"):
        raise ConfigError(f"--sandbox must be require, prefer or off, got {sandbox!r}")
    if sandbox is not None or network is not None or data_dir:
        own: dict[str, Any] = {"mode": sandbox, "network": network}
        own["data_dirs"] = [str(d.expanduser().absolute()) for d in data_dir or []]
        fields["sandbox"] = {k: v for k, v in own.items() if v is not None}
    try:
        spec = ServerSpec.model_validate(fields)
    except ValidationError as exc:
        raise ConfigError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
    if spec.command is not None and _find_command(spec.command) is None:
        raise ConfigError(
            f"command {spec.command!r} not found"
            + (" (not an executable file)" if "/" in spec.command else " on PATH")
            + ": install it, or give its full path (nothing was added)"
        )

    settings = _with_registry(
        ctx,
        lambda registry, settings: _added(registry, settings, spec, replace),
        ("servers.add", spec.name),
    )
    intent = Confinement(settings.sandbox_policy()).intent(spec)
    _out.print(f"added {name}: {spec.describe()}" + (f" (sandbox: {intent})" if spec.command else ""))
    if namespace == "":
        _out.print(
            f"note: {name} has no namespace: a tool of it keeps its bare name only while no other server "
            f"publishes that name, it is no VSM tool's and it has no '__' in it; otherwise it is "
            f"{name}__TOOL",
            highlight=False,
            markup=False,
        )
    missing = _unset_secrets(settings, referenced(spec))
    if missing:
        _out.print(
            f"note: secret{'s' if len(missing) > 1 else ''} {', '.join(missing)} not set yet; {name} will not "
            f"start until {'they are' if len(missing) > 1 else 'it is'} (vsm-mcp secrets set {missing[0]})",
            highlight=False,
            soft_wrap=True,
        )


def _find_command(command: str) -> str | None:
    """``command`` as the gateway will find it: a path that is executable, or a name on PATH or
    beside the gateway's own interpreter."""
    if "/" in command:
        path = Path(command).expanduser()
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    # The sandbox also looks beside the gateway's interpreter (its environment's uvx).
    return shutil.which(command) or shutil.which(command, path=os.path.dirname(sys.executable))


def _unset_secrets(settings: Settings, names: list[str]) -> list[str]:
    if not names:
        return []

    async def run() -> list[str]:
        async with SqliteStore.open(settings.database_path) as store:
            kept = {name for name, _ in await store.secret_names()}
        return [name for name in names if name not in kept]

    return anyio.run(run)


async def _added(registry: FleetRegistry, settings: Settings, spec: ServerSpec, replace: bool) -> Settings:
    await registry.add(spec, replace=replace)
    return settings


@app.command("list")
def list_(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The servers the gateway runs."""

    settings = state_of(ctx).settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> list[dict[str, Any]]:
        from vsm_mcp.fleet.registry import FleetRegistry

        async with SqliteStore.open(settings.database_path) as store:
            desired = await FleetRegistry(store, settings.servers.values()).desired()
            live = await store.kv_get(report.LIVE_STATUS_KEY)
            running, limits = _running_sandboxes(live), _running(live, "limits")
            units = _running_entries(live)
            quarantines = {name: await _quarantine(store, name) for name in desired}
        confinement = Confinement(settings.sandbox_policy())
        return [
            {
                "name": s.name,
                "source": "settings" if settings.servers.get(s.name) == s else "runtime",
                "transport": s.transport,
                "target": s.describe(),
                "namespace": s.prefix,
                "sandbox": confinement.intent(s),
                "running": running.get(s.name),
                "limits": limits.get(s.name),
                # what the running gateway measured (None: no gateway runs it)
                **{key: units.get(s.name, {}).get(key) for key in LIVE_FIELDS},
                # from the stored record: it outlives the gateway
                "quarantine": quarantines[s.name],
            }
            for s in desired.values()
        ]

    rows = anyio.run(run)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("name", "state", "tools", "calls", "errors", "sandbox", "limits", "target", "last error")
    for row in rows:
        shown = row["running"] or (f"{row['sandbox']} (not running)" if row["sandbox"] != "-" else "-")
        state = "quarantined" if row["quarantine"] else row["state"] or "not running"
        why = f"quarantined: {row['quarantine']}" if row["quarantine"] else row["last_error"] or ""
        table.add_row(
            row["name"],
            Text(state, style="bold red" if state in ("failed", "quarantined") else ""),
            *(str(row[key]) if row[key] is not None else "-" for key in ("tools", "calls", "errors")),
            Text(shown),
            Text(row["limits"] or "-"),
            Text(row["target"]),
            Text(printable(why)),  # a server wrote parts of it: no markup, no controls
        )
    _out.print(table)
    for row in rows:
        if row["quarantine"]:
            _out.print(
                f"to accept {row['name']}'s new tool definitions: vsm-mcp servers approve {row['name']}"
            )


async def _quarantine(store: SqliteStore, name: str) -> str | None:
    """Why ``name`` is quarantined (its stored definition pin says so), None when it is not."""
    pin = await definitions.load(store, name)
    return pin.quarantine.reason if pin is not None and pin.quarantine is not None else None


#: What `servers list` shows of a running gateway's live status per server.
LIVE_FIELDS = ("state", "tools", "calls", "errors", "last_error")


def _running_sandboxes(live: Any) -> dict[str, str]:
    """Unit name -> how a running gateway runs it (from its live status; empty when none runs)."""
    return _running(live, "sandbox")


def _running(live: Any, field: str) -> dict[str, str]:
    """Unit name -> ``field`` of its entry in a running gateway's live status (empty when none runs)."""
    return {name: str(entry[field]) for name, entry in _running_entries(live).items() if field in entry}


def _running_entries(live: Any) -> dict[str, dict[str, Any]]:
    """Unit name -> its whole entry in a fresh live status (empty when no gateway runs)."""
    if not isinstance(live, dict) or not isinstance(live.get("at"), int | float):
        return {}
    if time.time() - float(live["at"]) > LIVE_STATUS_MAX_AGE_S:
        return {}
    units = live.get("fleet")
    if not isinstance(units, list):
        return {}
    return {str(u["name"]): u for u in units if isinstance(u, dict) and "name" in u}


@app.command("remove")
def remove(ctx: typer.Context, name: str) -> None:
    """Remove a server; a running gateway stops it and kills its processes."""

    async def action(registry: FleetRegistry, settings: Settings) -> None:
        await registry.remove(name)

    _with_registry(ctx, action, ("servers.remove", name))
    _out.print(f"removed {name}")


@app.command("restart")
def restart(ctx: typer.Context, name: str) -> None:
    """Restart a server in the running gateway (also lifts a crash-loop failure)."""

    async def action(registry: FleetRegistry, settings: Settings) -> int:
        return await registry.request_restart(name)

    number = _with_registry(ctx, action, ("servers.restart", name))
    _out.print(f"restart #{number} of {name} requested")


@app.command("trust")
def trust(ctx: typer.Context, name: str) -> None:
    """Accept what a server's start now runs (after you updated it) and restart it.

    A start whose files (launcher, interpreter chain, program files) differ from those pinned at
    install or first start is refused with HIGH algedonic pain; this pins the files as they are now.
    """
    settings = state_of(ctx).settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> tuple[int, int]:
        from vsm_mcp.fleet.registry import FleetRegistry

        async with SqliteStore.open(settings.database_path) as store:
            registry = FleetRegistry(store, settings.servers.values())
            spec = (await registry.desired()).get(name)
            if spec is None:
                raise UnknownUnitError(f"no server named {name!r}")
            if spec.transport != "stdio":
                raise UnknownUnitError(f"server {name!r} is reached over HTTP: there is no launch to trust")
            confined = await Confinement(settings.sandbox_policy()).plan(spec)
            pin = confined.plan.pin
            if pin is None:
                raise SandboxError(f"server {name!r} runs with its sandbox off: its launch is not pinned")
            await trust_pin(store, name, pin)
            number = await registry.request_restart(name)
            await audited(store, "servers.trust", name, f"{len(pin.files)} files pinned")
            return len(pin.files), number

    files, number = anyio.run(run)
    _out.print(f"{name}: launch pinned as it is now ({files} files); restart #{number} requested")


@app.command("logs")
def logs(
    ctx: typer.Context,
    name: str,
    lines: Annotated[int, typer.Option("-n", "--lines", min=0, help="How many of the last lines.")] = 50,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing lines as they come (Ctrl-C stops).")
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="One JSON array of the lines (with --follow: one JSON string a line)."),
    ] = False,
) -> None:
    """The last stderr lines of a server (written by the running gateway), control characters removed."""
    settings = state_of(ctx).settings()
    path: Path = settings.state_dir / "logs" / f"{name}.log"
    if not any(p.exists() for p in rotated_paths(path)):
        raise UnknownUnitError(f"no log for {name!r} (looked for {path})")
    tail = read_tail(path, lines)
    if as_json and not follow_:
        print(json.dumps([printable(line.decode(errors="replace")) for line in tail.lines]))
        return
    show = _print_json_line if as_json else _print_log_line
    for line in tail.lines:
        show(line)
    if follow_:

        def wait() -> bool:
            sys.stdout.flush()
            time.sleep(FOLLOW_POLL_S)
            return True

        with suppress(KeyboardInterrupt):
            for line in follow(path, tail.position, wait):
                show(line)


def _print_log_line(line: bytes) -> None:
    # The server wrote these bytes: show them, never let the terminal obey them.
    print(printable(line.decode(errors="replace")))


def _print_json_line(line: bytes) -> None:
    print(json.dumps(printable(line.decode(errors="replace"))))


@dlq_app.command("list")
def dlq_list(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include replayed letters.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Failed calls, oldest first."""
    settings = state_of(ctx).settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> list[dict[str, Any]]:
        async with SqliteStore.open(settings.database_path) as store:
            letters = await store.dead_letters(include_replayed=all_)
        return [
            {
                "id": d.id,
                "at": d.at,
                "server": d.unit,
                "tool": d.tool,
                "arguments": d.arguments,
                "attempts": d.attempts,
                "error": d.error,
                "replayed_at": d.replayed_at,
            }
            for d in letters
        ]

    rows = anyio.run(run)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        _out.print("no dead letters" + ("" if all_ else " waiting (--all includes replayed ones)"))
        return
    table = Table("id", "when", "server", "tool", "attempts", "error")
    for row in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["at"]))
        error = Text(printable(row["error"]))  # a server wrote it: no markup, no terminal controls
        table.add_row(str(row["id"]), when, row["server"], row["tool"], str(row["attempts"]), error)
    _out.print(table)


@dlq_app.command("replay")
def dlq_replay(
    ctx: typer.Context,
    ids: Annotated[list[int] | None, typer.Argument(help="Letters to replay (default: all).")] = None,
) -> None:
    """Call the failed tools again (through the running gateway when there is one); a success marks
    the letter replayed, a failure (a tool error too) counts one attempt more."""
    from vsm_mcp.cli.replay import replay

    done = anyio.run(replay, state_of(ctx).settings(), ids)
    for line in done.lines:
        _out.print(line, markup=False, highlight=False, soft_wrap=True)
    ok, failed, refused = done.ok, done.failed, done.refused
    if ok or failed or refused:
        _out.print(
            f"{ok} replayed, {failed} still failing" + (f", {refused} not replayable" if refused else "")
        )
    if failed or refused:
        raise typer.Exit(code=1)
