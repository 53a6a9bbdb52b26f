"""S5: decisions on proposals follow the rules; escalated pain waits for an operator."""

from __future__ import annotations

import anyio
import pytest

from vsm_mcp.core.messages import AlgedonicAlert, Priority, Severity, Valence
from vsm_mcp.core.variety import DemandProfile
from vsm_mcp.store.memory import MemoryStore
from vsm_mcp.vsm.bus import Bus
from vsm_mcp.vsm.events import AcquisitionProposal, ControlReport, GapClosed
from vsm_mcp.vsm.policy import Policy, PolicyRules

pytestmark = pytest.mark.anyio

READING = DemandProfile(counts={"files": 4, "weather": 4}, capacity={"files": 100}).reading()
PROPOSAL = AcquisitionProposal(
    at=10.0,
    reading=READING,
    unmatched=(("weather", 4),),
    persisted_events=50,
    persisted_s=2.5,
    expected_gaps=(("weather", 0.0),),
)


@pytest.mark.parametrize(
    ("auto", "choice", "rule"),
    [(True, "approve", "auto_approve_acquisition"), (False, "ask_operator", "acquisition needs an operator")],
)
async def test_a_proposal_is_one_decision_per_the_auto_approve_rule(
    auto: bool, choice: str, rule: str
) -> None:
    async with MemoryStore.open() as store, Bus() as bus:
        inbox = bus.inbox("s5")
        s5 = Policy(inbox, store, rules=PolicyRules(auto_approve_acquisition=auto), wall_clock=lambda: 42.0)
        await bus.publish("s5", PROPOSAL, sender="s4")
        await bus.publish("s5", GapClosed(11.0, READING), sender="s4")
        inbox.close()
        with anyio.fail_after(5):
            await s5.run()
        [decision] = await store.decisions()
    assert (decision.at, decision.system, decision.subject, decision.choice, decision.rule) == (
        42.0,
        "s5",
        "variety_gap",
        choice,
        rule,
    )
    assert (
        decision.rationale
        == "gap 1.500 persisted 50 events / 2.5s; unmatched: weather x4; with weather answered "
        "the gap would be 0.000; S3 has not reported"
    )
    assert decision.inputs["unmatched"] == [["weather", 4]]
    assert decision.inputs["expected_gap_if_answered"] == {"weather": 0.0}
    assert decision.inputs["s3"] is None
    assert (s5.handled["AcquisitionProposal"], s5.gap_open) == (1, False)


async def test_only_pain_at_the_escalation_level_needs_an_operator_until_acknowledged() -> None:
    def alert(source: str, valence: Valence, severity: Severity) -> AlgedonicAlert:
        return AlgedonicAlert(source, "k", valence, severity, 1, 1.0, 1.0, "d")

    async with MemoryStore.open() as store, Bus() as bus:
        inbox = bus.inbox("s5")
        s5 = Policy(inbox, store, rules=PolicyRules(escalate_at=Severity.HIGH))
        for a in (
            alert("a", Valence.PAIN, Severity.MEDIUM),
            alert("b", Valence.PAIN, Severity.HIGH),
            alert("c", Valence.PLEASURE, Severity.CRITICAL),
        ):
            await bus.publish("s5", a, priority=Priority.URGENT)
        inbox.close()
        with anyio.fail_after(5):
            await s5.run()
        assert len(await store.alerts()) == 3
        [decision] = await store.decisions()
    assert decision.subject == "b:k"
    assert list(s5.attention) == [2]
    assert s5.status().state == "attention"
    assert s5.acknowledge(2) is True
    assert s5.acknowledge(2) is False
    assert s5.status().state == "ok"


def _control(*, over_budget: bool, idle: tuple[str, ...], failed: tuple[str, ...] = ()) -> ControlReport:
    return ControlReport(
        at=5.0,
        running_units=3,
        max_units=2,
        rss_bytes=0,
        max_rss_bytes=None,
        over_budget=over_budget,
        failed_units=failed,
        idle_candidates=idle,
        quarantined_units=("q",),
    )


@pytest.mark.parametrize(
    ("control", "choice"),
    [
        (_control(over_budget=True, idle=()), "defer"),  # nothing S3 could park: no acquisition now
        (_control(over_budget=True, idle=("old",)), "approve"),  # S3 will park "old" to make room
        (_control(over_budget=False, idle=(), failed=("fs",)), "approve"),
    ],
)
async def test_s5_weighs_s4s_gap_against_s3s_present_and_records_both(
    control: ControlReport, choice: str
) -> None:
    async with MemoryStore.open() as store, Bus() as bus:
        inbox = bus.inbox("s5")
        s5 = Policy(inbox, store, rules=PolicyRules(auto_approve_acquisition=True), wall_clock=lambda: 42.0)
        await bus.publish("s5", control, sender="s3")
        await bus.publish("s5", PROPOSAL, sender="s4")
        inbox.close()
        with anyio.fail_after(5):
            await s5.run()
        [decision] = await store.decisions()
    assert decision.choice == choice == s5.last_proposal_choice
    s3 = decision.inputs["s3"]
    assert (s3["running_units"], s3["max_units"], s3["over_budget"]) == (3, 2, control.over_budget)
    assert s3["quarantined_units"] == ["q"] and s3["failed_units"] == list(control.failed_units)
    assert "S3: 3 units running of 2" in decision.rationale
