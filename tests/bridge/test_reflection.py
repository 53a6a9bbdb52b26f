"""Reflection from stored data: exact Brier score and reliability bins, contradictions, suggestions."""

from __future__ import annotations

import pytest

from vsm_mcp.bridge.reflection import Observation, brier, reflect, reliability
from vsm_mcp.core.messages import (
    AlgedonicAlert,
    ApprovalRequest,
    Decision,
    Severity,
    Valence,
)
from vsm_mcp.discovery.outcomes import OutcomeLedger, Tally
from vsm_mcp.store import MemoryStore

pytestmark = pytest.mark.anyio


def test_brier_score_and_reliability_bins_on_a_worked_example() -> None:
    observations = [Observation(0.8, 8, 2), Observation(0.3, 1, 3), Observation(0.55, 0, 0)]
    # (8 * 0.2^2 + 2 * 0.8^2 + 1 * 0.7^2 + 3 * 0.3^2) / 14 = 2.36 / 14
    assert brier(observations) == pytest.approx(2.36 / 14)
    bins = reliability(observations)
    assert [(b.low, b.high, b.calls) for b in bins] == [
        (0.0, 0.2, 0),
        (0.2, 0.4, 4),
        (0.4, 0.6, 0),
        (0.6, 0.8, 0),
        (0.8, 1.0, 10),
    ]
    assert (bins[1].predicted, bins[1].observed) == (pytest.approx(0.3), pytest.approx(0.25))
    assert (bins[4].predicted, bins[4].observed) == (pytest.approx(0.8), pytest.approx(0.8))
    assert bins[0].predicted is None and brier([Observation(0.5, 0, 0)]) is None


def test_the_ledgers_posterior_is_the_beta_update() -> None:
    ledger = OutcomeLedger(alpha=2.0, beta=2.0)
    for ok in (True, True, True, False):
        ledger.record("time", "clock", ok)
    assert ledger.posterior_mean("time", "clock") == pytest.approx((3 + 2) / (4 + 4))
    assert ledger.posterior_mean("time", "other") == pytest.approx(0.5)  # the prior alone


def _acquired(at: float, unit: str, server: str, category: str, *, p: float, before: list[int]) -> Decision:
    inputs = {
        "unit": unit,
        "predicted_success": p,
        "outcome_key": [server, category],
        "tally_at_decision": before,
    }
    return Decision(at, "s5", f"acquire:pypi:{server}@1", "acquired", "auto_approve", "ok", inputs)


async def test_a_scripted_day_gives_the_brier_score_computed_independently_and_numbered_suggestions() -> None:
    now = 100_000.0
    async with MemoryStore.open() as store:
        # Two acquisitions; the ledger had seen 2 successes of "good" before the first.
        first = await store.record_decision(
            _acquired(now - 7200, "good", "good-srv", "time", p=0.7, before=[2, 0])
        )
        second = await store.record_decision(
            _acquired(now - 3600, "bad", "bad-srv", "weather", p=0.75, before=[0, 0])
        )
        ledger = OutcomeLedger()
        ledger.tallies[("good-srv", "time")] = Tally(2 + 18, 2)  # 18 of 20 calls since succeeded
        ledger.tallies[("bad-srv", "weather")] = Tally(3, 9)  # 3 of 12
        ledger.tallies[("other", "x")] = Tally(5, 5)  # no acquisition predicted it: not counted
        await ledger.save(store)
        for minutes in (10, 20, 30):  # S5 deferred three proposals for want of budget
            await store.record_decision(
                Decision(
                    now - minutes * 60,
                    "s5",
                    "variety_gap",
                    "defer",
                    "budget",
                    "over",
                    {"s3": {"max_units": 2}},
                )
            )
        await store.record_decision(Decision(now - 60, "s5", "variety_gap", "approve", "auto", "ok"))
        for i in range(3):
            await store.record_alert(
                AlgedonicAlert(
                    "unit:bad", "drift", Valence.PAIN, Severity.MEDIUM, 1, now - 100 - i, now - 100 - i, "d"
                )
            )
        await store.ask_approval(
            ApprovalRequest("acquisition", "acquire:pypi:x@1", now - 5400, "Install x?", {})
        )

        report = await reflect(store, now=now)

    independent = (18 * 0.3**2 + 2 * 0.7**2 + 3 * 0.25**2 + 9 * 0.75**2) / 32
    assert report["brier"] == pytest.approx(independent, abs=1e-6)
    assert report["calls_observed"] == 32
    assert [(a["decision"], a["successes"], a["failures"]) for a in report["acquisitions"]] == [
        (second, 3, 9),
        (first, 18, 2),
    ]
    # 25% observed against 75% expected; 90% against 70% is within the 0.3 allowed.
    assert [c["decision"] for c in report["contradictions"]] == [second]
    assert report["suggestions"] == [
        "remove or replace bad: 3 of 12 calls succeeded since it was acquired as bad-srv for 'weather' "
        f"(decision {second}), against 75% expected",
        "raise [budget] max_units (now 2): S5 deferred 3 of 4 acquisitions in the last day because S3 was "
        "over budget with nothing idle to park",
        "look at bad: S1 found its calls drifting 3 times in the last day",
        "answer the 1 question waiting for an operator (`vsm-mcp approvals list`; the oldest has waited 1.5 h)",
    ]


