"""`vsm-mcp up`: the main job. The whole viable system, served over streamable HTTP.

Embedded defaults only: the SQLite state in the state dir, the fleet from the
settings file and `vsm-mcp servers add`, no external service. It runs until
SIGTERM/SIGINT, then stops the gateway, every downstream process and the VSM
systems, in that order (`Runtime`). Every HTTP request needs a bearer token
(`vsm_mcp.cli.http_face`; the admin token is created on first start).
"""

from __future__ import annotations

import signal
import sys
from functools import partial
from typing import Annotated

import anyio
import typer

from vsm_mcp.cli.context import state_of
from vsm_mcp.cli.http_face import (
    AllowHostOption,
    AllowOriginOption,
    PublicOption,
    TlsCertOption,
    TlsKeyOption,
    http_listen,
    start_http,
)
from vsm_mcp.cli.watch import report_events
from vsm_mcp.errors import ConfigError
from vsm_mcp.gateway.binding import HttpListen
from vsm_mcp.gateway.transport import MCP_PATH
from vsm_mcp.runtime import Runtime
from vsm_mcp.settings import Settings

DEFAULT_LISTEN = "127.0.0.1:8765"


def up(
    ctx: typer.Context,
    *,
    http: Annotated[
        str, typer.Option("--http", metavar="HOST:PORT", help=f"Where to serve MCP ({MCP_PATH}).")
    ] = DEFAULT_LISTEN,
    public: PublicOption = False,
    allow_host: AllowHostOption = None,
    allow_origin: AllowOriginOption = None,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    log_json: Annotated[
        bool, typer.Option("--log-json", help="Unit changes and alerts as JSON lines (default: as text).")
    ] = False,
    port: Annotated[int | None, typer.Option("--port", hidden=True)] = None,
) -> None:
    """Run VSM-MCP: gateway over streamable HTTP with S1-S5, S3* and the algedonic channel live."""
    if port is not None:  # a common guess: say what the flag is
        raise ConfigError(f"vsm-mcp up has no --port: use --http 127.0.0.1:{port} (HOST:PORT)")
    listen = http_listen(
        http,
        public=public,
        allow_host=allow_host,
        allow_origin=allow_origin,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    anyio.run(run_up, state_of(ctx).settings(), listen, log_json)


async def run_up(settings: Settings, listen: HttpListen, log_json: bool = False) -> None:
    """Serve until a signal; unit state changes and alerts are told on stderr as they happen."""
    autonomous = settings.acquisition.autonomous
    async with Runtime.open(settings, autonomous=autonomous) as runtime, anyio.create_task_group() as tg:
        url = await start_http(runtime, listen, tg)
        units = ", ".join(runtime.fleet.units) or "none yet (vsm-mcp servers add NAME -- CMD ...)"
        print(
            f"vsm-mcp up: MCP on {url}\n"
            f"  page:  {url.removesuffix(MCP_PATH)}/ (log in with a token: vsm-mcp --state-dir "
            f"{settings.state_dir} token show)\n"
            f"  state: {settings.state_dir}\n"
            f"  units: {units}\n"
            f"  watch: vsm-mcp --state-dir {settings.state_dir} status",
            file=sys.stderr,
            flush=True,
        )
        fleet = runtime.fleet
        warning = await anyio.to_thread.run_sync(
            fleet.confinement.warning, [u.spec for u in fleet.units.values()]
        )
        if warning is not None:
            print(warning, file=sys.stderr, flush=True)
        tg.start_soon(partial(report_events, runtime, as_json=log_json))
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                tg.cancel_scope.cancel()
                break


def register(root: typer.Typer) -> None:
    """Add ``up`` to the root app."""
    root.command("up")(up)
