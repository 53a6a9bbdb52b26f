"""No field of the self-model (`bridge.self_model`, ``vsm://self``) is a constant: a fresh gateway
and a busy one, with other settings and servers, calls succeeding and failing, demand nothing
answers, acquisitions installed and refused, operator actions, alerts and a crashed VSM child;
every leaf moves or disappears."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from tests.leaves import all_paths, constant_fields

from vsm_mcp.bridge.sampling import audit_probe
from vsm_mcp.core.messages import Decision, OperatorAction, Severity
from vsm_mcp.fleet import definitions
from vsm_mcp.runtime import Runtime
from vsm_mcp.settings import load_settings

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PROBE = Path(__file__).resolve().parents[1] / "fixtures" / "servers" / "probe_server.py"

#: Leaves constant by definition, each with why.
ALLOWED = {
    "name",  # the gateway's own name, an identifier the runtime gives its viable system
}


def _server(name: str, *args: str, **extra: str | int | float) -> list[str]:
    return [
        f"[servers.{name}]",
        f'command = "{sys.executable}"',
        f"args = {json.dumps([str(PROBE), '--name', name, *args])}",
        "start_timeout_s = 20",
        *(f"{k} = {json.dumps(v)}" for k, v in extra.items()),
    ]


async def _read(client: Client, uri: str = "vsm://self") -> dict[str, Any]:
    read = await client.read_resource(uri)
    return json.loads(read.contents[0].text)  # type: ignore[union-attr, no-any-return]


async def _crash() -> None:
    raise RuntimeError("boom")


async def _fresh(tmp_path: Path) -> dict[str, Any]:
    """Default settings, three servers running (the busy gateway never has more than two: one is
    parked, one failed, and S3 may park the quarantined one), nothing asked yet."""
    config = tmp_path / "fresh.toml"
    names = ("probe", "probe2", "probe3")
    config.write_text("\n".join(line for name in names for line in _server(name)) + "\n")
    settings = load_settings(config, state_dir=tmp_path / "fresh")
    async with Runtime.open(settings, seed=1) as runtime:
        with anyio.fail_after(20):
            for name in names:
                await runtime.fleet.wait_ready(name)
            await runtime.notices.wait_for(
                "status.stored", where=lambda _: runtime.system.s3.report().running_units == len(names)
            )
        async with Client(runtime.gateway.server, mode="legacy") as client:
            return await _read(client)


async def _busy(tmp_path: Path) -> dict[str, Any]:
    """Other settings; a server that crash-loops, one whose definitions were pulled (quarantined),
    one S3 parks for want of memory while another holds a long call; calls failing (a spike,
    drifts) and succeeding; demand nothing answers; acquisitions installed, refused and rolled back;
    an operator's failed action; an alert for an operator; a VSM child that fails for good."""
    lines = [
        "[algedonic]\nwindow_s = 0.05",
        "[supervision]\nmax_restarts = 0",
        "[budget]\nmax_units = 5\nmax_rss_mib = 1",
        "[acquisition]\nauto_approve = true\nmax_installs_per_hour = 4",
        '[sandbox]\nmode = "off"\nnetwork = false',
        "[drift]\nwarmup = 4\nerror_h = 1.0\nlatency_h = 1.0",
        *_server("clock", category="time"),
        *_server("timer", category="timing"),
        *_server("rug"),
        *_server("broken", "--crash-at-start", crash_loop_restarts=1, backoff_initial_s=0.05),
    ]
    config = tmp_path / "busy.toml"
    config.write_text("\n".join(lines) + "\n")
    settings = load_settings(config, state_dir=tmp_path / "busy")
    async with Runtime.open(settings, seed=2) as runtime:
        notices, system, fleet, store = runtime.notices, runtime.system, runtime.fleet, runtime.store
        with anyio.fail_after(20):
            for name in ("clock", "timer", "rug"):
                await fleet.wait_ready(name)
        # The rug's definitions differ from their pin: S3*'s audit quarantines it.
        pin = await definitions.load(store, "rug")
        assert pin is not None
        pulled = {**pin.tools, "echo": {**pin.tools["echo"], "description": "Return the text."}}
        await definitions.trust(store, "rug", pulled, by="operator", now=1.0)
        assert not (await audit_probe(fleet, "rug")).ok
        await system.s3_star.audit_once()
        async with Client(runtime.gateway.server, mode="legacy") as client, anyio.create_task_group() as tg:
            for i in range(6):
                assert (await client.call_tool("clock__echo", {"text": str(i)})).is_error is False
            for i in range(2):
                assert (await client.call_tool("timer__echo", {"text": str(i)})).is_error is False
            for _ in range(20):  # the tool refuses these arguments: failed calls, a spike, drifts
                assert (await client.call_tool("clock__add", {"a": "one", "b": 2})).is_error is True
            for _ in range(3):
                with pytest.raises(MCPError):
                    await client.call_tool("translate_klingon", {"text": "nuqneH"})
            # clock holds a long call (S3, over its memory budget, cannot park it); timer is parked
            # as S3 parks an idle unit (S3's own choice may go to another idle unit first)
            tg.start_soon(client.call_tool, "clock__sleep", {"seconds": 60})
            fleet.units["timer"].park()
            system.supervisor.start("crashing", _crash)  # a VSM child that fails for good
            system.channel.pain("unit:clock", "manual", Severity.HIGH, "for an operator")
            now = time.time()
            await store.record_decision(Decision(now, "s5", "acquire:pypi:a@1", "acquired", "auto", "ok"))
            await store.record_decision(
                Decision(now, "s5", "acquire:npm:b@2", "refuse", "license", "GPL-3.0 is not allowed")
            )
            await store.record_decision(
                Decision(now, "s5", "acquire:pypi:c@3", "rolled_back", "smoke test", "no tools listed")
            )
            await store.record_action(
                OperatorAction(now, "alice", "servers.restart", "clock", "cli", ok=False)
            )

            def settled() -> bool:
                report = system.s3.report()
                return (
                    report.over_budget
                    and bool(report.failed_units)
                    and bool(report.quarantined_units)
                    and fleet.units["timer"].state.value == "parked"
                    and system.s1.unit_stats("clock").calls >= 26
                    and system.s4.reading().events >= 29
                    and bool(system.s5.attention)
                    and system.s2.status().state == "degraded"
                )

            with anyio.fail_after(20):
                await notices.wait_for("status.stored", where=lambda _: settled())
            model = await _read(client)
            tg.cancel_scope.cancel()
        return model


async def test_every_field_of_the_self_model_moves_with_what_happened(tmp_path: Path) -> None:
    fresh, busy = await _fresh(tmp_path), await _busy(tmp_path)
    assert all_paths([fresh, busy]) >= ALLOWED
    assert constant_fields([fresh, busy], ALLOWED) == []
    # and the planted constant a field that never moves would be is caught
    for doc in (fresh, busy):
        doc["limits"]["planted"] = 10
        for c in doc["can"]:
            c["planted"] = "prior"
    assert constant_fields([fresh, busy], ALLOWED) == ["can[].planted", "limits.planted"]
