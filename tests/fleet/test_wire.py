"""The session's own pipe streams: SDK framing, garbage as exceptions, one write per loop turn."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.shared.message import SessionMessage

from vsm_mcp.fleet.wire import HIGH_WATER_BYTES, QUEUE_HIGH, LineReader, LineWriter, read_pipe

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend(both_loops: tuple[str, dict[str, bool]]) -> tuple[str, dict[str, bool]]:
    return both_loops


@asynccontextmanager
async def pipe_reader(data: bytes, **options: Any) -> AsyncIterator[LineReader]:
    """A `LineReader` on a real pipe that already holds ``data`` and is closed after it."""
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    transport, reader = await read_pipe(os.fdopen(r, "rb", buffering=0), **options)
    try:
        yield reader
    finally:
        transport.close()


@asynccontextmanager
async def pipe_writer() -> AsyncIterator[tuple[asyncio.StreamWriter, int]]:
    """A StreamWriter over a real pipe, and the pipe's read end (non-blocking)."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(w, "wb", buffering=0)
    )
    try:
        yield asyncio.StreamWriter(transport, protocol, None, loop), r
    finally:
        transport.close()
        os.close(r)


def _request(i: int) -> SessionMessage:
    return SessionMessage(types.JSONRPCRequest(jsonrpc="2.0", id=i, method="ping"))


async def test_reader_parses_lines_skips_blank_ones_and_hands_garbage_over_as_exceptions() -> None:
    eofs: list[int] = []
    garbage: list[int] = []
    data = b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n\n   \nnot json\n{"jsonrpc":"2.0","id":1,"result":{}}'
    async with pipe_reader(
        data, on_eof=lambda: eofs.append(1), on_garbage=lambda: garbage.append(1)
    ) as stream:
        items = [item async for item in stream]
        with pytest.raises(anyio.EndOfStream):
            await stream.receive()
    assert len(items) == 3
    first, second, third = items
    assert isinstance(first, SessionMessage) and isinstance(first.message, types.JSONRPCRequest)
    assert first.message.method == "ping"
    assert isinstance(second, ValueError)
    assert isinstance(third, SessionMessage) and isinstance(third.message, types.JSONRPCResponse)
    assert garbage == [1]
    assert eofs == [1]  # once, though receive was called again after the end


@pytest.mark.parametrize(
    ("expects", "line", "kind"),
    [
        # Found by tests/gateway/test_fuzz_stdio.py: the stdio face answered this error response as a request.
        (
            types.JSONRPCRequest,
            b'{"jsonrpc":"2.0","id":7,"method":"ping","error":{"code":1,"message":"m"}}',
            "JSONRPCError",
        ),
        (
            types.JSONRPCRequest,
            b'{"jsonrpc":"2.0","id":7,"method":"ping","\\u0065rror":{"code":1,"message":"m"}}',
            "JSONRPCError",
        ),
        (types.JSONRPCRequest, b'{"jsonrpc":"2.0","id":7,"method":"ping","result":{}}', "JSONRPCRequest"),
        (
            types.JSONRPCResponse,
            b'{"jsonrpc":"2.0","id":7,"result":{},"error":{"code":1,"message":"m"}}',
            "JSONRPCError",
        ),
        (types.JSONRPCResponse, b'{"jsonrpc":"2.0","id":7,"result":{},"method":"ping"}', "JSONRPCRequest"),
        (
            types.JSONRPCResponse,
            b'{"jsonrpc":"2.0","id":7,"result":{},"\\u006dethod":"ping"}',
            "JSONRPCRequest",
        ),
    ],
)
async def test_a_line_is_the_kind_the_sdk_parses_it_as_whatever_the_reader_expects(
    expects: type[types.JSONRPCRequest] | type[types.JSONRPCResponse], line: bytes, kind: str
) -> None:
    assert type(types.jsonrpc_message_adapter.validate_json(line, by_name=False)).__name__ == kind
    async with pipe_reader(line + b"\n", expects=expects) as stream:
        (item,) = [item async for item in stream]
    assert isinstance(item, SessionMessage)
    assert type(item.message).__name__ == kind
    assert item.message.id == 7


async def test_a_line_over_the_limit_is_dropped_whole_and_reading_goes_on() -> None:
    eofs: list[int] = []
    garbage: list[int] = []
    ping = b'{"jsonrpc":"2.0","id":7,"method":"ping"}'
    data = b"x" * 200 + b"\n" + ping + b"\n" + b"y" * 300  # the second one ends without a newline
    async with pipe_reader(
        data, limit=64, on_eof=lambda: eofs.append(1), on_garbage=lambda: garbage.append(1)
    ) as stream:
        items = [item async for item in stream]
    assert [type(i).__name__ for i in items] == ["ValueError", "SessionMessage", "ValueError"]
    assert str(items[0]) == "a line over 64 bytes was dropped"
    assert isinstance(items[1], SessionMessage) and items[1].message.id == 7
    assert (garbage, eofs) == ([1, 1], [1])


