"""The bounded, session-scoped event log behind the HTTP face's SSE resumability."""

from __future__ import annotations

import pytest
from mcp.server.streamable_http import EventMessage
from mcp_types import JSONRPCNotification

from vsm_mcp.gateway.events import MAX_EVENTS, MAX_EVENTS_PER_STREAM, EventLog, SessionEvents

pytestmark = pytest.mark.anyio


def _note(n: int) -> JSONRPCNotification:
    return JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params={"progress": n})


async def _replay(view: SessionEvents, last: str) -> tuple[str | None, list[tuple[str | None, int]]]:
    sent: list[EventMessage] = []

    async def send(event: EventMessage) -> None:
        sent.append(event)

    stream = await view.replay_events_after(last, send)
    out = []
    for e in sent:
        assert isinstance(e.message, JSONRPCNotification)
        assert e.message.params is not None
        out.append((e.event_id, e.message.params["progress"]))
    return stream, out


async def test_replay_sends_the_later_events_of_the_same_stream_without_priming() -> None:
    view = EventLog().session()
    priming = await view.store_event("7", None)
    first = await view.store_event("7", _note(1))
    await view.store_event("_GET_stream", _note(99))
    await view.store_event("7", _note(2))
    await view.store_event("7", _note(3))
    assert (priming, first) == ("1", "2")
    assert await _replay(view, priming) == ("7", [("2", 1), ("4", 2), ("5", 3)])
    assert await _replay(view, first) == ("7", [("4", 2), ("5", 3)])
    assert await _replay(view, "5") == ("7", [])
    assert await _replay(view, "3") == ("_GET_stream", [])


async def test_unknown_or_malformed_ids_replay_nothing() -> None:
    view = EventLog().session()
    await view.store_event("1", _note(1))
    assert await _replay(view, "2") == (None, [])
    assert await _replay(view, "0") == (None, [])
    assert await _replay(view, "abc") == (None, [])
    assert await _replay(view, "-1") == (None, [])


async def test_sessions_with_the_same_request_ids_never_see_each_others_events() -> None:
    log = EventLog()
    a, b = log.session(), log.session()
    a_first = await a.store_event("1", _note(10))
    b_first = await b.store_event("1", _note(20))
    await a.store_event("1", _note(11))
    await b.store_event("1", _note(21))
    assert await _replay(a, a_first) == ("1", [("3", 11)])
    assert await _replay(b, b_first) == ("1", [("4", 21)])
    # B presenting A's event id (guessed or stolen) gets nothing of A's.
    assert await _replay(b, a_first) == (None, [])


async def test_a_stream_keeps_only_its_newest_events() -> None:
    log = EventLog(per_stream=3, total=100)
    view = log.session()
    ids = [await view.store_event("1", _note(n)) for n in range(5)]
    assert len(log) == 3
    assert await _replay(view, ids[0]) == (None, [])  # evicted: the client cannot resume from it
    assert await _replay(view, ids[2]) == ("1", [("4", 3), ("5", 4)])


async def test_the_whole_log_stays_bounded_and_evicts_oldest_first() -> None:
    log = EventLog(per_stream=10, total=4)
    view = log.session()
    ids = [await view.store_event(str(n % 3), _note(n)) for n in range(7)]
    assert len(log) == 4
    assert log.streams == 3
    assert await _replay(view, ids[2]) == (None, [])
    assert await _replay(view, ids[3]) == ("0", [("7", 6)])
    assert await _replay(view, ids[4]) == ("1", [])


def test_default_bounds_hold_under_a_long_run() -> None:
    log = EventLog()
    many = 3 * MAX_EVENTS
    for n in range(many):
        log.append(f"s/{n % 20}", None)
    assert len(log) == MAX_EVENTS
    assert log.streams == 20  # 20 x 256 per stream would exceed the total
    log2 = EventLog()
    for _ in range(2 * MAX_EVENTS_PER_STREAM):
        log2.append("one", None)
    assert len(log2) == MAX_EVENTS_PER_STREAM


async def test_the_log_stays_within_its_byte_budget_however_large_the_messages() -> None:
    log = EventLog(per_stream=100, total=100, total_bytes=1000)
    view = log.session()
    big = JSONRPCNotification(
        jsonrpc="2.0", method="notifications/progress", params={"progress": 0, "x": "y" * 300}
    )
    size = len(big.model_dump_json(by_alias=True, exclude_unset=True))
    ids = [await view.store_event("1", big) for _ in range(5)]
    assert len(log) == 1000 // size == 2  # the newest that fit
    assert log.bytes == 2 * size
    assert await _replay(view, ids[2]) == (None, [])  # evicted
    assert [event_id for event_id, _ in (await _replay(view, ids[3]))[1]] == [ids[4]]
    other = await view.store_event("2", _note(7))
    huge = JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params={"x": "y" * 2000})
    too_big = await view.store_event("1", huge)
    assert await _replay(view, too_big) == (None, [])  # larger than the budget: not kept ...
    assert await _replay(view, ids[4]) == (None, [])  # ... nor what a replay would skip it from
    assert await _replay(view, other) == ("2", [])  # another stream keeps its events
    assert len(log) == 1 and log.streams == 1


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        EventLog(per_stream=0)
    with pytest.raises(ValueError, match="positive"):
        EventLog(total_bytes=0)
