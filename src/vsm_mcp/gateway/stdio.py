"""The gateway's stdin/stdout as the SDK's stream pair, over event-loop pipes and no relay tasks.

The SDK's default stdio transport reads and writes through worker threads (a
thread hop per line) and relays every message through a task and a memory
stream; a proxy pays that on every message. Here the client's lines are split
and parsed in the pipe's protocol callback and a send queues its line on the
spot (`vsm_mcp.fleet.wire`: the SDK's framing and parsing, minus the hops).
Invariants, as in the SDK: while serving, fd 0 is the null device and fd 1 is
stderr, so nothing else (a stray print, a child process) can read the
client's input or corrupt the wire; both are restored on exit. When stdin or
stdout is not a pipe, socket or terminal (e.g. a regular file), the SDK's own
threaded transport is used unchanged.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from typing import Any

import anyio
import mcp_types as types
from mcp.server.stdio import stdio_server

from vsm_mcp.fleet.wire import LineReader, LineWriter, read_pipe, write_pipe


@asynccontextmanager
async def stdio_streams() -> AsyncIterator[Any]:
    """Yield the SDK's (read, write) stream pair for this process's stdin/stdout."""
    saved_in, saved_out = os.dup(0), os.dup(1)
    try:
        async with AsyncExitStack() as stack:
            try:
                streams = await stack.enter_async_context(pipe_streams(os.dup(0), os.dup(1)))
            except (ValueError, OSError):
                streams = await stack.enter_async_context(stdio_server())
            else:
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.close(null)
                os.dup2(2, 1)
            yield streams
    finally:
        with suppress(OSError):
            os.dup2(saved_in, 0)
            os.dup2(saved_out, 1)
        for fd in (saved_in, saved_out):
            with suppress(OSError):
                os.close(fd)
        await anyio.lowlevel.checkpoint()


@asynccontextmanager
async def pipe_streams(
    read_fd: int,
    write_fd: int,
    *,
    expects: type[types.JSONRPCRequest] | type[types.JSONRPCResponse] = types.JSONRPCRequest,
) -> AsyncIterator[tuple[LineReader, LineWriter]]:
    """Yield the SDK's stream pair over two pipe (or socket, terminal) descriptors, which it owns;
    ``expects``: what mostly arrives (a server's face gets requests, a client answers).

    Raises:
        ValueError, OSError: a descriptor is not a pipe, socket or terminal (both are closed).
    """
    transports: list[asyncio.BaseTransport] = []
    files = [os.fdopen(read_fd, "rb", buffering=0), os.fdopen(write_fd, "wb", buffering=0)]
    try:
        read_transport, reader = await read_pipe(files[0], expects=expects)
        transports.append(read_transport)
        write_transport, write = await write_pipe(files[1])
        transports.append(write_transport)
    except BaseException:
        for transport in transports:
            transport.close()
        for file in files[len(transports) :]:
            file.close()
        raise
    try:
        yield reader, write
    finally:
        await write.aclose()  # lines still queued go out before the pipe closes
        for transport in transports:
            transport.close()