async def test_lines_sent_in_one_loop_turn_go_out_in_one_write_in_order() -> None:
    async with pipe_writer() as (writer, r):
        stream = LineWriter(writer)
        for i in range(3):
            await stream.send(_request(i))
        with pytest.raises(BlockingIOError):
            os.read(r, 65536)  # nothing written yet: the flush runs after this turn
        with anyio.fail_after(5):
            await anyio.wait_readable(r)
        data = os.read(r, 65536)
    lines = data.decode().splitlines()
    assert [types.jsonrpc_message_adapter.validate_json(line).id for line in lines] == [0, 1, 2]  # type: ignore[union-attr]
    assert data.endswith(b"\n")


async def test_send_waits_while_the_pipe_is_full_and_resumes_once_drained() -> None:
    async with pipe_writer() as (writer, r):
        stream = LineWriter(writer)
        big = SessionMessage(
            types.JSONRPCResponse(jsonrpc="2.0", id=1, result={"text": "y" * (HIGH_WATER_BYTES * 4)})
        )
        done = anyio.Event()

        async def send() -> None:
            await stream.send(big)
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(send)
            await anyio.sleep(0.05)
            assert not done.is_set()  # a 256 KiB line does not fit the pipe: back-pressure
            received = b""
            with anyio.fail_after(5):
                while not received.endswith(b"\n"):
                    await anyio.wait_readable(r)
                    received += os.read(r, 1 << 20)
                await done.wait()
    assert len(received) > HIGH_WATER_BYTES * 4


async def test_send_after_close_or_a_broken_pipe_raises_and_reports_it() -> None:
    broken: list[int] = []
    async with pipe_writer() as (writer, _):
        stream = LineWriter(writer, on_broken=lambda: broken.append(1))
        await stream.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await stream.send(_request(1))
        stream = LineWriter(writer, on_broken=lambda: broken.append(1))
        writer.transport.close()
        with pytest.raises(anyio.BrokenResourceError):
            await stream.send(_request(2))
    assert broken == [1]


async def test_intercepted_messages_never_reach_the_session_and_order_is_kept() -> None:
    lines = b"".join(
        b'{"jsonrpc":"2.0","id":%d,"result":{}}\n' % i
        if i % 2
        else b'{"jsonrpc":"2.0","id":"x%d","result":{}}\n' % i
        for i in range(6)
    )
    taken: list[object] = []

    def intercept(message: types.JSONRPCMessage) -> bool:
        if isinstance(message, types.JSONRPCResponse) and isinstance(message.id, str):
            taken.append(message.id)
            return True
        return False

    r, w = os.pipe()
    transport, stream = await read_pipe(os.fdopen(r, "rb", buffering=0), expects=types.JSONRPCResponse)
    stream.intercept = intercept
    try:
        os.write(w, lines)
        os.close(w)
        left = [item async for item in stream]
    finally:
        transport.close()
    assert taken == ["x0", "x2", "x4"]
    assert [item.message.id for item in left if isinstance(item, SessionMessage)] == [1, 3, 5]


async def test_a_session_that_does_not_read_pauses_the_pipe_and_loses_nothing() -> None:
    count = QUEUE_HIGH * 3
    data = b"".join(b'{"jsonrpc":"2.0","id":%d,"method":"ping"}\n' % i for i in range(count))
    r, w = os.pipe()
    os.set_blocking(w, False)
    transport, stream = await read_pipe(os.fdopen(r, "rb", buffering=0))
    try:
        written = 0
        with anyio.fail_after(10):
            while written < len(data):
                try:
                    written += os.write(w, data[written:])
                except BlockingIOError:
                    # The pipe is full: the reader must have paused (nobody takes its messages).
                    await anyio.sleep(0.05)
                    if stream._paused:  # the back-pressure state under test
                        break
        assert stream._paused
        assert written < len(data)  # the writer was held back by the full pipe
        received = 0
        with anyio.fail_after(10):
            while received < count:
                item = await stream.receive()
                assert isinstance(item, SessionMessage)
                assert item.message.id == received  # type: ignore[union-attr]
                received += 1
                if written < len(data):
                    with suppress(BlockingIOError):
                        written += os.write(w, data[written:])
    finally:
        os.close(w)
        transport.close()
    assert received == count


async def test_a_failing_intercept_hands_the_message_to_the_session(caplog: pytest.LogCaptureFixture) -> None:
    def broken(message: types.JSONRPCMessage) -> bool:
        raise RuntimeError("bug in the hook")

    async with pipe_reader(b'{"jsonrpc":"2.0","id":3,"result":{}}\n') as stream:
        stream.intercept = broken
        items = [item async for item in stream]
    assert [item.message.id for item in items if isinstance(item, SessionMessage)] == [3]
    assert "intercepting JSONRPCResponse failed" in caplog.text


async def test_a_hook_installed_late_is_offered_the_messages_already_waiting() -> None:
    async with pipe_reader(
        b'{"jsonrpc":"2.0","id":"x1","result":{}}\n{"jsonrpc":"2.0","id":2,"result":{}}\n'
    ) as stream:
        await anyio.sleep(0.05)  # both lines arrive and wait for the session
        stream.intercept = lambda message: isinstance(message, types.JSONRPCResponse) and message.id == "x1"
        items = [item async for item in stream]
    assert [item.message.id for item in items if isinstance(item, SessionMessage)] == [2]
