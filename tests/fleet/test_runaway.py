"""A call that times out stops its work: a server that keeps burning CPU after it is restarted."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

from vsm_mcp.core.messages import AlgedonicSignal, Severity
from vsm_mcp.errors import CallTimeoutError
from vsm_mcp.fleet.fleet import Fleet
from vsm_mcp.fleet.process import group_cpu_seconds
from vsm_mcp.fleet.spec import ServerSpec
from vsm_mcp.fleet.unit import RUNAWAY_GRACE_S

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SPIN = Path(__file__).resolve().parents[1] / "fixtures" / "servers" / "spin_server.py"
#: The timeout, the grace window and a restart, on a busy 2-core box.
RESTART_TIMEOUT_S = RUNAWAY_GRACE_S + 30.0


async def test_a_server_still_burning_cpu_after_a_timed_out_call_is_restarted_with_pain() -> None:
    signals: list[AlgedonicSignal] = []
    pain = anyio.Event()

    async def sink(signal: AlgedonicSignal) -> None:
        signals.append(signal)
        pain.set()

    spec = ServerSpec(
        name="spin", command=sys.executable, args=[str(SPIN)], call_timeout_s=1.0, idle_timeout_s=1.0
    )
    async with Fleet([spec], signals=sink) as fleet:
        with anyio.fail_after(30):
            await fleet.wait_ready("spin")
        unit = fleet.unit("spin")
        first, lost = unit.pid, unit.session_lost
        assert first is not None
        with pytest.raises(CallTimeoutError):
            await fleet.call_tool("spin__spin", {})
        with anyio.fail_after(RESTART_TIMEOUT_S):
            await pain.wait()
            await lost.wait()
            await fleet.wait_ready("spin")
        (signal,) = signals
        assert (signal.source, signal.kind, signal.severity) == ("unit:spin", "runaway_cpu", Severity.MEDIUM)
        assert signal.detail.startswith("kept burning CPU after a timed-out call (")
        assert signal.detail.endswith(f"CPU seconds in the {RUNAWAY_GRACE_S:g} s after it): restarted")
        assert unit.pid not in (None, first)
        assert unit.stats.restarts == 1
        assert group_cpu_seconds(first) == 0  # the burning process group is gone
        assert (await fleet.call_tool("spin__quick", {}))["content"][0]["text"] == "ok"


async def test_a_server_idle_after_a_timed_out_call_is_left_running() -> None:
    signals: list[AlgedonicSignal] = []

    async def sink(signal: AlgedonicSignal) -> None:
        signals.append(signal)

    spec = ServerSpec(
        name="idle", command=sys.executable, args=[str(SPIN)], call_timeout_s=1.0, idle_timeout_s=1.0
    )
    async with Fleet([spec], signals=sink) as fleet:
        with anyio.fail_after(30):
            await fleet.wait_ready("idle")
        unit = fleet.unit("idle")
        first = unit.pid
        with pytest.raises(CallTimeoutError):
            await fleet.call_tool("idle__hang", {})
        # Nothing is to happen: the whole grace window (and a margin) passes without a restart.
        await anyio.sleep(RUNAWAY_GRACE_S + 2.0)
        assert (unit.pid, unit.stats.restarts, signals) == (first, 0, [])
        assert (await fleet.call_tool("idle__quick", {}))["content"][0]["text"] == "ok"
