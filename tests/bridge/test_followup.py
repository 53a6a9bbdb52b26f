"""What followed a unit's supervision decision, worked out by hand on a small ledger and store."""

from __future__ import annotations

import pytest

from vsm_mcp.bridge.followup import FORECAST_HORIZON_S, followup, server_tally, stamp
from vsm_mcp.core.messages import Decision, OperatorAction
from vsm_mcp.discovery.outcomes import OutcomeLedger
from vsm_mcp.store import MemoryStore

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0


def _decision(choice: str, predicted: dict[str, object], subject: str = "w", at: float = T0) -> Decision:
    return Decision(at, "s1", subject, choice, "rule", "why", {"predicted": predicted})


def _calls(ledger: OutcomeLedger, server: str, ok: int, failed: int, category: str = "weather") -> None:
    for _ in range(ok):
        ledger.record(server, category, True)
    for _ in range(failed):
        ledger.record(server, category, False)


async def _stored(store: MemoryStore, decision: Decision) -> Decision:
    found = await store.decision(await store.record_decision(decision))
    assert found is not None
    return found


def test_the_tally_sums_every_category_of_one_server_only() -> None:
    ledger = OutcomeLedger()
    _calls(ledger, "w", 3, 1, "weather")
    _calls(ledger, "w", 2, 0, "forecast")
    _calls(ledger, "other", 9, 9)
    assert server_tally(ledger, "w") == (5, 1)
    assert server_tally(ledger, "nobody") == (0, 0)
    stamped = stamp(_decision("restart", {"ready_within_s": 61.0}), ledger, "w")
    assert stamped.inputs["server_tally_at_decision"] == [5, 1]
    assert stamped.inputs["outcome_server"] == "w"
    assert stamped.inputs["predicted"] == {"ready_within_s": 61.0}


async def test_a_restart_holds_once_a_call_succeeds_and_fails_when_a_crash_loop_stops_it() -> None:
    ledger = OutcomeLedger()
    _calls(ledger, "w", 4, 2)
    async with MemoryStore.open() as store:
        restart = await _stored(store, stamp(_decision("restart", {"ready_within_s": 61.0}), ledger, "w"))
        early = await followup(restart, ledger, store, now=T0 + 5)
        assert early is not None
        assert (early["calls_since"], early["as_predicted"], early["next"]) == (0, None, None)
        assert early["age_s"] == 5.0
        _calls(ledger, "w", 0, 3)  # calls after the decision, all failing
        failing = await followup(restart, ledger, store, now=T0 + 10)
        assert failing is not None
        assert (failing["successes"], failing["failures"], failing["observed_success"]) == (0, 3, 0.0)
        assert failing["as_predicted"] is None  # no success yet, not stopped either
        stop = await _stored(store, _decision("stop", {"calls_served": 0}, at=T0 + 12))
        stopped = await followup(restart, ledger, store, now=T0 + 20)
        assert stopped is not None
        assert stopped["next"] == {"id": stop.id, "choice": "stop", "after_s": 12.0}
        assert stopped["as_predicted"] is False
        _calls(ledger, "w", 1, 0)
        served = await followup(restart, ledger, store, now=T0 + 30)
        assert served is not None
        assert served["observed_success"] == pytest.approx(1 / 4)
        assert served["as_predicted"] is True


async def test_a_stop_or_quarantine_predicts_no_call_served_unless_an_operator_acts() -> None:
    ledger = OutcomeLedger()
    async with MemoryStore.open() as store:
        quarantine = await _stored(store, stamp(_decision("quarantine", {"calls_served": 0}), ledger, "w"))
        quiet = await followup(quarantine, ledger, store, now=T0 + 60)
        assert quiet is not None and quiet["as_predicted"] is True
        _calls(ledger, "w", 2, 0)
        leaked = await followup(quarantine, ledger, store, now=T0 + 60)
        assert leaked is not None
        assert (leaked["calls_since"], leaked["as_predicted"]) == (2, False)
        # an operator approved it: the calls after are no contradiction of the decision
        await store.record_action(OperatorAction(T0 + 30, "local", "servers.approve", "w", "cli"))
        approved = await followup(quarantine, ledger, store, now=T0 + 60)
        assert approved is not None and approved["as_predicted"] is None
        # an action on another unit changes nothing
        other = await _stored(store, stamp(_decision("stop", {"calls_served": 0}, "x"), ledger, "x"))
        _calls(ledger, "x", 0, 1)
        await store.record_action(OperatorAction(T0 + 30, "local", "servers.restart", "w", "cli"))
        followed = await followup(other, ledger, store, now=T0 + 60)
        assert followed is not None and followed["as_predicted"] is False


async def test_a_park_forecast_is_judged_after_its_hour() -> None:
    ledger = OutcomeLedger()
    async with MemoryStore.open() as store:
        park = await _stored(store, stamp(_decision("park", {"calls_within_hour": 0.2}), ledger, "w"))
        prestart = await _stored(
            store, stamp(_decision("pre-start", {"calls_within_hour": 6.0}, "v"), ledger, "v")
        )
        within = await followup(park, ledger, store, now=T0 + FORECAST_HORIZON_S - 1)
        assert within is not None and within["as_predicted"] is None
        after = await followup(park, ledger, store, now=T0 + FORECAST_HORIZON_S)
        assert after is not None and after["as_predicted"] is True  # under one call foreseen, none came
        missed = await followup(prestart, ledger, store, now=T0 + FORECAST_HORIZON_S)
        assert missed is not None and missed["as_predicted"] is False  # six foreseen, none came
        _calls(ledger, "v", 5, 1)
        met = await followup(prestart, ledger, store, now=T0 + FORECAST_HORIZON_S)
        assert met is not None and met["as_predicted"] is True


async def test_an_unstamped_decision_has_no_followup() -> None:
    async with MemoryStore.open() as store:
        plain = await _stored(store, _decision("escalate_to_operator", {}))
        assert await followup(plain, OutcomeLedger(), store) is None
