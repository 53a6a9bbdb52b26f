"""The express lane on a real pipe: wire ids, answers, progress with the caller's token, timeouts, ends."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
import pytest

from vsm_mcp.errors import CallTimeoutError, UnitUnavailableError
from vsm_mcp.fleet.express import ExpressLane, LaneOutcome
from vsm_mcp.fleet.wire import HIGH_WATER_BYTES, write_pipe

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend(both_loops: tuple[str, dict[str, bool]]) -> tuple[str, dict[str, bool]]:
    return both_loops


class Wire:
    """What the lane wrote to the server's stdin (a real pipe), line by line."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""

    async def lines(self, n: int) -> list[dict[str, Any]]:
        with anyio.fail_after(5):
            while self.buffer.count(b"\n") < n:
                await anyio.wait_readable(self.fd)
                self.buffer += os.read(self.fd, 1 << 20)
        *done, self.buffer = self.buffer.split(b"\n", n)
        return [json.loads(line) for line in done]


@asynccontextmanager
async def lane(
    idle: float = 5.0, absolute: float = 10.0
) -> AsyncIterator[tuple[ExpressLane, Wire, list[int]]]:
    r, w = os.pipe()
    os.set_blocking(r, False)
    transport, writer = await write_pipe(os.fdopen(w, "wb", buffering=0))
    timeouts: list[int] = []
    try:
        yield (
            ExpressLane(
                "u",
                writer,
                idle_timeout_s=idle,
                call_timeout_s=absolute,
                on_timeout=lambda: timeouts.append(1),
            ),
            Wire(r),
            timeouts,
        )
    finally:
        transport.close()
        os.close(r)


def _answer(wire_id: str, text: str) -> types.JSONRPCResponse:
    return types.JSONRPCResponse(
        jsonrpc="2.0", id=wire_id, result={"content": [{"type": "text", "text": text}]}
    )


async def test_a_call_goes_out_under_a_string_id_and_its_answer_is_taken() -> None:
    outcomes: list[LaneOutcome] = []
    async with lane() as (express, wire, _):
        call = express.start({"name": "echo", "arguments": {"text": "hi"}}, outcomes.append)
        assert call is not None
        [sent] = await wire.lines(1)
        assert sent == {
            "jsonrpc": "2.0",
            "id": "vsm-x1",
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "hi"}},
        }
        # The SDK session's own answers (integer ids) and unknown ids are left to it.
        assert express.intercept(types.JSONRPCResponse(jsonrpc="2.0", id=1, result={})) is False
        assert express.intercept(_answer("vsm-x99", "stranger")) is False
        assert outcomes == []
        assert express.intercept(_answer("vsm-x1", "hi")) is True
        assert outcomes == [_answer("vsm-x1", "hi")]
        assert express.pending == 0
        assert express.intercept(_answer("vsm-x1", "again")) is False  # ended exactly once


async def test_a_server_error_answer_ends_the_call_with_it() -> None:
    outcomes: list[LaneOutcome] = []
    async with lane() as (express, _, _):
        express.start({"name": "add", "arguments": {}}, outcomes.append)
        error = types.JSONRPCError(
            jsonrpc="2.0", id="vsm-x1", error=types.ErrorData(code=-32602, message="bad arguments")
        )
        assert express.intercept(error) is True
    assert outcomes == [error]


async def test_progress_goes_back_with_the_callers_token_and_resets_the_idle_timeout() -> None:
    outcomes: list[LaneOutcome] = []
    progress: list[dict[str, Any]] = []
    async with lane(idle=0.3, absolute=5.0) as (express, wire, timeouts):
        params = {"name": "slow", "arguments": {}, "_meta": {"progressToken": 7, "trace": "t"}}
        express.start(params, outcomes.append, progress.append, token=7)
        [sent] = await wire.lines(1)
        assert sent["params"]["_meta"] == {"progressToken": "vsm-x1", "trace": "t"}
        for step in (1, 2, 3):  # 0.6 s in all, each step within the 0.3 s idle timeout
            await anyio.sleep(0.2)
            note = types.JSONRPCNotification(
                jsonrpc="2.0",
                method="notifications/progress",
                params={"progressToken": "vsm-x1", "progress": step, "total": 3},
            )
            assert express.intercept(note) is True
        assert express.intercept(_answer("vsm-x1", "done")) is True
    assert progress == [{"progressToken": 7, "progress": p, "total": 3} for p in (1, 2, 3)]
    assert outcomes == [_answer("vsm-x1", "done")]
    assert timeouts == []


