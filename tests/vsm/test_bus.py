"""The bus: bounded lanes with back-pressure, urgent before routine, counted drops, clean close."""

from __future__ import annotations

import anyio
import pytest

from vsm_mcp.core.messages import Priority
from vsm_mcp.errors import BusClosedError, NoSuchInboxError
from vsm_mcp.vsm.bus import Bus

pytestmark = pytest.mark.anyio


async def test_a_full_lane_blocks_the_sender_until_the_receiver_drains() -> None:
    async with Bus(routine_capacity=2) as bus:
        inbox = bus.inbox("s3")
        await bus.publish("s3", 1)
        await bus.publish("s3", 2)
        third_sent = anyio.Event()

        async def send_third() -> None:
            await bus.publish("s3", 3)
            third_sent.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(send_third)
            await anyio.wait_all_tasks_blocked()
            assert not third_sent.is_set(), "the third send should wait for room"
            assert inbox.stats().routine.queued == 2
            first = await inbox.receive()
            with anyio.fail_after(1):
                await third_sent.wait()
        assert first.payload == 1
        assert [(await inbox.receive()).payload for _ in range(2)] == [2, 3]
        assert inbox.stats().routine.sent == 3


async def test_urgent_is_received_before_routine_whatever_the_send_order() -> None:
    async with Bus() as bus:
        inbox = bus.inbox("s5")
        for i in range(3):
            await bus.publish("s5", f"routine-{i}")
        await bus.publish("s5", "urgent-0", priority=Priority.URGENT)
        await bus.publish("s5", "routine-3")
        await bus.publish("s5", "urgent-1", priority=Priority.URGENT, sender="algedonic")
        got = [await inbox.receive() for _ in range(6)]
        assert [e.payload for e in got] == [
            "urgent-0",
            "urgent-1",
            "routine-0",
            "routine-1",
            "routine-2",
            "routine-3",
        ]
        assert got[1].sender == "algedonic"
        stats = inbox.stats()
        assert (stats.urgent.sent, stats.urgent.received, stats.routine.received) == (2, 2, 4)


async def test_a_waiting_receiver_wakes_on_a_send() -> None:
    async with Bus() as bus:
        inbox = bus.inbox("s1")
        got: list[object] = []

        async def receive_one() -> None:
            got.append((await inbox.receive()).payload)

        async with anyio.create_task_group() as tg:
            tg.start_soon(receive_one)
            await anyio.wait_all_tasks_blocked()
            await bus.publish("s1", "hello", priority=Priority.URGENT)
        assert got == ["hello"]


async def test_offer_drops_and_counts_when_the_lane_is_full() -> None:
    async with Bus(routine_capacity=3) as bus:
        inbox = bus.inbox("s1")
        results = [bus.offer("s1", i) for i in range(5)]
        assert results == [True, True, True, False, False]
        routine = inbox.stats().routine
        assert (routine.sent, routine.dropped, routine.queued, routine.capacity) == (3, 2, 3, 3)


async def test_close_lets_the_receiver_drain_then_ends_and_refuses_new_sends() -> None:
    async with Bus() as bus:
        inbox = bus.inbox("s4")
        await bus.publish("s4", "a")
        await bus.publish("s4", "b", priority=Priority.URGENT)
        inbox.close()
        with pytest.raises(BusClosedError):
            await bus.publish("s4", "c")
        assert [e.payload async for e in inbox] == ["b", "a"]
        with pytest.raises(anyio.EndOfStream):
            await inbox.receive()


async def test_a_sender_blocked_on_a_full_lane_fails_when_the_inbox_closes() -> None:
    async with Bus(routine_capacity=1) as bus:
        inbox = bus.inbox("s3")
        await bus.publish("s3", "fills the lane")
        errors: list[Exception] = []

        async def send_blocked() -> None:
            try:
                await bus.publish("s3", "never queued")
            except BusClosedError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(send_blocked)
            await anyio.wait_all_tasks_blocked()
            inbox.close()
        assert [str(e) for e in errors] == ["inbox 's3' closed while sending"]
        assert inbox.stats().routine.sent == 1
        assert [e.payload async for e in inbox] == ["fills the lane"]


async def test_publishing_to_an_unknown_component_names_it() -> None:
    async with Bus() as bus:
        with pytest.raises(NoSuchInboxError, match="'s9'"):
            await bus.publish("s9", "lost")


async def test_leaving_the_bus_closes_every_inbox() -> None:
    async with Bus() as bus:
        inbox = bus.inbox("s2")
    assert inbox.closed
    with pytest.raises(BusClosedError):
        bus.inbox("s2")


async def test_receive_nowait_takes_urgent_first_and_says_when_empty() -> None:
    async with Bus() as bus:
        inbox = bus.inbox("s5")
        await bus.publish("s5", "routine")
        await bus.publish("s5", "urgent", priority=Priority.URGENT)
        assert [inbox.receive_nowait().payload for _ in range(2)] == ["urgent", "routine"]
        with pytest.raises(anyio.WouldBlock):
            inbox.receive_nowait()
        inbox.close()
        with pytest.raises(anyio.EndOfStream):
            inbox.receive_nowait()
