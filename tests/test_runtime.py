"""The composition root end to end: a real probe server behind the gateway, the VSM fed by real calls."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from vsm_mcp import report
from vsm_mcp.bridge import observers
from vsm_mcp.runtime import Runtime
from vsm_mcp.settings import Settings, load_settings
from vsm_mcp.store import SqliteStore

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PROBE = Path(__file__).resolve().parent / "fixtures" / "servers" / "probe_server.py"


def settings_for(tmp_path: Path, **variety: object) -> Settings:
    config = tmp_path / "config.toml"
    lines = [
        "[variety]",
        *(f"{k} = {v}" for k, v in variety.items()),
        "[servers.probe]",
        f'command = "{sys.executable}"',
        f'args = ["{PROBE}"]',
        "start_timeout_s = 20",
    ]
    config.write_text("\n".join(lines) + "\n")
    return load_settings(config, state_dir=tmp_path / "state")


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[Runtime, Client]]:
    async with Runtime.open(settings, seed=7) as runtime:
        with anyio.fail_after(20):
            await runtime.fleet.wait_ready("probe")
        async with Client(runtime.gateway.server, mode="legacy") as client:
            yield runtime, client


async def counted(runtime: Runtime, predicate: Callable[[], bool]) -> None:
    """Wait until S1 has counted a batch of calls after which ``predicate`` holds."""
    with anyio.fail_after(10):
        await runtime.notices.wait_for("calls.counted", after=0, where=lambda _: predicate())


async def test_calls_feed_s1_and_s4_and_capabilities_reach_the_store(tmp_path: Path) -> None:
    async with running(settings_for(tmp_path)) as (runtime, client):
        for i in range(3):
            result = await client.call_tool("probe__echo", {"text": f"hi {i}"})
            assert result.is_error is False
        with pytest.raises(MCPError):
            await client.call_tool("translate_klingon", {})
        s4 = runtime.system.s4
        with anyio.fail_after(10):
            await runtime.notices.wait_for("variety.read", after=0, where=lambda n: n.data["events"] == 4)
        reading = s4.reading()
        # 3 answered calls in one category, 1 unanswered: coverage 3/4
        assert reading.coverage == 0.75
        assert reading.categories == 2
        await counted(runtime, lambda: runtime.system.s1.unit_stats("probe").calls == 3)
        assert runtime.system.s1.unit_stats("probe").errors == 0
        assert runtime.system.s2.public_names == len(runtime.fleet.routes.tools) > 0
        tools = {c.tool for c in await runtime.store.capabilities() if c.unit == "probe"}
        assert {"echo", "add", "pid"} <= tools
        variety = runtime.demand.variety()
        assert variety["unmatched_categories"] == {"translate_klingon": 1}
        assert variety["coverage"] == 0.75


async def test_demand_recorded_together_reaches_s4_as_one_batch(tmp_path: Path) -> None:
    async with running(settings_for(tmp_path)) as (runtime, _):
        s4 = runtime.system.s4
        inbox = runtime.system.bus.stats()["s4"].routine
        await anyio.sleep(0.1)  # the start's capability sync is done; nothing else is pending
        sent_before = runtime.system.bus.stats()["s4"].routine.sent
        for category in ("a", "b", "a"):
            runtime.demand.record(category, matched=False)
        with anyio.fail_after(10):
            await runtime.notices.wait_for("variety.read", after=0, where=lambda n: n.data["events"] == 3)
        assert runtime.system.bus.stats()["s4"].routine.sent == sent_before + 1
        assert inbox.dropped == 0
        assert s4.window.profile().counts == {"a": 2, "b": 1}


async def test_calls_finished_within_the_report_window_reach_s1_as_one_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(observers, "REPORT_WINDOW_S", 0.5)  # wide enough for a loaded CI machine
    async with running(settings_for(tmp_path)) as (runtime, client):
        await anyio.sleep(0.1)  # nothing from the start is pending for S1
        sent_before = runtime.system.bus.stats()["s1"].routine.sent
        async with anyio.create_task_group() as tg:
            for i in range(5):
                tg.start_soon(client.call_tool, "probe__echo", {"text": str(i)})
        s1 = runtime.system.s1
        await counted(runtime, lambda: s1.unit_stats("probe").calls == 5)
        # five answers within the window of the first: one CallsCompleted
        assert runtime.system.bus.stats()["s1"].routine.sent == sent_before + 1


async def test_a_sustained_gap_reaches_s5_as_a_stored_decision(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, persist_events=3, persist_s=0.5, gap_upper=0.5, gap_lower=0.2)
    async with running(settings) as (runtime, client):
        mark = runtime.notices.last_seq
        for _ in range(5):
            with pytest.raises(MCPError):
                await client.call_tool("translate_klingon", {"text": "nuqneH"})
        with anyio.fail_after(10):
            proposal = await runtime.notices.wait_for("proposal.made", after=mark)
            decided = await runtime.notices.wait_for("decision.stored", "variety_gap", after=mark)
        assert proposal.data["unmatched"][0][0] == "translate_klingon"
        assert decided.data["choice"] == "ask_operator"
        assert runtime.system.s4.proposals == 1
        decisions = await runtime.store.decisions()
        assert decisions[0].choice == "ask_operator"
        assert "translate_klingon" in str(decisions[0].inputs)


async def test_live_status_is_stored_for_the_cli(tmp_path: Path) -> None:
    async with running(settings_for(tmp_path)) as (runtime, client):
        await client.call_tool("probe__echo", {"text": "x"})

        async def stored() -> object:
            return await runtime.store.kv_get(report.LIVE_STATUS_KEY)

        with anyio.fail_after(10):
            mark = 0
            # each stored status is announced: read the store after each, until it shows the unit ready
            while (
                not isinstance(live := await stored(), dict)
                or not live["fleet"]
                or live["fleet"][0]["state"] != "ready"
            ):
                mark = (await runtime.notices.wait_for("status.stored", after=mark)).seq
        assert isinstance(live, dict)
        assert live["vsm"]["name"] == "vsm-mcp"
        assert [u["name"] for u in live["vsm"]["units"]] == ["probe"]
        # the unit reports the same S1..S5 shape as the whole
        assert set(live["vsm"]["units"][0]) == set(live["vsm"])
    # after shutdown the CLI reads the same database
    from typer.testing import CliRunner

    from vsm_mcp.cli.app import app

    args = ["--state-dir", str(tmp_path / "state"), "status", "--json"]
    out = await anyio.to_thread.run_sync(lambda: CliRunner().invoke(app, args))
    assert out.exit_code == 0, out.output
    assert '"probe"' in out.output


async def test_outcomes_are_learned_per_server_and_category_and_persisted(tmp_path: Path) -> None:
    from vsm_mcp.discovery.outcomes import OutcomeLedger

    async with running(settings_for(tmp_path)) as (runtime, client):
        for _ in range(3):
            await client.call_tool("probe__echo", {"text": "x"})
        bad = await client.call_tool("probe__add", {"a": "not a number", "b": 1})
        assert bad.is_error is True
        ledger = runtime.outcomes.ledger
        assert ledger.tallies[("probe", "probe__echo")].successes == 3
        assert ledger.tallies[("probe", "probe__add")].failures == 1
        assert ledger.boost("probe", "probe__echo") > 0 > ledger.boost("probe", "probe__add")
        # the sampler persists it within one round
        with anyio.fail_after(10):
            while True:
                mark = runtime.notices.last_seq
                if ("probe", "probe__echo") in (await OutcomeLedger.load(runtime.store)).tallies:
                    break
                await runtime.notices.wait_for("status.stored", after=mark)


async def test_audit_lists_the_tools_afresh_against_their_pin(tmp_path: Path) -> None:
    from vsm_mcp.bridge.sampling import audit_probe
    from vsm_mcp.fleet import definitions

    async with running(settings_for(tmp_path)) as (runtime, _):
        unit = runtime.fleet.units["probe"]
        pin = await definitions.load(runtime.store, "probe")
        assert pin is not None and pin.by == "first use"  # a configured server: pinned at its first listing
        clean = await audit_probe(runtime.fleet, "probe")
        assert (clean.check, clean.ok, clean.detail) == ("pinned_definitions", True, "9 tools as pinned")
        # What was pinned differs from what the server now lists: a rug pull.
        tools = {**pin.tools, "echo": {**pin.tools["echo"], "description": "Return the text."}}
        await definitions.trust(runtime.store, "probe", tools, by="operator", now=1.0)
        pulled = await audit_probe(runtime.fleet, "probe")
        assert (pulled.check, pulled.ok) == ("pinned_definitions", False)
        assert pulled.detail == (
            "quarantined: tool definitions changed since they were pinned: tool 'echo' changed its description"
        )
        assert unit.quarantine is not None
        assert not any(r.unit == "probe" for r in runtime.fleet.routes.tools.values())
        gone = await audit_probe(runtime.fleet, "nobody")
        assert (gone.ok, gone.detail) == (False, "unit is gone")


async def test_a_server_gets_its_secret_from_the_store_at_its_start(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    config = tmp_path / "config.toml"
    config.write_text(config.read_text() + 'env = { PROBE_TOKEN = "${secret:probe-token}" }\n')
    settings = load_settings(config, state_dir=tmp_path / "state")
    async with SqliteStore.open(settings.database_path) as store:  # as `vsm-mcp secrets set` does
        await store.put_secret("probe-token", "from the store", at=1.0)
    async with running(settings) as (_, client):
        result = await client.call_tool("probe__env", {"name": "PROBE_TOKEN"})
        assert result.content[0].text == "from the store"  # type: ignore[union-attr]


async def test_a_state_dir_this_user_cannot_write_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from vsm_mcp import runtime as runtime_module
    from vsm_mcp.errors import VsmError

    settings = settings_for(tmp_path)
    state = settings.state_dir
    real = os.access
    # As root every directory is writable; a user's view of a directory they do not own.
    monkeypatch.setattr(
        runtime_module.os, "access", lambda path, mode: False if Path(path) == state else real(path, mode)
    )
    with pytest.raises(VsmError) as caught:
        async with Runtime.open(settings):
            pass
    message = str(caught.value)
    assert message.startswith(f"state directory {state} is not writable by ")
    assert "--state-dir" in message and "\n" not in message
    assert not (state / "state.db").exists()


async def test_a_client_reads_the_stored_decisions_through_the_gateway(tmp_path: Path) -> None:
    import dataclasses
    import json

    from vsm_mcp.core.messages import Decision

    async with running(settings_for(tmp_path)) as (runtime, client):
        first = await runtime.store.record_decision(
            Decision(
                1.0, "s5", "variety_gap", "ask_operator", "acquisition needs an operator", "why", {"gap": 0.9}
            )
        )
        second = await runtime.store.record_decision(
            Decision(2.0, "s3", "park:probe", "park", "idle", "idle 600 s")
        )
        listed = await client.read_resource("vsm://decisions")
        shown = json.loads(listed.contents[0].text)["decisions"]  # type: ignore[union-attr]
        stored = await runtime.store.decisions(50)
        assert shown == json.loads(json.dumps([dataclasses.asdict(d) for d in stored]))
        assert [d["id"] for d in shown][:2] == [second, first]
        one = await client.read_resource(f"vsm://decisions/{first}")
        assert json.loads(one.contents[0].text) == dataclasses.asdict(await runtime.store.decision(first))  # type: ignore[union-attr, arg-type]
        # An acquisition's document carries what followed it: its server's calls since, against
        # the success it predicted (here the unit itself, for its tool's category).
        inputs = {
            "unit": "probe",
            "predicted_success": 0.5,
            "outcome_key": ["probe", "probe__echo"],
            "tally_at_decision": [0, 0],
        }
        acquired = await runtime.store.record_decision(
            Decision(time.time(), "s5", "acquire:pypi:probe@1", "acquired", "auto", "ok", inputs)
        )
        for _ in range(2):
            await client.call_tool("probe__echo", {"text": "after"})
        followed = json.loads((await client.read_resource(f"vsm://decisions/{acquired}")).contents[0].text)  # type: ignore[union-attr]
        assert followed["observed"]["successes"] == 2 and followed["observed"]["failures"] == 0
        assert followed["observed"]["predicted_success"] == 0.5 and followed["observed"]["horizon_hours"] == 1
        with pytest.raises(MCPError, match="Resource not found: vsm://decisions/999"):
            await client.read_resource("vsm://decisions/999")
        templates = (await client.list_resource_templates()).resource_templates
        assert "vsm://decisions/{id}" in [t.uri_template for t in templates]
        uris = [str(r.uri) for r in (await client.list_resources()).resources]
        assert "vsm://decisions" in uris and len(uris) == len(set(uris))


async def test_the_self_model_is_computed_from_what_happened_and_read_over_mcp(tmp_path: Path) -> None:
    import json

    from vsm_mcp.discovery.outcomes import PRIOR_ALPHA, PRIOR_BETA

    async with running(settings_for(tmp_path)) as (runtime, client):

        async def model() -> dict[str, object]:
            read = await client.read_resource("vsm://self")
            return json.loads(read.contents[0].text)  # type: ignore[union-attr, no-any-return]

        def echo_entry(m: dict[str, object]) -> dict[str, object]:
            return next(c for c in m["can"] if c["category"] == "probe__echo")  # type: ignore[attr-defined, index]

        before = await model()
        entry = echo_entry(before)
        assert entry["observed"] is None and entry["confidence_from"] == "prior only"
        assert entry["tool_records"] == []
        assert entry["confidence"] == round(PRIOR_ALPHA / (PRIOR_ALPHA + PRIOR_BETA), 4)
        assert before["cannot"] == {"unanswered_demand": [], "refused_acquisitions": []}  # type: ignore[index]

        for _ in range(3):
            assert (await client.call_tool("probe__echo", {"text": "x"})).is_error is False
        for _ in range(2):
            with pytest.raises(MCPError):
                await client.call_tool("translate_klingon", {"text": "nuqneH"})
        with anyio.fail_after(10):
            await runtime.notices.wait_for("variety.read", after=0, where=lambda n: n.data["events"] >= 5)
        await counted(runtime, lambda: runtime.system.s1.unit_stats("probe").calls >= 3)  # S1 batches
        after = await model()
        entry = echo_entry(after)
        assert entry["observed"] == {"successes": 3, "failures": 0}
        expected = (3 + PRIOR_ALPHA) / (3 + PRIOR_ALPHA + PRIOR_BETA)
        assert entry["confidence"] == round(expected, 4) and entry["calls"] == 3
        # the tool's own record, and the weight routing gives it: (5/7 - 1/2) / (1/2)
        assert entry["tool_records"] == [
            {"tool": "probe__echo", "successes": 3, "failures": 0, "reliability": round(3 / 7, 4)}
        ]
        assert after["cannot"]["unanswered_demand"] == [{"category": "translate_klingon", "asks": 2}]  # type: ignore[index]
        limits = after["limits"]
        assert limits["units_running"] == 1 and limits["installs_left_this_hour"] == 10  # type: ignore[index]
        assert after["health"]["systems"]["s1"] == "ok"  # type: ignore[index]

        # The limits and the refusals move with what is stored: an acquisition and a refusal now.
        from vsm_mcp.core.messages import Decision

        now = time.time()
        await runtime.store.record_decision(Decision(now, "s5", "acquire:pypi:a@1", "acquired", "auto", "ok"))
        refused = await runtime.store.record_decision(
            Decision(now, "s5", "acquire:npm:b@2", "refuse", "license", "GPL-3.0 is not allowed")
        )
        moved = await model()
        assert (moved["limits"]["installs_this_hour"], moved["limits"]["installs_left_this_hour"]) == (1, 9)  # type: ignore[index]
        assert moved["cannot"]["refused_acquisitions"][0]["id"] == refused  # type: ignore[index]
        assert moved["recent"]["decisions"][0]["id"] == refused  # type: ignore[index]

        prompts = [p.name for p in (await client.list_prompts()).prompts]
        assert "vsm_self_brief" in prompts
        got = await client.get_prompt("vsm_self_brief")
        text = got.messages[0].content.text  # type: ignore[union-attr]
        assert "probe__echo" in text and "3 of 3 calls succeeded" in text
        assert "translate_klingon (2 asks)" in text
        assert len(text.split()) < 400  # a few hundred words at most


async def test_s5_stores_its_reflection_periodically(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        "[reflection]\nevery_s = 1\n"
        f'[servers.probe]\ncommand = "{sys.executable}"\nargs = ["{PROBE}"]\nstart_timeout_s = 20\n'
    )
    settings = load_settings(config, state_dir=tmp_path / "state")
    async with running(settings) as (runtime, _client):
        with anyio.fail_after(10):
            stored = await runtime.notices.wait_for("decision.stored", "reflection", after=0)
        decision = await runtime.store.decision(stored.data["id"])
    assert decision is not None and (decision.system, decision.choice) == ("s5", "report")
    assert decision.rationale.startswith("0 acquisitions, 0 calls observed since; no calls to calibrate on")
    assert decision.inputs["brier"] is None and decision.inputs["suggestions"] == []
