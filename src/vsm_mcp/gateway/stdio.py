"""The gateway's stdin/stdout, served by the SDK's `stdio_server` over event-loop pipes.

The SDK's default stdio transport reads and writes through worker threads (a
thread hop per line); a proxy pays that on every message, so here the same
SDK transport (its framing and parsing) is given lines from asyncio pipe
streams instead. Invariants, as in the SDK: while serving, fd 0 is the null
device and fd 1 is stderr, so nothing else (a stray print, a child process)
can read the client's input or corrupt the wire; both are restored on exit.
When stdin or stdout is not a pipe, socket or terminal (e.g. a regular
file), the SDK's own threaded transport is used unchanged.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any, cast

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

#: Longest line accepted from the client (one JSON-RPC message).
MAX_LINE_BYTES = 64 * 1024 * 1024

Streams = tuple[MemoryObjectReceiveStream[SessionMessage | Exception], MemoryObjectSendStream[SessionMessage]]


class _Lines:
    """``async for line in stdin`` over an asyncio reader."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        try:
            line = await self._reader.readline()
        except (ValueError, ConnectionError):
            raise StopAsyncIteration from None
        if not line:
            raise StopAsyncIteration
        return line.decode("utf-8", errors="replace")


class _Out:
    """``await stdout.write(text)`` / ``await stdout.flush()`` over an asyncio writer."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, text: str) -> None:
        self._writer.write(text.encode("utf-8"))

    async def flush(self) -> None:
        await self._writer.drain()


@asynccontextmanager
async def stdio_streams() -> AsyncIterator[Any]:
    """Yield the SDK's (read, write) stream pair for this process's stdin/stdout."""
    loop = asyncio.get_running_loop()
    wire_in, wire_out = os.dup(0), os.dup(1)
    saved_in, saved_out = os.dup(0), os.dup(1)
    transports: list[asyncio.BaseTransport] = []
    try:
        reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
        try:
            read_transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(wire_in, "rb", buffering=0)
            )
            transports.append(read_transport)
            write_transport, write_protocol = await loop.connect_write_pipe(
                asyncio.streams.FlowControlMixin, os.fdopen(wire_out, "wb", buffering=0)
            )
            transports.append(write_transport)
        except (ValueError, OSError):
            for transport in transports:
                transport.close()
            async with stdio_server() as streams:
                yield streams
            return
        writer = asyncio.StreamWriter(write_transport, write_protocol, reader, loop)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(2, 1)
        async with stdio_server(stdin=cast(Any, _Lines(reader)), stdout=cast(Any, _Out(writer))) as streams:
            yield streams
    finally:
        for transport in transports:
            transport.close()
        with suppress(OSError):
            os.dup2(saved_in, 0)
            os.dup2(saved_out, 1)
        for fd in (saved_in, saved_out):
            with suppress(OSError):
                os.close(fd)
        await anyio.lowlevel.checkpoint()
