"""`vsm-mcp serve`: the gateway alone (no autonomous loop), over stdio or streamable HTTP.

It runs the same `Runtime` as `vsm-mcp up` (store, S1-S5, S3*, algedonic
channel) without the autonomous acquisition loop. The fleet is the settings
file's ``[servers.NAME]`` tables plus runtime changes made with
``vsm-mcp servers ...`` (kept in sync while serving). Failed calls go to the
store's dead-letter queue; algedonic pain from units (crash loops) reaches S5
and is stored as alerts. SIGTERM or SIGINT stops the gateway and
every downstream process; in stdio mode so does the client closing stdin.
Nothing but MCP is ever written to stdout. Over HTTP every request needs a
bearer token (`vsm_mcp.cli.http_face`, ``vsm-mcp token ...``); on stdio the
local user who started the gateway is the operator.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import signal
import sys
from typing import Annotated

import anyio
import anyio.abc
import typer
from rich.console import Console

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
from vsm_mcp.errors import ConfigError
from vsm_mcp.gateway.binding import HttpListen
from vsm_mcp.gateway.profiles import ProfileBook
from vsm_mcp.gateway.transport import MCP_PATH, PROFILE_PATH, serve_stdio
from vsm_mcp.runtime import Runtime
from vsm_mcp.settings import Settings
from vsm_mcp.store import SqliteStore


def register(root: typer.Typer) -> None:
    """Add ``serve`` to the root app."""
    root.command("serve")(serve)


def register_bench(bench_app: typer.Typer) -> None:
    """Add ``gateway`` to the ``vsm-mcp bench`` group."""
    bench_app.command("gateway")(bench_gateway)


def bench_gateway(
    calls: Annotated[int, typer.Option(min=100, help="Calls per phase of a pass.")] = 1000,
    units: Annotated[int, typer.Option(min=1, help="Echo servers for the memory measurement.")] = 8,
    repeat: Annotated[
        int, typer.Option(min=1, help="Rounds (one pass per target each); figures are medians.")
    ] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Direct vs through VSM-MCP vs through FastMCP's proxy: throughput, p50/p99, memory."""
    from vsm_mcp.bench import gateway as gateway_bench

    result = anyio.run(gateway_bench.run, calls, units, None, repeat)
    if as_json:
        print(json.dumps(result))
        return
    console = Console()
    for table in gateway_bench.render(result):
        console.print(table)


def serve(
    ctx: typer.Context,
    *,
    stdio: Annotated[bool, typer.Option("--stdio", help="Speak MCP on stdin/stdout.")] = False,
    http: Annotated[
        str | None, typer.Option("--http", metavar="HOST:PORT", help=f"Serve streamable HTTP at {MCP_PATH}.")
    ] = None,
    loop: Annotated[
        str,
        typer.Option(
            "--loop",
            metavar="auto|asyncio|uvloop",
            help="Event loop: uvloop (a dependency) is faster per message; auto uses it when installed.",
        ),
    ] = "auto",
    public: PublicOption = False,
    allow_host: AllowHostOption = None,
    allow_origin: AllowOriginOption = None,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="stdio: serve only this profile's tools (`vsm-mcp profiles`); over HTTP each profile "
            f"has its own path ({PROFILE_PATH}).",
        ),
    ] = None,
) -> None:
    """Run the MCP gateway in front of the configured servers (HTTP: bearer tokens, `vsm-mcp token`)."""
    if stdio == (http is not None):
        raise ConfigError("give exactly one of --stdio or --http HOST:PORT")
    if profile is not None and http is not None:
        raise ConfigError(
            f"--profile is for --stdio; over HTTP a client picks a profile by its path ({PROFILE_PATH}) "
            "or its token (`vsm-mcp token create NAME --profile P`)"
        )
    listen = (
        http_listen(
            http,
            public=public,
            allow_host=allow_host,
            allow_origin=allow_origin,
            tls_cert=tls_cert,
            tls_key=tls_key,
        )
        if http is not None
        else None
    )
    settings = state_of(ctx).settings()
    anyio.run(run_gateway, settings, listen, profile, backend_options=loop_options(loop))


def loop_options(loop: str) -> dict[str, bool]:
    """anyio's asyncio backend options for ``--loop``.

    Raises:
        ConfigError: not one of auto, asyncio, uvloop; or uvloop asked for and not installed.
    """
    if loop not in ("auto", "asyncio", "uvloop"):
        raise ConfigError(f"--loop expects auto, asyncio or uvloop, got {loop!r}")
    if loop == "asyncio":
        return {"use_uvloop": False}
    installed = importlib.util.find_spec("uvloop") is not None
    if loop == "uvloop" and not installed:
        raise ConfigError("--loop uvloop: uvloop is not installed (pip install uvloop)")
    return {"use_uvloop": installed}


async def run_gateway(settings: Settings, listen: HttpListen | None, profile: str | None = None) -> None:
    """Serve until a signal, or until the stdio client goes away (the VSM runs; no acquisition loop).

    Raises:
        ConfigError: ``profile`` does not exist.
    """
    if profile is not None:  # it exists (a typo should not serve nothing), said before anything starts
        async with SqliteStore.open(settings.database_path) as store:
            await ProfileBook(store).get(profile)
    async with Runtime.open(settings) as runtime, anyio.create_task_group() as tg:
        runtime.gateway.default_profile = profile
        # Everything built at start (catalog, search index, SDK models) lives as long as the
        # process: keep it out of the collector's generations, so a collection per few hundred
        # calls does not walk it (and stall a call).
        gc.freeze()
        tg.start_soon(_stop_on_signal, tg.cancel_scope)
        fleet = runtime.fleet
        warning = await anyio.to_thread.run_sync(
            fleet.confinement.warning, [u.spec for u in fleet.units.values()]
        )
        if warning is not None:
            print(f"vsm-mcp: {warning}", file=sys.stderr, flush=True)
        if listen is None:
            await serve_stdio(runtime.gateway)
            tg.cancel_scope.cancel()
        else:
            url = await start_http(runtime, listen, tg)
            print(f"vsm-mcp: MCP on {url}", file=sys.stderr, flush=True)


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            scope.cancel()
            return


if __name__ == "__main__":  # `python -m vsm_mcp.cli.serve --stdio`, before the root app wires it
    _standalone = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(_standalone)
    _standalone()
