"""A loopback proxy that adds the gateway's bearer token, for clients that cannot send one.

The MCP conformance suite (``conformance server --url``) has no option for
request headers, and `vsm-mcp serve --http` answers 401 to any request
without ``Authorization: Bearer <token>``. Run the suite against this proxy
instead: it forwards every request to the gateway unchanged but for

* the ``Authorization`` header, set to the token from ``$VSM_MCP_TOKEN`` (or
  ``--token-file``, e.g. the state dir's ``admin.token``);
* a ``Host`` or ``Origin`` naming the proxy itself, rewritten to name the
  gateway (what a reverse proxy in front of it would send); any other
  ``Host``/``Origin`` (the suite's DNS-rebinding probes) passes unchanged, so
  the gateway's own checks are what the suite sees.

Responses (SSE streams included) come back as the gateway sent them. It
prints ``listening http://127.0.0.1:PORT/mcp`` once it accepts connections.

    VSM_MCP_TOKEN=$(vsm-mcp token show) python tests/conformance/bearer_proxy.py \\
        --upstream http://127.0.0.1:8765/mcp --listen 127.0.0.1:0
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

#: Headers of one hop only (RFC 9110 §7.6.1), plus the ones the proxy sets itself.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
)
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def proxy_app(upstream: str, token: str, own_port: int) -> Starlette:
    """The ASGI app forwarding to ``upstream`` with ``token`` (see the module docstring)."""
    target = urlsplit(upstream)
    upstream_port = target.port or 80
    client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=10.0))

    def rewrite(value: str, *, scheme: str = "") -> str:
        for name in LOOPBACK:
            if value == f"{scheme}{name}:{own_port}":
                return f"{scheme}{name}:{upstream_port}"
        return value

    async def forward(request: Request) -> StreamingResponse:
        headers = [(k, v) for k, v in request.headers.items() if k not in HOP_BY_HOP | {"authorization"}]
        headers = [
            (k, rewrite(v) if k == "host" else rewrite(v, scheme="http://") if k == "origin" else v)
            for k, v in headers
        ]
        headers.append(("authorization", f"Bearer {token}"))
        body = await request.body()
        outgoing = client.build_request(
            request.method, upstream, params=request.query_params, headers=headers, content=body
        )
        response = await client.send(outgoing, stream=True)

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
            finally:  # the client went away (or the stream ended): let the gateway's stream go too
                await response.aclose()

        kept = {k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP}
        return StreamingResponse(
            relay(),
            status_code=response.status_code,
            headers=kept,
            background=BackgroundTask(response.aclose),
        )

    methods = ["GET", "POST", "DELETE", "OPTIONS", "PUT", "PATCH", "HEAD"]
    return Starlette(routes=[Route(target.path or "/", forward, methods=methods)])


async def serve(upstream: str, token: str, host: str, port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    own_port = int(sock.getsockname()[1])
    config = uvicorn.Config(proxy_app(upstream, token, own_port), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        while not server.started:  # noqa: ASYNC110 - uvicorn sets a flag, it has no event
            await anyio.sleep(0.01)
        print(f"listening http://{host}:{own_port}{urlsplit(upstream).path}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Forward to the gateway with its bearer token.")
    parser.add_argument("--upstream", required=True, help="the gateway's URL, e.g. http://127.0.0.1:8765/mcp")
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT to listen on (port 0: any free)")
    parser.add_argument("--token-file", type=Path, help="read the token here instead of $VSM_MCP_TOKEN")
    args = parser.parse_args()
    token = args.token_file.read_text().strip() if args.token_file else os.environ.get("VSM_MCP_TOKEN", "")
    if not token:
        sys.exit("bearer_proxy: no token (set VSM_MCP_TOKEN or pass --token-file)")
    host, _, port = args.listen.rpartition(":")
    anyio.run(serve, args.upstream, token, host, int(port))


if __name__ == "__main__":
    main()
