"""No field of the reflection report is a constant: built from different stored days, every leaf
of `reflect` moves or disappears (only the reliability table's bin edges, fixed by `BINS`, stay)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.leaves import all_paths, constant_fields

from vsm_mcp.bridge.followup import stamp
from vsm_mcp.bridge.reflection import reflect
from vsm_mcp.core.messages import (
    AlgedonicAlert,
    ApprovalRequest,
    Decision,
    OperatorAction,
    Severity,
    Valence,
)
from vsm_mcp.discovery.outcomes import OutcomeLedger, Tally
from vsm_mcp.store import MemoryStore

pytestmark = pytest.mark.anyio

#: Leaves constant by definition, each with why.
ALLOWED = {
    "reliability[].low",  # the bins' edges are the fixed partition of [0, 1] into BINS bins
    "reliability[].high",  # idem
}


def _acquired(at: float, unit: str, server: str, category: str, *, p: float, before: list[int]) -> Decision:
    inputs = {
        "unit": unit,
        "predicted_success": p,
        "outcome_key": [server, category],
        "tally_at_decision": before,
    }
    return Decision(at, "s5", f"acquire:pypi:{server}@1", "acquired", "auto_approve", "ok", inputs)


async def _day(now: float, k: int) -> dict[str, Any]:
    """A stored day whose every figure depends on ``k`` (1 or 2): acquisitions with calls since,
    S5 deferring proposals, drifts, crash loops, questions waiting, rollbacks."""
    async with MemoryStore.open() as store:
        for _ in range(k):  # decision numbers differ from day to day
            await store.record_decision(Decision(now - 86_400 * 2, "s5", "earlier", "none", "r", "r"))
        ledger = OutcomeLedger()
        ledger.tallies[(f"good{k}", f"time{k}")] = Tally(k + 17 + k, 3 - k)
        ledger.tallies[(f"bad{k}", f"weather{k}")] = Tally(k, 10 + k)
        ledger.tallies[(f"w{k}", f"cat{k}")] = Tally(4 * k, 0)
        await store.record_decision(
            _acquired(now - 7200, f"good-{k}", f"good{k}", f"time{k}", p=0.1 + 0.5 * k / 2, before=[k, 0])
        )
        await store.record_decision(
            _acquired(now - 3600 * k, f"bad-{k}", f"bad{k}", f"weather{k}", p=0.55 + 0.2 * k, before=[0, 0])
        )
        for minutes in range(2 + k):  # S5 deferred proposals for want of budget
            inputs = {"s3": {"max_units": k}}
            await store.record_decision(
                Decision(now - 60 * (minutes + 1), "s5", "variety_gap", "defer", "budget", "over", inputs)
            )
        await store.record_decision(Decision(now - 30 * k, "s5", "variety_gap", "approve", "auto", "ok"))
        for i in range(2 + k):
            at = now - 100 * k - i
            await store.record_alert(
                AlgedonicAlert(f"unit:bad-{k}", "drift", Valence.PAIN, Severity.MEDIUM, 1, at, at, "d")
            )
        for _ in range(k):
            await store.ask_approval(
                ApprovalRequest("acquisition", f"acquire:pypi:x{k}@1", now - 1800 * k, "Install?", {})
            )
        for _ in range(2 + k):
            await store.record_decision(
                Decision(now - 50 * k, "s5", f"acquire:pypi:r{k}@1", "rolled_back", "smoke", "failed")
            )

        def unit(at: float, subject: str, choice: str, predicted: dict[str, object]) -> Decision:
            decision = Decision(at, "s1", subject, choice, f"rule{k}", "why", {"predicted": predicted})
            return stamp(decision, ledger, f"w{k}")

        for hour in range(2 + k):  # crash loops: restarts the next decision stopped
            at = now - (hour + 1) * 3600 - 17 * k
            await store.record_decision(unit(at, f"w{k}", "restart", {"ready_within_s": 60 + k}))
            await store.record_decision(unit(at + 5, f"w{k}", "stop", {"calls_served": 0}))
        if k == 2:
            await store.record_decision(unit(now - 600, "q", "quarantine", {"calls_served": 0}))
            # a restart with no call since (open), one served since (held; the stops before it
            # saw calls served after them: contradicted)
            await store.record_decision(
                stamp(
                    Decision(now - 60, "s1", "v", "restart", "r", "w", {"predicted": {"ready_within_s": 61}}),
                    ledger,
                    "v",
                )
            )
            await store.record_decision(unit(now - 120, f"w{k}", "restart", {"ready_within_s": 61}))
            # S3 parked it two hours ago expecting no call within the hour: calls came (contradicted)
            park = Decision(
                now - 7300, "s3", f"w{k}", "park", "idle", "idle", {"predicted": {"calls_within_hour": 0.2}}
            )
            await store.record_decision(stamp(park, ledger, f"w{k}"))
            ledger.tallies[(f"w{k}", f"cat{k}")] = Tally(4 * k + 3, 0)
            # an operator restarted the unit after all but its last stop: those stops are open
            await store.record_action(OperatorAction(now - 7200, "op", "servers.restart", f"w{k}", "cli"))
        await ledger.save(store)
        return await reflect(store, now=now)


async def _reports() -> list[dict[str, Any]]:
    async with MemoryStore.open() as store:
        empty = await reflect(store, now=1.0)
    return [empty, await _day(100_000.0, 1), await _day(200_000.0, 2)]


async def test_every_field_of_the_reflection_moves_with_the_stored_day() -> None:
    empty, first, second = await _reports()
    assert first["suggestions"] and first["followed"]["contradicted"] and first["contradictions"]
    assert all_paths([empty, first, second]) >= ALLOWED  # no stale allowance
    assert constant_fields([empty, first, second], ALLOWED) == []
    # Between two filled days too, not only against the empty store.
    assert constant_fields([first, second], ALLOWED) == []


async def test_a_planted_constant_field_is_reported() -> None:
    reports = await _reports()
    for report in reports:
        report["planted"] = "always"
        report["acquisitions"].append({"horizon": 1})
    assert constant_fields(reports, ALLOWED) == ["acquisitions[].horizon", "planted"]
