"""Learning reaches routing: of two tools that answer a search alike, the one whose calls served comes first."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from vsm_mcp.bridge.reflection import DecisionRecords
from vsm_mcp.bridge.routing import RECORD_EVERY_S, WEIGHT, LearnedRouting
from vsm_mcp.discovery.outcomes import OutcomeLedger, tool_key
from vsm_mcp.fleet.routing import Route
from vsm_mcp.gateway.search import ToolHit
from vsm_mcp.runtime import Runtime
from vsm_mcp.settings import load_settings
from vsm_mcp.store import MemoryStore

pytestmark = pytest.mark.anyio

FORECAST = Path(__file__).resolve().parents[1] / "fixtures" / "servers" / "forecast_server.py"


def _routes(*units: str) -> dict[str, Route]:
    return {f"{u}__get_forecast": Route(f"{u}__get_forecast", u, "get_forecast", {}) for u in units}


def _hits(*scored: tuple[str, float]) -> list[ToolHit]:
    return [ToolHit(f"{u}__get_forecast", u, "forecast", score) for u, score in scored]


def _calls(ledger: OutcomeLedger, unit: str, ok: int, failed: int) -> None:
    for outcome in [True] * ok + [False] * failed:
        ledger.record(unit, tool_key("get_forecast"), outcome)


async def test_a_failing_tool_falls_behind_one_that_serves_and_the_choice_is_a_decision() -> None:
    ledger = OutcomeLedger()
    clock = [1_700_000_000.0]
    async with MemoryStore.open() as store:
        routing = LearnedRouting(
            store, lambda: ledger, lambda: _routes("bad", "good"), lambda unit: unit, clock=lambda: clock[0]
        )
        hits = _hits(("bad", 2.0), ("good", 1.8))
        # no evidence: the text order stands, nothing is recorded
        assert [h.name for h in await routing.rerank("weather", hits)] == [
            "bad__get_forecast",
            "good__get_forecast",
        ]
        assert await store.decisions() == []
        _calls(ledger, "bad", 0, 8)
        _calls(ledger, "good", 8, 0)
        # Beta(2, 2): bad 2/12 -> boost (1/6 - 1/2) / (1/2) = -2/3; good 10/12 -> +2/3
        ranked = await routing.rerank("weather", hits)
        assert [h.name for h in ranked] == ["good__get_forecast", "bad__get_forecast"]
        assert [h.reliability for h in ranked] == [
            pytest.approx(2 / 3, abs=1e-4),
            pytest.approx(-2 / 3, abs=1e-4),
        ]
        assert 1.8 * (1 + WEIGHT * 2 / 3) > 2.0 * (1 - WEIGHT * 2 / 3)
        [decision] = await store.decisions()
        assert (decision.system, decision.choice, decision.subject) == (
            "s2",
            "route_first",
            "route:good__get_forecast",
        )
        assert decision.inputs["predicted_success"] == pytest.approx(10 / 12)
        assert decision.inputs["outcome_key"] == ["good", "tool:get_forecast"]
        assert decision.inputs["tally_at_decision"] == [8, 0]
        assert [a["tool"] for a in decision.alternatives] == ["bad__get_forecast", "good__get_forecast"]
        assert "8 of 8 calls served" in decision.rationale
        # the same choice again within the hour is not recorded twice; after it, it is
        await routing.rerank("weather", hits)
        assert len(await store.decisions()) == 1
        clock[0] += RECORD_EVERY_S
        await routing.rerank("weather", hits)
        assert len(await store.decisions()) == 2
        # what followed the first choice: 12 more calls of good, 9 served (prediction 0.83, observed 0.75)
        _calls(ledger, "good", 9, 3)
        records = DecisionRecords(store, lambda: ledger)
        document = await records.decision(decision.id or 0)
        assert document is not None
        followed = document["observed"]
        assert (followed["calls_since"], followed["successes"]) == (12, 9)
        assert followed["predicted"] == {"success": pytest.approx(10 / 12)}
        assert followed["as_predicted"] is True  # |0.75 - 0.83| < 0.3


async def test_a_far_better_text_match_is_not_overturned_by_a_record() -> None:
    ledger = OutcomeLedger()
    _calls(ledger, "bad", 0, 50)
    async with MemoryStore.open() as store:
        routing = LearnedRouting(store, lambda: ledger, lambda: _routes("bad", "good"), lambda unit: unit)
        ranked = await routing.rerank("weather", _hits(("bad", 5.0), ("good", 1.0)))
        assert [h.name for h in ranked] == ["bad__get_forecast", "good__get_forecast"]  # x0.5 at worst
        assert await store.decisions() == []


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "config.toml"
    lines: list[str] = []
    for name, fail in (("bad", True), ("good", False)):
        args = [str(FORECAST)] + (["--fail"] if fail else [])
        lines += [f"[servers.{name}]", f'command = "{sys.executable}"', f"args = {json.dumps(args)}"]
    config.write_text("\n".join(lines) + "\n")
    return config


async def _search(client: Client) -> list[dict[str, Any]]:
    result = await client.call_tool("vsm_search_tools", {"query": "weather forecast for a city"})
    return list(json.loads(str(result.content[0].text))["tools"])  # type: ignore[union-attr]


@pytest.mark.slow
async def test_through_the_gateway_learning_reorders_search_and_survives_a_restart(tmp_path: Path) -> None:
    settings = load_settings(_config(tmp_path), state_dir=tmp_path / "state")
    async with Runtime.open(settings, seed=1) as runtime:
        await runtime.fleet.settled(60)
        async with Client(runtime.gateway.server, mode="legacy") as client:
            before = await _search(client)
            assert [t["name"] for t in before] == [
                "bad__get_forecast",
                "good__get_forecast",
            ]  # alike: by name
            assert before[0]["score"] == before[1]["score"]
            for _ in range(6):
                assert (await client.call_tool("bad__get_forecast", {"city": "Oslo"})).is_error is True
                assert (await client.call_tool("good__get_forecast", {"city": "Oslo"})).is_error is False
            after = await _search(client)
            assert [t["name"] for t in after] == ["good__get_forecast", "bad__get_forecast"]
            assert after[0]["reliability"] > 0 > after[1]["reliability"]
        [decision] = [d for d in await runtime.store.decisions() if d.choice == "route_first"]
        assert decision.inputs["passed_over"] == "bad__get_forecast"
        mark = runtime.notices.last_seq
        with anyio.fail_after(10):  # the ledger is saved with the next stored status
            await runtime.notices.wait_for("status.stored", after=mark)
    async with Runtime.open(settings, seed=1) as runtime:
        await runtime.fleet.settled(60)
        async with Client(runtime.gateway.server, mode="legacy") as client:
            again = await _search(client)
            assert [t["name"] for t in again] == ["good__get_forecast", "bad__get_forecast"]
            assert again[0]["reliability"] == after[0]["reliability"]
