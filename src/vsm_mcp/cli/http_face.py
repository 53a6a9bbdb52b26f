"""The HTTP face's flags and start, shared by ``vsm-mcp serve --http`` and ``vsm-mcp up``.

At start the admin token is created if there is none (``<state>/admin.token``,
0600) and the operator is told how to read it (``vsm-mcp token show``); its
value is never printed here or logged. A public bind prints what guards it
(`HttpListen.notices`). Everything goes to stderr: stdout may carry MCP.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import anyio
import anyio.abc
import typer

from vsm_mcp.core.ports import Store
from vsm_mcp.gateway.binding import HttpListen
from vsm_mcp.gateway.keyring import Keyring
from vsm_mcp.gateway.tokens import AdminTokenFile
from vsm_mcp.gateway.transport import MCP_PATH, parse_listen, serve_http
from vsm_mcp.runtime import Runtime
from vsm_mcp.store.lock import holder

#: Where a running gateway's HTTP face says where it listens (with its pid).
HTTP_FACE_KEY = "gateway.http_face"

PublicOption = Annotated[
    bool,
    typer.Option(
        "--public",
        help="Allow a bind beyond loopback (e.g. 0.0.0.0): the bearer token is then the only guard.",
    ),
]
AllowHostOption = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-host", metavar="NAME", help="Also answer requests for this Host name (repeatable)."
    ),
]
AllowOriginOption = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-origin",
        metavar="SCHEME://HOST[:PORT]",
        help="Also accept browser requests from this Origin (repeatable); others get 403.",
    ),
]
TlsCertOption = Annotated[
    Path | None,
    typer.Option("--tls-cert", metavar="FILE", help="Serve HTTPS with this PEM certificate chain."),
]
TlsKeyOption = Annotated[
    Path | None, typer.Option("--tls-key", metavar="FILE", help="The private key of --tls-cert (PEM).")
]


def http_listen(
    address: str,
    *,
    public: bool = False,
    allow_host: list[str] | None = None,
    allow_origin: list[str] | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> HttpListen:
    """The flags as an `HttpListen`, checked now (before anything starts).

    Raises:
        ConfigError: a bad address, a bind beyond loopback without --public, bad TLS or origins.
    """
    host, port = parse_listen(address)
    listen = HttpListen(
        host,
        port,
        public=public,
        allow_hosts=tuple(allow_host or ()),
        allow_origins=tuple(allow_origin or ()),
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    listen.check()
    return listen


def _say(line: str) -> None:
    print(f"vsm-mcp: {line}", file=sys.stderr, flush=True)


async def start_http(runtime: Runtime, listen: HttpListen, tg: anyio.abc.TaskGroup) -> str:
    """Make sure the admin token exists, serve ``listen`` in ``tg``; returns the face's URL."""
    state = runtime.settings.state_dir
    admin = AdminTokenFile.in_state(state)
    created = await anyio.to_thread.run_sync(admin.ensure)
    keyring = Keyring(runtime.store, admin)
    from vsm_mcp.web.api import build_app
    from vsm_mcp.web.auth import WebSessions

    web = build_app(runtime, WebSessions(keyring), secure_cookie=listen.scheme == "https")

    async def serve(*, task_status: anyio.abc.TaskStatus[int]) -> None:
        await serve_http(runtime.gateway, listen, keyring, web=web, task_status=task_status)

    port = await tg.start(serve)
    show = f"vsm-mcp --state-dir {state} token show"
    if created:
        _say(f"created the admin token ({admin.path}, mode 0600); print it with `{show}`")
    _say(f"clients send `Authorization: Bearer <token>` (admin: `{show}`; others: `vsm-mcp token create`)")
    for line in listen.notices(port):
        _say(line)
    host = listen.host if ":" not in listen.host else f"[{listen.host}]"
    url = f"{listen.scheme}://{host}:{port}{MCP_PATH}"
    _say(f"operator page: {listen.scheme}://{host}:{port}/ (log in with a token; admin: `{show}`)")
    # Commands run beside it (`dlq replay`) reach this gateway here, while its pid holds the lock.
    await runtime.store.kv_put(HTTP_FACE_KEY, {"url": url, "pid": os.getpid()})
    return url


async def running_face(store: Store, state_dir: Path) -> str | None:
    """The URL of the HTTP face of the gateway running on ``state_dir`` now, None when there is none."""
    record = await store.kv_get(HTTP_FACE_KEY)
    pid = await anyio.to_thread.run_sync(holder, state_dir)
    if not isinstance(record, dict) or pid is None or record.get("pid") != pid:
        return None  # no gateway, a stdio-only one, or the record of one that stopped
    url = record.get("url")
    return url if isinstance(url, str) else None
