"""Newline-delimited JSON-RPC over asyncio pipes, as the SDK's stream pair, without relay tasks.

The SDK's transports put a task and a memory stream between the pipe and the
session in each direction; every message then costs two task switches (and
anyio's checkpoints) before anyone looks at it. A proxy pays that four times
per call. Here lines are split and parsed in the pipe's own protocol callback
(`LineReader`), where the express lane takes its messages at once; the session
takes the rest from a queue (`LineReader.receive`); and a send serialises and
queues the line on the spot (`LineWriter.send`). Framing and parsing are the SDK's
(``mcp_types.jsonrpc_message_adapter``, `SessionMessage`, ``model_dump_json``
with the SDK transports' options). Invariants:

* a line that is not JSON-RPC is handed to the session as an exception (the
  SDK's contract for garbage) and counted, never fatal; blank lines are skipped;
* a line is parsed first as the message kind the reader ``expects`` most (a
  server's answers, a client's requests), then, if it is not one, as any
  JSON-RPC message: the same typed message either way, half the work for the
  common kind; a line that names a member of a rival kind (`_RIVAL_MEMBERS`:
  ``{"id":1,"method":"x","error":{...}}`` is an error response to the SDK,
  not a request), or may spell one with a ``\\u`` escape, is parsed by the
  full union only;
* a parsed message the ``intercept`` hook takes (returns True for) never reaches
  the session: the express lane (`vsm_mcp.fleet.express`) takes its own
  responses and progress this way, in wire order with everything else; a hook
  that raises is logged and the message goes to the session (the pipe lives);
* `LineReader` ends (``EndOfStream``), once the messages before it are taken,
  at EOF or on a broken pipe, and then calls ``on_eof`` once; a line over the
  reader's limit is dropped whole as it streams in (never buffered past the
  limit) and handed to the session as garbage, and reading goes on;
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
import logging
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any, cast

import anyio
import mcp_types as types
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

logger = logging.getLogger(__name__)

#: A send waits for the pipe to drain while more than this is queued (asyncio's own default).
HIGH_WATER_BYTES = 64 * 1024
#: Longest line a reader takes (one JSON-RPC message); a longer one is dropped whole (memory stays
#: bounded by this) and reported as garbage, and the stream goes on.
MAX_LINE_BYTES = 64 * 1024 * 1024
#: Members by which the SDK's union tells another kind from the expected one: a line holding one is
#: parsed by the full union (the expected kind alone would take it, and answer an error response).
_RIVAL_MEMBERS: dict[type[types.JSONRPCMessage], tuple[bytes, ...]] = {
    types.JSONRPCRequest: (b'"error"',),
    types.JSONRPCResponse: (b'"error"', b'"method"'),
}
#: A reader stops reading its pipe while more messages than this wait for the session,
#: and reads on once fewer than `QUEUE_LOW` do.
QUEUE_HIGH = 1024
QUEUE_LOW = 256


class LineReader(asyncio.Protocol):
    """``ReadStream[SessionMessage | Exception]``, fed by the pipe's protocol callbacks.

    Connect it with `read_pipe`. Lines are split and parsed as the data arrives, in the
    loop's callback; the session takes what ``intercept`` left from a queue, which pauses
    the pipe above `QUEUE_HIGH` messages (back-pressure) and resumes it below `QUEUE_LOW`.
    """

    def __init__(
        self,
        *,
        limit: int = MAX_LINE_BYTES,
        on_eof: Callable[[], None] | None = None,
        on_garbage: Callable[[], None] | None = None,
        expects: type[types.JSONRPCRequest] | type[types.JSONRPCResponse] | None = None,
    ) -> None:
        self._limit = limit
        self._expects = expects
        self._on_eof = on_eof
        self._on_garbage = on_garbage
        self._buffer = bytearray()
        self._queue: deque[SessionMessage | Exception] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._transport: asyncio.ReadTransport | None = None
        self._paused = False
        self._closed = False  # no more data will come (EOF, broken pipe, aclose)
        self._discarding = False  # inside a line over the limit: drop until its newline
        self._ended = False  # the consumer was told (``on_eof`` called)
        self._intercept: Callable[[types.JSONRPCMessage], bool] | None = None

    @property
    def intercept(self) -> Callable[[types.JSONRPCMessage], bool] | None:
        """Called with each parsed message before the session sees it; True means "taken".

        Setting it also offers it the messages already waiting for the session (they may
        have arrived before the hook was installed).
        """
        return self._intercept

    @intercept.setter
    def intercept(self, hook: Callable[[types.JSONRPCMessage], bool] | None) -> None:
        self._intercept = hook
        if hook is not None and self._queue:
            waiting, self._queue = self._queue, deque()
            for item in waiting:
                if not (isinstance(item, SessionMessage) and self._taken(item.message)):
                    self._queue.append(item)

    # -- protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's pipe transports do not subclass asyncio's, but read the same way.
        self._transport = cast(asyncio.ReadTransport, transport)

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        if self._discarding:
            # The rest of a line over the limit: dropped up to its newline, never buffered.
            newline = data.find(b"\n")
            if newline < 0:
                return
            self._discarding = False
            data = data[newline + 1 :]
        buffer = self._buffer
        buffer += data
        if b"\n" in data:
            start = 0
            while not self._closed:
                end = buffer.find(b"\n", start)
                if end < 0:
                    break
                if end - start > self._limit:
                    self._oversized()
                else:
                    self._line(bytes(buffer[start:end]))
                start = end + 1
            del buffer[:start]
        if len(buffer) > self._limit:
            # A line over the limit: dropped whole (its rest as it comes), and the stream goes on.
            buffer.clear()
            self._discarding = True
            self._oversized()
        if self._queue:
            self._wake()  # only then: a line the hook took is no news to the session
        if len(self._queue) > QUEUE_HIGH and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def eof_received(self) -> bool:
        self._finish()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    def _finish(self) -> None:
        """The pipe ended: a last line without its newline still counts (as readline has it)."""
        if not self._closed and 0 < len(self._buffer) <= self._limit:
            self._line(bytes(self._buffer))
        self._close()

    def _oversized(self) -> None:
        """A line longer than the limit: counted as garbage and reported to the session as one."""
        if self._on_garbage is not None:
            self._on_garbage()
        self._queue.append(ValueError(f"a line over {self._limit} bytes was dropped"))

    def _line(self, line: bytes) -> None:
        if not line or line.isspace():
            return
        try:
            message = self._parse(line)
        except ValueError as exc:
            if self._on_garbage is not None:
                self._on_garbage()
            self._queue.append(exc)
            return
        if not self._taken(message):
            self._queue.append(SessionMessage(message))

    def _taken(self, message: types.JSONRPCMessage) -> bool:
        if self._intercept is None:
            return False
        try:
            return self._intercept(message)
        except Exception:  # a bug there must not take the pipe down: the session gets it
            logger.exception("intercepting %s failed; handing it to the session", type(message).__name__)
            return False

    def _parse(self, line: bytes) -> types.JSONRPCMessage:
        if self._expects is not None and not self._rival(line):
            try:
                return self._expects.model_validate_json(line, by_name=False)
            except ValidationError:
                pass  # another kind of message (or garbage): the full union says which
        return types.jsonrpc_message_adapter.validate_json(line, by_name=False)

    def _rival(self, line: bytes) -> bool:
        """Whether ``line`` may hold a member of another kind than the expected one."""
        assert self._expects is not None
        return b"\\u" in line or any(member in line for member in _RIVAL_MEMBERS[self._expects])

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self._buffer.clear()
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- stream --------------------------------------------------------------------
    async def receive(self) -> SessionMessage | Exception:
        while not self._queue:
            if self._closed:
                self._tell_end()
                raise anyio.EndOfStream
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._queue.popleft()
        if self._paused and len(self._queue) < QUEUE_LOW and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return item

    async def aclose(self) -> None:
        self._queue.clear()
        self._close()
        self._tell_end()

    def _tell_end(self) -> None:
        if not self._ended:
            self._ended = True
            if self._on_eof is not None:
                self._on_eof()

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


async def read_pipe(pipe: Any, **options: Any) -> tuple[asyncio.ReadTransport, LineReader]:
    """Connect a `LineReader` (``options`` are its keywords) to ``pipe``, a file object over a
    pipe, socket or terminal descriptor; the transport owns and closes it.

    Raises:
        ValueError, OSError: the descriptor is not one the event loop can watch.
    """
    transport, reader = await asyncio.get_running_loop().connect_read_pipe(
        lambda: LineReader(**options), pipe
    )
    return transport, reader


async def write_pipe(pipe: Any, **options: Any) -> tuple[asyncio.WriteTransport, LineWriter]:
    """A `LineWriter` (``options`` are its keywords) on ``pipe``, a file object over a pipe,
    socket or terminal descriptor; the transport owns and closes it.

    Raises:
        ValueError, OSError: the descriptor is not one the event loop can watch.
    """
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, pipe)
    return transport, LineWriter(asyncio.StreamWriter(transport, protocol, None, loop), **options)


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
        if not self.send_nowait(item.message):
            raise anyio.BrokenResourceError
        if self.congested:
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