async def test_no_answer_within_the_idle_timeout_is_a_timeout_and_the_server_is_told() -> None:
    outcomes: list[LaneOutcome] = []
    async with lane(idle=0.2, absolute=5.0) as (express, wire, timeouts):
        express.start({"name": "hang", "arguments": {}}, outcomes.append)
        _, cancel = await wire.lines(2)
        assert cancel == {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": "vsm-x1", "reason": "timed out: 0.2s without progress"},
        }
        [outcome] = outcomes
        assert isinstance(outcome, CallTimeoutError)
        assert str(outcome) == "server 'u' did not answer tools/call (0.2s without progress)"
        assert timeouts == [1]
        assert express.intercept(_answer("vsm-x1", "late")) is False  # a late answer is dropped


async def test_the_absolute_timeout_holds_however_much_progress_comes() -> None:
    outcomes: list[LaneOutcome] = []
    async with lane(idle=0.2, absolute=0.5) as (express, _, _):
        express.start({"name": "slow", "arguments": {}}, outcomes.append, lambda _: None, token="t")
        with anyio.fail_after(2):
            while not outcomes:
                await anyio.sleep(0.1)
                note = {"progressToken": "vsm-x1", "progress": 1}
                express.intercept(
                    types.JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params=note)
                )
    [outcome] = outcomes
    assert str(outcome) == "server 'u' did not answer tools/call (absolute timeout of 0.5s)"


async def test_one_timer_ends_each_call_at_its_own_deadline() -> None:
    """Calls started at different times, one kept alive by progress: each ends when it is due."""
    ended: dict[str, float] = {}
    loop_time = anyio.current_time

    def end(name: str) -> Callable[[LaneOutcome], None]:
        return lambda _: ended.setdefault(name, loop_time())

    async with lane(idle=0.3, absolute=5.0) as (express, _, timeouts):
        start = loop_time()
        express.start({"name": "a", "arguments": {}}, end("a"))
        kept = express.start({"name": "kept", "arguments": {}}, end("kept"), lambda _: None, token="t")
        assert kept is not None
        await anyio.sleep(0.15)
        express.start({"name": "b", "arguments": {}}, end("b"))
        with anyio.fail_after(3):
            while "b" not in ended:
                await anyio.sleep(0.05)
                note = {"progressToken": kept.wire_id, "progress": 1}
                express.intercept(
                    types.JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params=note)
                )
        assert 0.25 <= ended["a"] - start < 0.4
        assert 0.4 <= ended["b"] - start < 0.55
        assert "kept" not in ended and express.pending == 1  # progress came every 50 ms
        await anyio.sleep(0.45)  # no more progress: it is due 0.3 s after the last
        assert "kept" in ended
        assert timeouts == [1, 1, 1]


async def test_cancel_tells_the_server_and_ends_the_call_silently() -> None:
    outcomes: list[LaneOutcome] = []
    async with lane(idle=0.2) as (express, wire, timeouts):
        call = express.start({"name": "sleep", "arguments": {}}, outcomes.append)
        assert call is not None
        express.cancel(call, "user gave up")
        _, cancel = await wire.lines(2)
        assert cancel["params"] == {"requestId": "vsm-x1", "reason": "user gave up"}
        await anyio.sleep(0.3)  # past the idle timeout: the timer went with the call
    assert outcomes == []
    assert timeouts == []


async def test_close_ends_every_call_under_way_and_refuses_new_ones() -> None:
    outcomes: list[LaneOutcome] = []
    async with lane() as (express, _, _):
        express.start({"name": "a", "arguments": {}}, outcomes.append)
        express.start({"name": "b", "arguments": {}}, outcomes.append)
        express.close("connection closed")
        assert express.start({"name": "c", "arguments": {}}, outcomes.append) is None
    assert [type(o) for o in outcomes] == [UnitUnavailableError, UnitUnavailableError]
    assert str(outcomes[0]) == (
        "server 'u' went away during tools/call (connection closed); it is being restarted"
    )


async def test_a_congested_pipe_sends_nothing_and_leaves_the_call_to_the_full_path() -> None:
    async with lane() as (express, _, _):
        big = "x" * (4 * HIGH_WATER_BYTES)  # more than the pipe (64 KiB) and the high-water mark
        first = express.start({"name": "echo", "arguments": {"text": big}}, lambda _: None)
        assert first is not None
        # Nobody reads the pipe: what it cannot take waits in the writer, above the mark.
        await anyio.sleep(0.05)
        assert express.start({"name": "echo", "arguments": {}}, lambda _: None) is None
        assert express.pending == 1
