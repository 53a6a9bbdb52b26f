"""A unit against real probe-server processes: calls, faults, supervision."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import anyio
import mcp_types as types
import pytest

from vsm_mcp.core.messages import AlgedonicSignal, Decision, Severity, Valence
from vsm_mcp.errors import CallTimeoutError, UnitError, UnitUnavailableError
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.fleet.unit import Unit
from vsm_mcp.store.memory import MemoryStore
from vsm_mcp.vsm.events import UnitState

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


class Signals:
    def __init__(self) -> None:
        self.received: list[AlgedonicSignal] = []
        self.pained = anyio.Event()
        #: Set at the first signal of each kind.
        self.kinds: dict[str, anyio.Event] = {}
        self.catalogs = 0
        self.decisions: list[Decision] = []

    def kind(self, kind: str) -> anyio.Event:
        return self.kinds.setdefault(kind, anyio.Event())

    async def unit_catalog_changed(self, unit: Unit) -> None:
        self.catalogs += 1

    async def unit_notification(self, unit: Unit, notification: types.ServerNotification) -> None:
        return None

    async def unit_request(self, unit: Unit, request: Any) -> Any:
        return types.ErrorData(code=types.INVALID_REQUEST, message="none")

    async def unit_signal(self, signal: AlgedonicSignal) -> None:
        self.received.append(signal)
        self.pained.set()
        self.kind(signal.kind).set()

    async def unit_decided(self, unit: Unit, decision: Decision) -> None:
        self.decisions.append(decision)


def _text(result: dict[str, Any]) -> str:
    return str(result["content"][0]["text"])


async def _call(unit: Unit, tool: str, retry_safe: bool = False, **arguments: Any) -> dict[str, Any]:
    return await unit.request("tools/call", {"name": tool, "arguments": arguments}, retry_safe=retry_safe)


async def test_calls_go_through_one_persistent_process(probe_spec: Callable[..., ServerSpec]) -> None:
    observer = Signals()
    unit = Unit(probe_spec("p", "--garbage"), observer)
    async with anyio.create_task_group() as tg:
        await tg.start(unit.run)
        with anyio.fail_after(20):
            await unit.wait_ready()
        assert [t["name"] for t in unit.catalog.tools][:3] == ["echo", "add", "pid"]
        assert observer.catalogs == 1
        pids = {_text(await _call(unit, "pid")) for _ in range(20)}
        assert pids == {str(unit.pid)}
        assert _text(await _call(unit, "echo", text="hi")) == "hi"
        assert unit.garbage_lines >= 2  # before the handshake and during echo; the session survived
        bad = await _call(unit, "add", a="x", b=2)
        assert bad["isError"] is True
        assert "valid integer" in _text(bad)  # the server's own validation error, unchanged
        tg.cancel_scope.cancel()
    assert unit.state is UnitState.STOPPED


async def test_sigkill_mid_call_fails_fast_and_the_unit_comes_back(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    unit = Unit(probe_spec("p"))
    async with anyio.create_task_group() as tg:
        await tg.start(unit.run)
        with anyio.fail_after(20):
            await unit.wait_ready()
        old_pid = unit.pid
        assert old_pid is not None
        failed_after: list[float] = []

        async def doomed_call() -> None:
            start = time.monotonic()
            with pytest.raises(UnitUnavailableError, match="went away during tools/call"):
                await _call(unit, "sleep", seconds=30)
            failed_after.append(time.monotonic() - start)

        async with anyio.create_task_group() as calls:
            calls.start_soon(doomed_call)
            await anyio.sleep(0.3)
            killed_at = time.monotonic()
            os.kill(old_pid, signal.SIGKILL)
        assert failed_after[0] < 2.0 + 0.3
        with anyio.fail_after(5):
            result = await _call(unit, "pid", retry_safe=True)
        assert time.monotonic() - killed_at < 5.0
        assert _text(result) != str(old_pid)
        assert unit.stats.restarts == 1
        tg.cancel_scope.cancel()


async def test_read_only_call_is_retried_transparently(probe_spec: Callable[..., ServerSpec]) -> None:
    unit = Unit(probe_spec("p"))
    async with anyio.create_task_group() as tg:
        await tg.start(unit.run)
        with anyio.fail_after(20):
            await unit.wait_ready()
        pid = unit.pid
        assert pid is not None

        async def kill_soon() -> None:
            await anyio.sleep(0.3)
            os.kill(pid, signal.SIGKILL)

        tg.start_soon(kill_soon)
        with anyio.fail_after(10):
            result = await unit.request(
                "tools/call", {"name": "slow", "arguments": {"steps": 3, "step_s": 0.2}}, retry_safe=True
            )
        assert _text(result) == "done after 3 steps"
        assert unit.stats.retries == 1
        tg.cancel_scope.cancel()


async def test_a_hung_server_times_out_and_is_restarted(probe_spec: Callable[..., ServerSpec]) -> None:
    unit = Unit(probe_spec("p", idle_timeout_s=1.0, call_timeout_s=5.0))
    async with anyio.create_task_group() as tg:
        await tg.start(unit.run)
        with anyio.fail_after(20):
            await unit.wait_ready()
        old_pid = unit.pid
        start = time.monotonic()
        with pytest.raises(CallTimeoutError, match=r"did not answer tools/call \(1s without progress\)"):
            await _call(unit, "hang")
        assert 0.9 < time.monotonic() - start < 2.0
        with anyio.fail_after(10):
            result = await _call(unit, "pid", retry_safe=True)
        assert _text(result) != str(old_pid)
        assert unit.stats.timeouts == 1
        assert unit.stats.restarts == 1
        tg.cancel_scope.cancel()


async def test_progress_resets_the_idle_clock(probe_spec: Callable[..., ServerSpec]) -> None:
    unit = Unit(probe_spec("p", idle_timeout_s=0.5, call_timeout_s=10.0))
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with anyio.create_task_group() as tg:
        await tg.start(unit.run)
        with anyio.fail_after(20):
            await unit.wait_ready()
        # 5 steps of 0.3 s = 1.5 s in all, three times the idle timeout, but never idle 0.5 s.
        result = await unit.request(
            "tools/call",
            {"name": "slow", "arguments": {"steps": 5, "step_s": 0.3}},
            retry_safe=False,
            on_progress=on_progress,
        )
        assert _text(result) == "done after 5 steps"
        assert seen == [(i, 5.0, f"step {i}") for i in range(1, 6)]
        tg.cancel_scope.cancel()


async def test_crash_at_start_becomes_a_crash_loop_with_pain(probe_spec: Callable[..., ServerSpec]) -> None:
    observer = Signals()
    unit = Unit(probe_spec("p", "--crash-at-start", crash_loop_restarts=3), observer)
    async with anyio.create_task_group() as tg:
        await tg.start(unit.run)
        with anyio.fail_after(15):
            await observer.pained.wait()
        assert unit.state is UnitState.FAILED
        pain = observer.received[0]
        assert (pain.source, pain.kind, pain.valence, pain.severity) == (
            "unit:p",
            "crash_loop",
            Valence.PAIN,
            Severity.HIGH,
        )
        assert pain.detail.startswith("3 restarts within 60s")
        assert "crashing at start" in "\n".join(unit.stderr)
        # Every choice of the supervisor is a decision with what it expected: two restarts, then a stop.
        assert [(d.system, d.subject, d.choice) for d in observer.decisions] == [
            ("s1", "p", "restart"),
            ("s1", "p", "restart"),
            ("s1", "p", "stop"),
        ]
        first, _, stop = observer.decisions
        assert first.inputs["restarts"] == 1 and first.inputs["restarts_in_window"] == 1
        assert first.inputs["predicted"]["ready_within_s"] == pytest.approx(
            first.inputs["delay_s"] + unit.spec.start_timeout_s
        )
        assert "crash loop: 3 restarts within 60s" in stop.rule
        assert stop.inputs["predicted"] == {"calls_served": 0}
        with pytest.raises(UnitUnavailableError, match="failed after a crash loop"):
            await _call(unit, "echo", text="x")
        tg.cancel_scope.cancel()


async def test_a_unit_that_keeps_coming_up_and_going_down_is_held_not_restarted_in_a_loop(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    observer = Signals()
    spec = probe_spec("p", crash_loop_restarts=100, flap_restarts=3, flap_window_s=60, flap_hold_s=60)
    unit = Unit(spec, observer)
    async with anyio.create_task_group() as tg:
        await tg.start(unit.run)
        with anyio.fail_after(60):
            for _ in range(3):  # up, then down mid-call: three times
                await unit.wait_ready()
                with pytest.raises(UnitError):
                    await _call(unit, "crash")
                await unit.session_lost.wait()
            await observer.kind("flapping").wait()
        [pain] = [s for s in observer.received if s.kind == "flapping"]
        # Each time it went down while serving was pain of its own, before the damping.
        assert [s.kind for s in observer.received].count("server_lost") == 3
        assert (pain.source, pain.severity) == ("unit:p", Severity.MEDIUM)
        assert pain.detail.startswith("3 restarts within 60s; held for 60s before the next start")
        assert unit.holds == 1 and unit.held_until is not None
        assert [d.choice for d in observer.decisions] == ["restart", "restart", "hold"]
        assert observer.decisions[-1].inputs["delay_s"] == 60
        assert unit.state is UnitState.BACKOFF
        with anyio.move_on_after(1.0):  # held: no start within the second (the hold is 60 s)
            await unit.wait_ready()
        assert unit.state is UnitState.BACKOFF
        unit.request_restart()  # an operator's restart ends the hold at once
        with anyio.fail_after(20):
            await unit.wait_ready()
        assert unit.held_until is None
        tg.cancel_scope.cancel()


async def test_an_idle_unit_is_parked_with_its_tools_and_the_next_call_starts_it(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    states: list[UnitState] = []
    parked = anyio.Event()

    def on_state(unit: Unit, _previous: UnitState | None) -> None:
        states.append(unit.state)
        if unit.state is UnitState.PARKED:
            parked.set()

    unit = Unit(probe_spec("p", idle_stop_s=0.5), on_state=on_state)
    async with anyio.create_task_group() as tg:
        await tg.start(unit.run)
        with anyio.fail_after(20):
            await unit.wait_ready()
            tools = unit.catalog.tools
            await _call(unit, "sleep", seconds=1.0)  # a call under way longer than the idle time
            assert unit.state is UnitState.READY
            await parked.wait()
        assert unit.pid is None and unit.parks == 1
        assert unit.catalog.tools == tools  # still listed while parked
        with anyio.fail_after(20):
            result = await _call(unit, "echo", text="awake")
        assert result["structuredContent"] == {"result": "awake"}
        assert unit.state is UnitState.READY and unit.pid is not None
        assert states.count(UnitState.PARKED) == 1
        tg.cancel_scope.cancel()


async def test_stop_kills_the_whole_process_group(probe_spec: Callable[..., ServerSpec], procs: Any) -> None:
    unit = Unit(probe_spec("p", "--grandchild"))
    async with anyio.create_task_group() as tg:
        await tg.start(unit.run)
        with anyio.fail_after(20):
            await unit.wait_ready()
        server_pid = unit.pid
        grandchild = int(_text(await _call(unit, "child_pid")))
        assert server_pid is not None
        assert procs.alive(server_pid)
        assert procs.alive(grandchild)
        tg.cancel_scope.cancel()
    with anyio.fail_after(5):
        while procs.alive(server_pid) or procs.alive(grandchild):  # noqa: ASYNC110 - the kernel has no event
            await anyio.sleep(0.02)
    assert procs.my_zombies() == []


async def test_http_unit_reconnects_after_its_server_comes_back(
    probe_spec: Callable[..., ServerSpec], free_port: Callable[[], int]
) -> None:
    port = free_port()
    command = [*[probe_spec().command or ""], *probe_spec().args, "--http-port", str(port)]
    spec = ServerSpec(
        name="web",
        url=f"http://127.0.0.1:{port}/mcp",
        ping_interval_s=0.3,
        ping_timeout_s=0.5,
        backoff_initial_s=0.1,
        backoff_max_s=0.3,
        crash_loop_restarts=100,
        start_timeout_s=5.0,
    )
    unit = Unit(spec)
    async with anyio.create_task_group() as tg:
        server = await anyio.open_process(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await tg.start(unit.run)
            with anyio.fail_after(30):
                await unit.wait_ready()
            assert _text(await _call(unit, "echo", text="over http")) == "over http"
            first_pid = _text(await _call(unit, "pid"))
            lost = unit.session_lost
            server.kill()
            await server.wait()
            with anyio.fail_after(10):
                await lost.wait()  # the health ping noticed
            server = await anyio.open_process(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with anyio.fail_after(30):
                await unit.wait_ready()
                result = await _call(unit, "pid", retry_safe=True)
            assert _text(result) not in {first_pid, ""}
            assert unit.stats.restarts >= 1
        finally:
            server.kill()
            with anyio.CancelScope(shield=True):
                await server.wait()
            tg.cancel_scope.cancel()


async def test_breaker_opens_after_failures_and_a_probe_closes_it(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    spec = probe_spec("p", idle_timeout_s=0.3, breaker_failures=2, breaker_cooldown_s=0.5)
    observer = Signals()
    unit = Unit(spec, observer)
    async with anyio.create_task_group() as tg:
        await tg.start(unit.run)
        with anyio.fail_after(20):
            await unit.wait_ready()
        for _ in range(2):
            with pytest.raises(CallTimeoutError):
                await _call(unit, "sleep", seconds=2)
        assert unit.breaker.state.value == "open"
        assert [(p.kind, p.severity) for p in observer.received] == [("breaker_open", Severity.MEDIUM)]
        assert observer.received[0].detail.startswith("circuit opened after 2 failed calls; last: server 'p'")
        start = time.monotonic()
        with pytest.raises(UnitUnavailableError, match=r"keeps failing: circuit open, next probe in 0\.\d+s"):
            await _call(unit, "echo", text="refused")
        assert time.monotonic() - start < 0.05  # refused without touching the server
        with anyio.fail_after(5):
            await anyio.sleep(0.5)  # the cool-down itself is what is being tested
            assert _text(await _call(unit, "echo", text="probe")) == "probe"
        assert unit.breaker.state.value == "closed"
        assert unit.stats.restarts == 0  # the server answered pings all along
        tg.cancel_scope.cancel()


async def test_an_on_demand_unit_learns_its_tools_once_then_starts_only_when_called(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    async with MemoryStore.open() as book:
        # No pin yet: it starts once to learn (and pin) its tools, and parks as soon as they are listed.
        parked = anyio.Event()

        def on_state(unit: Unit, _previous: UnitState | None) -> None:
            if unit.state is UnitState.PARKED:
                parked.set()

        first = Unit(probe_spec("p", start="on_demand"), definitions=book, on_state=on_state)
        async with anyio.create_task_group() as tg:
            await tg.start(first.run)
            with anyio.fail_after(20):
                await parked.wait()
            assert first.pid is None and first.parks == 1
            learned = [t["name"] for t in first.catalog.tools]
            assert "echo" in learned
            tg.cancel_scope.cancel()

        # The next gateway: the pinned tools are listed at once and no process starts before a call.
        states: list[UnitState] = []
        unit = Unit(
            probe_spec("p", start="on_demand"), definitions=book, on_state=lambda u, _: states.append(u.state)
        )
        async with anyio.create_task_group() as tg:
            await tg.start(unit.run)
            with anyio.fail_after(5):
                await unit.first_start.wait()
            assert unit.state is UnitState.PARKED and unit.pid is None
            assert [t["name"] for t in unit.catalog.tools] == learned
            assert UnitState.READY not in states  # no start before the first call
            with anyio.fail_after(20):
                result = await _call(unit, "echo", text="first call")
            assert result["structuredContent"] == {"result": "first call"}
            assert unit.state is UnitState.READY and unit.pid is not None
            assert unit.quarantine is None  # the live listing matches the pin it was listed from
            tg.cancel_scope.cancel()
