"""Every tool call the fleet ends reaches its observers once, whichever way it went."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from vsm_mcp.bridge.observers import OutcomeRecorder
from vsm_mcp.discovery.outcomes import OutcomeLedger
from vsm_mcp.errors import UnitError
from vsm_mcp.fleet.call import ToolCall
from vsm_mcp.fleet.fleet import CallEnded, Fleet
from vsm_mcp.fleet.spec import ServerSpec

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


class Heard:
    def __init__(self) -> None:
        self.calls: list[CallEnded] = []
        self.stopped = 0

    def call_ended(self, call: CallEnded) -> None:
        self.calls.append(call)

    def fleet_stopped(self) -> None:
        self.stopped += 1


async def test_full_path_express_lane_and_failures_are_each_heard_once(
    probe_spec: Callable[..., ServerSpec],
) -> None:
    heard = Heard()
    ledger = OutcomeLedger()
    async with Fleet([probe_spec("p", category="echoing")], observers=[heard]) as fleet:
        recorder = OutcomeRecorder(ledger, lambda: fleet.units)
        fleet.observers.append(recorder)
        with anyio.fail_after(20):
            await fleet.wait_ready("p")
        # Params beyond a plain call's go through the unit's SDK session; a plain call on its lane.
        odd = {"name": "p__echo", "arguments": {"text": "session"}, "x-extra": 1}
        await fleet.call(ToolCall("p__echo", odd))
        answer = await fleet.call(ToolCall.of("p__echo", {"text": "lane"}))
        assert isinstance(answer, dict) and answer["structuredContent"] == {"result": "lane"}
        with pytest.raises(UnitError):
            await fleet.call_tool("p__crash", {})  # the server dies mid-call: the unit's failure
        result = await fleet.call_tool("p__add", {"a": "x", "b": 1})
        assert result.get("isError") is True
    assert [(c.route.public, c.ok) for c in heard.calls] == [
        ("p__echo", True),
        ("p__echo", True),
        ("p__crash", False),
        ("p__add", False),
    ]
    assert heard.calls[3].error == "tool returned isError"
    assert heard.stopped == 1
    assert recorder.dirty
    tally = ledger.tallies[("p", "echoing")]
    assert (tally.successes, tally.failures) == (2, 2)