async def test_with_nothing_stored_there_is_nothing_to_say() -> None:
    async with MemoryStore.open() as store:
        report = await reflect(store, now=1.0)
    assert (report["brier"], report["calls_observed"], report["suggestions"]) == (None, 0, [])


def test_what_followed_an_acquisition_is_its_calls_and_the_categorys_unanswered_share() -> None:
    from vsm_mcp.bridge.reflection import observed
    from vsm_mcp.core.messages import DemandAggregate

    decision = _acquired(7300.0, "w", "w-srv", "weather", p=0.6, before=[1, 1])
    ledger = OutcomeLedger()
    ledger.tallies[("w-srv", "weather")] = Tally(1 + 4, 1 + 1)
    demand = [
        DemandAggregate("weather", 3600, 4, 0),  # the hour before: nothing answered it
        DemandAggregate("weather", 7200, 2, 0),  # the hour of the decision, before it
        DemandAggregate("weather", 10800, 5, 4),  # the hour after
        DemandAggregate("files", 10800, 9, 9),  # another category
        DemandAggregate("weather", 14400, 7, 7),  # beyond the one-hour horizon
    ]
    assert observed(decision, ledger, demand) == {
        "predicted_success": 0.6,
        "successes": 4,
        "failures": 1,
        "observed_success": 0.8,
        "unanswered_share_before": 1.0,
        "unanswered_share_after": 0.2,
        "horizon_hours": 1,
    }
    assert observed(Decision(1.0, "s3", "park:w", "park", "idle", "idle"), ledger, demand) is None


async def test_other_decisions_are_counted_held_contradicted_or_open_and_repeated_crash_loops_suggest_a_look() -> (
    None
):
    from vsm_mcp.bridge.followup import stamp

    now = 200_000.0
    ledger = OutcomeLedger()
    ledger.tallies[("w", "weather")] = Tally(4, 0)

    def unit(at: float, subject: str, choice: str, predicted: dict[str, object]) -> Decision:
        return stamp(
            Decision(at, "s1", subject, choice, "rule", "why", {"predicted": predicted}), ledger, subject
        )

    async with MemoryStore.open() as store:
        # three crash loops of "w" in the day: each a restart whose next decision stopped it
        for hour in (3, 2, 1):
            await store.record_decision(unit(now - hour * 3600, "w", "restart", {"ready_within_s": 61}))
            await store.record_decision(unit(now - hour * 3600 + 5, "w", "stop", {"calls_served": 0}))
        # a quarantine of "q", nothing served since: held
        await store.record_decision(unit(now - 600, "q", "quarantine", {"calls_served": 0}))
        # a restart of "v" with no call since: open
        await store.record_decision(unit(now - 60, "v", "restart", {"ready_within_s": 61}))
        await ledger.save(store)
        report = await reflect(store, now=now)

    assert report["followed"]["by_choice"] == {
        "quarantine": {"decisions": 1, "held": 1, "contradicted": 0, "open": 0},
        "restart": {"decisions": 4, "held": 0, "contradicted": 3, "open": 1},
        "stop": {"decisions": 3, "held": 3, "contradicted": 0, "open": 0},
    }
    contradicted = report["followed"]["contradicted"]
    assert [(c["subject"], c["choice"], c["next"]["choice"]) for c in contradicted] == [
        ("w", "restart", "stop")
    ] * 3
    assert report["suggestions"] == [
        "look at w (vsm-mcp servers logs w): 3 of its restarts in the last day ended in a crash loop "
        "instead of serving again"
    ]
    assert report["brier"] is None  # no acquisition: nothing calibrated
