"""An operator's acknowledgement clears an escalated alert from a running S5's attention."""

from __future__ import annotations

import random

import anyio
import pytest

from vsm_mcp.bridge.acknowledgements import acknowledge, acknowledged, apply_acknowledgements
from vsm_mcp.core.messages import Severity, unit_source
from vsm_mcp.store import MemoryStore
from vsm_mcp.vsm.audit import ProbeResult
from vsm_mcp.vsm.notices import Notices, noticed
from vsm_mcp.vsm.viable import ViableConfig, ViableSystem

pytestmark = pytest.mark.anyio


async def _ping(unit: str) -> ProbeResult:
    return ProbeResult("ping", True)


async def test_an_acknowledged_alert_leaves_attention_once_and_the_first_acknowledgement_wins() -> None:
    notices = Notices()
    async with MemoryStore.open() as raw:
        store = noticed(raw, notices)
        system = ViableSystem(
            "gw",
            store,
            probe=_ping,
            rng=random.Random(0),
            config=ViableConfig(alert_window_s=0.01),
            notices=notices,
        )
        async with system:
            mark = notices.last_seq
            system.channel.pain(unit_source("fs"), "crash_loop", Severity.CRITICAL, "5 restarts in 60 s")
            with anyio.fail_after(5):
                raised = await notices.wait_for("alert.raised", after=mark)
                await notices.wait_for("decision.stored", after=mark)  # S5 escalated it
            alert_id = raised.data["id"]
            assert system.s5.status().state == "attention"
            applied: set[int] = set()
            assert await apply_acknowledgements(store, system.s5, applied) == 0  # nothing acknowledged yet
            assert await acknowledge(store, [alert_id], by="alice", at=1.0) == [alert_id]
            assert await acknowledge(store, [alert_id], by="bob", at=2.0) == []
            assert await apply_acknowledgements(store, system.s5, applied) == 1
            assert await apply_acknowledgements(store, system.s5, applied) == 0
            assert system.s5.status().state == "ok"
        assert (await acknowledged(store))[alert_id]["by"] == "alice"
