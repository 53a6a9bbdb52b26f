"""`vsm-mcp client config CLIENT`: the entry a client needs to reach this gateway, or its file merged.

Each supported client keeps its MCP servers in a JSON file of its own shape
(`CLIENTS`): Claude Desktop, Claude Code and Cursor under ``mcpServers``, VS
Code under ``servers`` with a ``type`` on each entry. Over stdio the entry runs
this installation's ``vsm-mcp serve --stdio`` on this state dir (with a running
``up`` it attaches to it); with ``--http`` it names the running face's URL (or
the default) and a bearer token of the client's own, created for it (scope
``call``; ``--rotate`` renews it). Invariants:

* without ``--write`` nothing on disk changes, but a token ``--http`` creates;
* ``--write`` changes only the one entry it names: every other key of the file
  is kept as it was, and the file it replaces is first copied to
  ``FILE.bak-<time>``; a file that is not a JSON object is refused, untouched;
* a client that cannot reach an HTTP server from its file (Claude Desktop) is
  refused ``--http`` with what to do instead.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from rich.console import Console

from vsm_mcp.cli.context import state_of
from vsm_mcp.core.access import Scope
from vsm_mcp.errors import ConfigError
from vsm_mcp.settings import Settings

app = typer.Typer(help="Set up an MCP client to use this gateway.", no_args_is_help=True)
_err = Console(stderr=True)

#: Where the HTTP face listens unless a running gateway says otherwise (`vsm-mcp up`'s default).
DEFAULT_URL = "http://127.0.0.1:8765/mcp"


@dataclass(frozen=True, slots=True)
class ClientShape:
    """How one client keeps its MCP servers."""

    #: The top-level key of the server map.
    key: str
    #: Each entry carries ``"type": "stdio" | "http"``.
    typed: bool
    #: It can reach a streamable HTTP server from its file.
    http: bool
    #: Its user-level file (``~`` is the user's home), or None when it is per project.
    user_file: str | None
    #: Its per-project file, relative to the working directory.
    project_file: str | None


CLIENTS: dict[str, ClientShape] = {
    "claude-desktop": ClientShape(
        "mcpServers",
        typed=False,
        http=False,
        user_file=(
            "~/Library/Application Support/Claude/claude_desktop_config.json"
            if sys.platform == "darwin"
            else os.path.join(os.environ["APPDATA"], "Claude", "claude_desktop_config.json")
            if sys.platform == "win32" and "APPDATA" in os.environ
            else "~/.config/Claude/claude_desktop_config.json"
        ),
        project_file=None,
    ),
    "claude-code": ClientShape("mcpServers", typed=True, http=True, user_file=None, project_file=".mcp.json"),
    "cursor": ClientShape(
        "mcpServers", typed=False, http=True, user_file="~/.cursor/mcp.json", project_file=None
    ),
    "vscode": ClientShape("servers", typed=True, http=True, user_file=None, project_file=".vscode/mcp.json"),
}


def stdio_entry(shape: ClientShape, command: str, state_dir: Path, profile: str | None) -> dict[str, Any]:
    """The client's entry that runs ``command serve --stdio`` on ``state_dir``."""
    args = ["--state-dir", str(state_dir), "serve", "--stdio"]
    if profile is not None:
        args += ["--profile", profile]
    return {**({"type": "stdio"} if shape.typed else {}), "command": command, "args": args}


def http_entry(shape: ClientShape, url: str, token: str) -> dict[str, Any]:
    """The client's entry for the HTTP face at ``url`` with a bearer ``token``."""
    return {
        **({"type": "http"} if shape.typed else {}),
        "url": url,
        "headers": {"Authorization": f"Bearer {token}"},
    }


