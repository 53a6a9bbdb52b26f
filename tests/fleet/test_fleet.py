"""The fleet: routing to real units, dead letters, and many kill cycles without leftovers."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from vsm_mcp.errors import ConfigError, UnitUnavailableError, UnknownUnitError
from vsm_mcp.fleet.call import ToolCall
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.store import MemoryStore

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def _text(result: dict[str, Any]) -> str:
    return str(result["content"][0]["text"])


async def test_unit_failures_are_dead_lettered_and_replayable(probe_spec: Callable[..., ServerSpec]) -> None:
    store = MemoryStore()
    async with Fleet([probe_spec("p")], dead_letters=store) as fleet:
        with anyio.fail_after(20):
            unit = await fleet.wait_ready("p")
        assert list(fleet.routes.tools)[:2] == ["p__echo", "p__add"]
        pid = unit.pid
        assert pid is not None

        async def kill_soon() -> None:
            await anyio.sleep(0.3)
            os.kill(pid, signal.SIGKILL)

        async with anyio.create_task_group() as tg:
            tg.start_soon(kill_soon)
            with pytest.raises(UnitUnavailableError):
                await fleet.call_tool("p__sleep", {"seconds": 5})
        letters = await store.dead_letters()
        assert [(d.unit, d.tool, d.arguments, d.attempts) for d in letters] == [
            ("p", "sleep", {"seconds": 5}, 1)
        ]
        assert "went away during tools/call" in letters[0].error
        with anyio.fail_after(20):
            await fleet.wait_ready("p")
        replayed = await fleet.call_unit_tool("p", letters[0].tool, {"seconds": 0.01})
        assert _text(replayed) == "slept"
        with pytest.raises(ConfigError, match="already in the fleet"):
            await fleet.add(probe_spec("p"))
        with pytest.raises(UnknownUnitError):
            fleet.restart("nope")


async def test_fifty_kill_cycles_leave_no_zombie_or_orphan(
    probe_spec: Callable[..., ServerSpec], procs: Any
) -> None:
    cycles = 50
    spec = probe_spec(
        "p",
        "--grandchild",
        crash_loop_restarts=cycles + 10,
        flap_restarts=cycles + 10,  # kills on purpose: neither a crash loop nor flapping
        backoff_max_s=0.05,
    )
    spawned: list[int] = []
    async with Fleet([spec]) as fleet:
        unit = fleet.unit("p")
        for _ in range(cycles):
            with anyio.fail_after(20):
                await unit.wait_ready()
            pid = unit.pid
            lost = unit.session_lost
            assert pid is not None
            spawned.append(pid)
            spawned.append(int(_text(await fleet.call_tool("p__child_pid", {}))))
            os.kill(pid, signal.SIGKILL)
            with anyio.fail_after(20):
                await lost.wait()
        with anyio.fail_after(20):
            await unit.wait_ready()
        assert unit.stats.restarts == cycles
        last = unit.pid
        assert last is not None
        spawned.append(last)
    assert len(set(spawned)) == 2 * cycles + 1
    with anyio.fail_after(5):
        while survivors := [p for p in spawned if procs.alive(p)]:  # noqa: ASYNC110 - the kernel has no event
            await anyio.sleep(0.05)
    assert survivors == []
    assert procs.my_zombies() == []


async def test_settled_waits_for_each_first_start_whether_it_comes_up_or_not(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    broken = ServerSpec(name="broken", command="/nonexistent/server")
    async with Fleet([probe_spec("p"), broken]) as fleet:
        start = anyio.current_time()
        await fleet.settled(20.0)
        assert anyio.current_time() - start < 15.0  # not the bound: both first starts are over
        assert fleet.unit("p").state.value == "ready"
        assert "p__echo" in fleet.routes.tools
        assert fleet.unit("broken").first_start.is_set()
        assert fleet.unit("broken").state.value != "ready"


async def test_a_plain_call_of_a_stdio_unit_takes_its_lane_anything_else_its_session(
    probe_spec: Callable[..., ServerSpec], free_port: Callable[[], int]
) -> None:
    port = free_port()
    command = [probe_spec().command or "", *probe_spec().args, "--http-port", str(port)]
    web = ServerSpec(name="web", url=f"http://127.0.0.1:{port}/mcp", start_timeout_s=20.0)
    server = await anyio.open_process(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with Fleet([probe_spec("p"), web]) as fleet:
            with anyio.fail_after(30):
                await fleet.wait_ready("p")
                await fleet.wait_ready("web")
            unit = fleet.unit("p")
            lane = unit._live.lane if unit._live is not None else None
            assert lane is not None
            calls, sent = unit.stats.calls, lane.sent
            answer = await fleet.call(ToolCall.of("p__echo", {"text": "hi"}))
            assert isinstance(answer, dict) and _text(answer) == "hi"
            assert (unit.stats.calls, lane.sent) == (calls + 1, sent + 1)  # on the lane
            bad = await fleet.call(ToolCall.of("p__add", {"a": "x", "b": 1}))
            assert isinstance(bad, dict) and bad["isError"] is True  # the tool's own error, as it gave it
            # Params beyond a plain call's: the unit's SDK session takes it.
            odd = ToolCall("p__echo", {"name": "p__echo", "arguments": {"text": "odd"}, "x-extra": 1})
            result = await fleet.call(odd)
            assert isinstance(result, dict) and _text(result) == "odd"
            assert (unit.stats.calls, lane.sent) == (calls + 3, sent + 2)
            with pytest.raises(KeyError):
                await fleet.call(ToolCall.of("nope"))
            # An HTTP unit has no lane: the same call goes through its session.
            assert _text(await fleet.call_tool("web__echo", {"text": "over http"})) == "over http"
    finally:
        server.kill()
        await server.wait()


async def test_a_unit_with_a_concurrency_limit_takes_two_calls_at_a_time_from_two_clients(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    async with Fleet([probe_spec("p", max_concurrency=2)]) as fleet:
        with anyio.fail_after(30):
            await fleet.wait_ready("p")
        door = fleet.unit("p").door
        assert door is not None
        results: list[object] = []

        async def one(client: str) -> None:
            call = ToolCall("p__sleep", {"name": "p__sleep", "arguments": {"seconds": 0.2}}, client=client)
            results.append(await fleet.call(call))

        started = anyio.current_time()
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for client in ["a"] * 6 + ["b"] * 4:
                    tg.start_soon(one, client)
        took = anyio.current_time() - started
        assert all(isinstance(r, dict) and _text(r) == "slept" for r in results) and len(results) == 10
        stats = door.stats
        assert (stats.max_in_flight, stats.in_flight, stats.queued) == (2, 0, 0)
        assert (stats.waited, stats.max_queued) == (8, 8)
        assert took >= 5 * 0.2 * 0.9  # five waves of two: never more than two at the server
        [row] = fleet.status()
        assert row["door"]["limit"] == 2 and row["door"]["waited"] == 8


async def test_a_cancelled_call_frees_its_place_at_the_door_waiting_or_running(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    async with Fleet([probe_spec("p", max_concurrency=1)]) as fleet:
        with anyio.fail_after(30):
            await fleet.wait_ready("p")
        door = fleet.unit("p").door
        assert door is not None
        long = {"name": "p__sleep", "arguments": {"seconds": 30}}
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(fleet.call, ToolCall("p__sleep", long, client="a"))
                tg.start_soon(fleet.call, ToolCall("p__sleep", long, client="b"))
                await anyio.wait_all_tasks_blocked()  # both are at the door: admission does not wait
                assert (door.stats.in_flight, door.stats.queued) == (1, 1)
                tg.cancel_scope.cancel()  # both callers give up: one waiting, one running
        # Nothing is left in flight or queued. Which caller's cancellation lands first is up to the
        # event loop: if the running call's slot is freed first, the waiting call is admitted
        # (counted as having waited) and then given up; either way at most that one waited.
        assert (door.stats.in_flight, door.stats.queued) == (0, 0)
        assert door.stats.waited <= 1
        answer = await fleet.call(ToolCall.of("p__echo", {"text": "next"}))  # the door is open again
        assert isinstance(answer, dict) and _text(answer) == "next"
