"""Run the gateway's MCP server over stdio or streamable HTTP (endpoint ``/mcp``).

Both runners return when their transport ends (stdin closed, server shut
down) and are cancellable; the caller's task group owns them and the fleet,
so leaving it stops every downstream process. Signals are the caller's:
uvicorn's own signal capture is disabled, because it would re-raise SIGTERM
after shutdown and kill the process before the fleet is cleaned up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import anyio
import anyio.abc
import uvicorn

from vsm_mcp.errors import ConfigError
from vsm_mcp.gateway.server import Gateway
from vsm_mcp.gateway.stdio import stdio_streams

#: Endpoint path of the streamable HTTP transport.
MCP_PATH = "/mcp"


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` to a pair.

    Raises:
        ConfigError: not ``HOST:PORT`` with a port in 1-65535 (0 picks a free port).
    """
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--http expects HOST:PORT (e.g. 127.0.0.1:8765), got {value!r}")
    return host.strip("[]"), int(port)


async def serve_stdio(gateway: Gateway) -> None:
    """Speak MCP on this process's stdin/stdout until the client closes stdin."""
    server = gateway.server
    async with stdio_streams() as (read, write):
        await server.run(read, write, server.create_initialization_options())


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers (the gateway owns SIGTERM/SIGINT)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_http(
    gateway: Gateway,
    host: str,
    port: int,
    *,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve streamable HTTP at ``http://HOST:PORT/mcp``; reports the bound port when started."""
    app = gateway.server.streamable_http_app(streamable_http_path=MCP_PATH, host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on", access_log=False)
    server = _QuietServer(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        while not server.started:
            if server.should_exit:
                raise ConfigError(f"cannot listen on {host}:{port} (address in use or not allowed)")
            await anyio.sleep(0.01)
        bound = port
        for s in server.servers:
            for sock in s.sockets:
                bound = sock.getsockname()[1]
        task_status.started(bound)
        try:
            await anyio.sleep_forever()
        finally:
            server.should_exit = True