def merged(document: object, shape: ClientShape, name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """``document`` (a client's file, parsed) with ``entry`` as server ``name``; all else kept.

    Raises:
        ConfigError: the file is not a JSON object, or its server map is not one.
    """
    if not isinstance(document, dict):
        raise ConfigError("the client's file is not a JSON object; left untouched")
    servers = document.get(shape.key, {})
    if not isinstance(servers, dict):
        raise ConfigError(f"the client's file has a {shape.key!r} that is not an object; left untouched")
    return {**document, shape.key: {**servers, name: entry}}


def write_merged(path: Path, shape: ClientShape, name: str, entry: dict[str, Any]) -> Path | None:
    """Merge ``entry`` into the client's file at ``path``; returns the backup made (None: no file was there).

    Raises:
        ConfigError: the file is not JSON (or not an object); it is left untouched.
    """
    backup: Path | None = None
    document: object = {}
    if path.exists():
        text = path.read_text()
        try:
            document = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not JSON ({exc}); left untouched") from None
        result = merged(document, shape, name, entry)
        backup = path.with_name(f"{path.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.copy2(path, backup)
    else:
        result = merged(document, shape, name, entry)
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    if backup is not None:
        shutil.copymode(backup, tmp)
    os.replace(tmp, path)
    return backup


def this_command() -> str:
    """The absolute path of this installation's ``vsm-mcp`` (the one running now, if it is one)."""
    beside = Path(sys.executable).parent / "vsm-mcp"
    if beside.exists():
        return str(beside)
    found = shutil.which("vsm-mcp")
    if found is None:
        raise ConfigError("no vsm-mcp executable found beside this Python or on PATH")
    return str(Path(found).resolve())


def client_file(shape: ClientShape, given: Path | None) -> Path:
    """The file ``--write`` changes: ``--file``, else the client's own (user-level or this project's)."""
    if given is not None:
        return given
    if shape.user_file is not None:
        return Path(shape.user_file).expanduser()
    assert shape.project_file is not None
    return Path.cwd() / shape.project_file


@app.command("config")
def config(
    ctx: typer.Context,
    client: Annotated[str, typer.Argument(help=f"One of: {', '.join(CLIENTS)}.")],
    *,
    http: Annotated[
        bool,
        typer.Option("--http", help="Over streamable HTTP (with `vsm-mcp up` running) instead of stdio."),
    ] = False,
    write: Annotated[
        bool,
        typer.Option(
            "--write", help="Merge the entry into the client's file (after a backup) instead of printing."
        ),
    ] = False,
    file: Annotated[
        Path | None, typer.Option("--file", help="The client's file (default: its usual place).")
    ] = None,
    name: Annotated[str, typer.Option("--name", help="The server's name in the client.")] = "vsm",
    profile: Annotated[
        str | None, typer.Option("--profile", help="Serve this profile (`vsm-mcp profiles add`) only.")
    ] = None,
    token_name: Annotated[
        str | None, typer.Option("--token", help="With --http: the token's name (default: client-CLIENT).")
    ] = None,
    rotate: Annotated[
        bool,
        typer.Option(
            "--rotate", help="With --http: renew that token if it exists (its old value stops working)."
        ),
    ] = False,
    url: Annotated[
        str | None,
        typer.Option("--url", help="With --http: the face's URL (default: the running gateway's)."),
    ] = None,
) -> None:
    """Print the entry CLIENT needs to use this gateway, or merge it into CLIENT's file with --write."""
    shape = CLIENTS.get(client)
    if shape is None:
        raise ConfigError(f"unknown client {client!r}: one of {', '.join(CLIENTS)}")
    settings = state_of(ctx).settings()
    if http:
        if not shape.http:
            raise ConfigError(
                f"{client} does not connect to an HTTP server from its file: use the stdio entry "
                f"(`vsm-mcp client config {client}`), which attaches to a running `vsm-mcp up`"
            )
        face, token = anyio.run(_http_token, settings, token_name or f"client-{client}", rotate, profile)
        base = url or face or DEFAULT_URL
        entry = http_entry(shape, f"{base.rstrip('/')}/p/{profile}" if profile else base, token)
    else:
        entry = stdio_entry(shape, this_command(), settings.state_dir, profile)
    if not write:
        print(json.dumps({shape.key: {name: entry}}, indent=2))
        return
    path = client_file(shape, file)
    backup = write_merged(path, shape, name, entry)
    saved = f" (the previous file is {backup})" if backup is not None else ""
    _err.print(f"{client}: server {name!r} written to {path}{saved}", highlight=False, soft_wrap=True)


async def _http_token(
    settings: Settings, name: str, rotate: bool, profile: str | None
) -> tuple[str | None, str]:
    """The running face's URL (None: none runs) and a token for the client: created, or renewed."""
    from vsm_mcp.cli.http_face import running_face
    from vsm_mcp.gateway.tokens import AdminTokenFile, TokenBook
    from vsm_mcp.store import SqliteStore

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    async with SqliteStore.open(settings.database_path) as store:
        book = TokenBook(store, AdminTokenFile.in_state(settings.state_dir))
        exists = any(view.name == name for view in await book.list())
        if exists and not rotate:
            raise ConfigError(
                f"a token named {name!r} exists and its value is not kept: --rotate renews it "
                "(the old value stops working), or --token NAME names another"
            )
        if exists:
            token = await book.rotate(name)
            _err.print(f"token {name} renewed; the old value no longer works", highlight=False)
        else:
            token = await book.create(name, [Scope.CALL], profile=profile)
            _err.print(f"token {name} (call) created for this client", highlight=False)
        return await running_face(store, settings.state_dir), token
