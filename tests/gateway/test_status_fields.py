"""No field of the gateway's part of ``vsm://status`` (`Gateway.status`: the gateway's counters,
each unit's measured state, S4's demand counts) is a constant: a fresh gateway and a busy one,
with other servers and settings, calls that time out, collide, crash and search; every leaf moves or
disappears. (The ``vsm`` systems' own fields are the viable status, moved one by one in
tests/vsm/test_viable_fields.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from tests.bridge.test_self_model_fields import _read, _server
from tests.leaves import all_paths, constant_fields

from vsm_mcp.bridge.sampling import audit_probe
from vsm_mcp.fleet import definitions
from vsm_mcp.runtime import Runtime
from vsm_mcp.settings import load_settings

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

#: Leaves constant by definition, each with why.
ALLOWED = {
    "units[].transport",  # how each server is reached, as configured (every server here is stdio)
    # stdio and HTTP sessions; these clients connect in memory, which it does not count (it moves
    # with HTTP sessions in tests/gateway/test_search_demand.py)
    "gateway.clients",
}


def _without_vsm(status: dict[str, Any]) -> dict[str, Any]:
    vsm = status.pop("vsm")
    status["demand"] = vsm["demand"]
    return status


async def _fresh(tmp_path: Path) -> dict[str, Any]:
    config = tmp_path / "fresh.toml"
    config.write_text('[sandbox]\nmode = "off"\n' + "\n".join(_server("probe")) + "\n")
    async with Runtime.open(load_settings(config, state_dir=tmp_path / "fresh"), seed=1) as runtime:
        with anyio.fail_after(20):
            await runtime.fleet.wait_ready("probe")
        async with Client(runtime.gateway.server, mode="legacy") as client:
            return _without_vsm(await _read(client, "vsm://status"))


async def _busy(tmp_path: Path) -> dict[str, Any]:
    lines = [
        *_server("left", namespace="", ping_interval_s=0.1, max_concurrency=2),
        # the same tool names as left: collisions, names fall back
        *_server("right", namespace="", max_concurrency=3),
        *_server(
            "slow",
            namespace="",
            call_timeout_s=0.3,
            idle_timeout_s=0.3,
            breaker_failures=1,
            max_concurrency=1,
            retries=0,
        ),
        *_server(
            "flappy",
            "--crash-at-start",
            crash_loop_restarts=50,
            flap_restarts=2,
            flap_hold_s=600,
            backoff_initial_s=0.05,
            max_concurrency=4,
        ),
    ]
    config = tmp_path / "busy.toml"
    config.write_text("\n".join(lines) + "\n")
    async with Runtime.open(load_settings(config, state_dir=tmp_path / "busy"), seed=2) as runtime:
        fleet = runtime.fleet
        with anyio.fail_after(20):
            for name in ("left", "right", "slow"):
                await fleet.wait_ready(name)
        async with Client(runtime.gateway.server, mode="legacy") as client:
            for i in range(3):
                assert (await client.call_tool("left__echo", {"text": str(i)})).is_error is False
            with pytest.raises(MCPError, match="timeout"):
                await client.call_tool("slow__sleep", {"seconds": 5})
            found = await client.call_tool("vsm_search_tools", {"query": "echo text back"})
            assert "right__echo" in str(found.structured_content)
            assert (await client.call_tool("right__echo", {"text": "x"})).is_error is False  # answered
            await client.call_tool("vsm_search_tools", {"query": "translate klingon poetry"})  # pending
            with pytest.raises(MCPError):  # the server kills itself mid-call
                await client.call_tool("left__crash", {})
            # a read-only call while left restarts: retried
            assert (await client.call_tool("left__echo", {"text": "again"})).is_error is False
            # right's definitions differ from their pin: quarantined
            store = runtime.store
            pin = await definitions.load(store, "right")
            assert pin is not None
            pulled = {**pin.tools, "echo": {**pin.tools["echo"], "description": "Return the text."}}
            await definitions.trust(store, "right", pulled, by="operator", now=1.0)
            assert not (await audit_probe(fleet, "right")).ok

            def settled() -> bool:
                units = fleet.units
                return (
                    units["flappy"].held_until is not None
                    and units["left"].stats.last_ping_ms is not None
                    and units["slow"].breaker.state.value != "closed"
                )

            with anyio.fail_after(20):
                await runtime.notices.wait_for("status.stored", where=lambda _: settled())
            # tools shown and none called yet: pending
            assert "__add" in str(await client.call_tool("vsm_search_tools", {"query": "add two numbers"}))
            return _without_vsm(await _read(client, "vsm://status"))


async def test_every_field_of_the_gateway_status_moves_with_what_happened(tmp_path: Path) -> None:
    fresh, busy = await _fresh(tmp_path), await _busy(tmp_path)
    assert all_paths([fresh, busy]) >= ALLOWED
    assert constant_fields([fresh, busy], ALLOWED) == []
    for doc in (fresh, busy):
        doc["gateway"]["planted"] = 0
        for unit in doc["units"]:
            unit["planted"] = "stdio"
    assert constant_fields([fresh, busy], ALLOWED) == ["gateway.planted", "units[].planted"]
