"""Newline-delimited JSON-RPC over asyncio pipes, as the SDK's stream pair, without relay tasks.

The SDK's transports put a task and a memory stream between the pipe and the
session in each direction; every message then costs two task switches (and
anyio's checkpoints) before anyone looks at it. A proxy pays that four times
per call. Here the session's own receive loop reads and parses the line
(`LineReader.receive`), and a send serialises and queues the line on the spot
(`LineWriter.send`). Framing and parsing are the SDK's
(``mcp_types.jsonrpc_message_adapter``, `SessionMessage`, ``model_dump_json``
with the SDK transports' options). Invariants:

* a line that is not JSON-RPC is handed to the session as an exception (the
  SDK's contract for garbage) and counted, never fatal; blank lines are skipped;
* a line is parsed first as the message kind the reader ``expects`` most (a
  server's answers, a client's requests), then, if it is not one, as any
  JSON-RPC message: the same typed message either way, half the work for the
  common kind;
* a parsed message the ``intercept`` hook takes (returns True for) never reaches
  the session: the express lane (`vsm_mcp.fleet.express`) takes its own
  responses and progress this way, in wire order with everything else;
* `LineReader` ends (``EndOfStream``) at EOF, on a line over the reader's
  limit, or on a broken pipe, and then calls ``on_eof`` once;
* every line a `LineWriter` accepted is written whole and in send order;
  lines sent in the same event-loop turn go out in one write (one syscall,
  one wake-up of the reader), flushed by a callback, not a task;
* a send blocks only while the pipe's buffer is above `HIGH_WATER_BYTES`
  (back-pressure); after the pipe broke (``on_broken`` is then called) or the
  writer closed, it raises ``BrokenResourceError`` / ``ClosedResourceError``
  like a memory stream; `LineWriter.send_nowait` queues without waiting (for
  callbacks, which cannot wait) and says whether the line was taken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType

import anyio
import mcp_types as types
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

#: A send waits for the pipe to drain while more than this is queued (asyncio's own default).
HIGH_WATER_BYTES = 64 * 1024


class LineReader:
    """``ReadStream[SessionMessage | Exception]`` over an asyncio `StreamReader`."""

    __slots__ = ("_eof", "_expects", "_on_eof", "_on_garbage", "_reader", "intercept")

    def __init__(
        self,
        reader: asyncio.StreamReader,
        *,
        on_eof: Callable[[], None] | None = None,
        on_garbage: Callable[[], None] | None = None,
        expects: type[types.JSONRPCRequest] | type[types.JSONRPCResponse] | None = None,
    ) -> None:
        self._reader = reader
        self._expects = expects
        self._on_eof = on_eof
        self._on_garbage = on_garbage
        self._eof = False
        #: Called with each parsed message before the session sees it; True means "taken".
        self.intercept: Callable[[types.JSONRPCMessage], bool] | None = None

    async def receive(self) -> SessionMessage | Exception:
        while not self._eof:
            try:
                line = await self._reader.readline()
            except (ValueError, ConnectionError):
                line = b""  # a line over the limit or a broken pipe: the stream cannot continue
            if not line:
                self._end()
                break
            if line.isspace():
                continue
            try:
                message = self._parse(line)
            except ValueError as exc:
                if self._on_garbage is not None:
                    self._on_garbage()
                return exc
            if self.intercept is not None and self.intercept(message):
                continue
            return SessionMessage(message)
        raise anyio.EndOfStream

    def _parse(self, line: bytes) -> types.JSONRPCMessage:
        if self._expects is not None:
            try:
                return self._expects.model_validate_json(line, by_name=False)
            except ValidationError:
                pass  # another kind of message (or garbage): the full union says which
        return types.jsonrpc_message_adapter.validate_json(line, by_name=False)

    def _end(self) -> None:
        if not self._eof:
            self._eof = True
            if self._on_eof is not None:
                self._on_eof()

    async def aclose(self) -> None:
        self._end()

    def __aiter__(self) -> LineReader:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> LineReader:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class LineWriter:
    """``WriteStream[SessionMessage]`` over an asyncio `StreamWriter`."""

    __slots__ = ("_closed", "_loop", "_on_broken", "_queued", "_queued_bytes", "_writer")

    def __init__(self, writer: asyncio.StreamWriter, *, on_broken: Callable[[], None] | None = None) -> None:
        self._writer = writer
        self._on_broken = on_broken
        self._loop = asyncio.get_running_loop()
        self._queued: list[bytes] = []
        self._queued_bytes = 0
        self._closed = False

    @property
    def congested(self) -> bool:
        """More than `HIGH_WATER_BYTES` waits to go out (a `send` would wait)."""
        return self._queued_bytes + self._writer.transport.get_write_buffer_size() > HIGH_WATER_BYTES

    def send_nowait(self, message: types.JSONRPCMessage) -> bool:
        """Queue ``message`` without waiting for the pipe to drain; False when the writer is
        closed or the pipe broke (the message is then dropped)."""
        if self._closed:
            return False
        if self._writer.transport.is_closing():
            self._broken()
            return False
        self._queue(message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n")
        return True

    def _queue(self, line: bytes) -> None:
        if not self._queued:
            self._loop.call_soon(self._flush)
        self._queued.append(line)
        self._queued_bytes += len(line)

    async def send(self, item: SessionMessage, /) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        transport = self._writer.transport
        if transport.is_closing():
            self._broken()
            raise anyio.BrokenResourceError
        self._queue(item.message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n")
        if self._queued_bytes + transport.get_write_buffer_size() > HIGH_WATER_BYTES:
            self._flush()
            try:
                await self._writer.drain()
            except ConnectionError:
                self._broken()
                raise anyio.BrokenResourceError from None

    def _flush(self) -> None:
        if self._queued:
            data = b"".join(self._queued)
            self._queued.clear()
            self._queued_bytes = 0
            transport = self._writer.transport
            if transport.is_closing():
                self._broken()
            else:
                transport.write(data)

    def _broken(self) -> None:
        if self._on_broken is not None:
            self._on_broken()

    async def aclose(self) -> None:
        self._flush()
        self._closed = True

    async def __aenter__(self) -> LineWriter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.aclose()
