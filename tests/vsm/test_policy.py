"""S5: decisions on proposals follow the rules; escalated pain waits for an operator."""

from __future__ import annotations

import anyio
import pytest

from vsm_mcp.core.messages import AlgedonicAlert, Priority, Severity, Valence
from vsm_mcp.core.variety import DemandProfile
from vsm_mcp.store.memory import MemoryStore
from vsm_mcp.vsm.bus import Bus
from vsm_mcp.vsm.events import AcquisitionProposal, GapClosed
from vsm_mcp.vsm.policy import Policy, PolicyRules

pytestmark = pytest.mark.anyio

READING = DemandProfile(counts={"files": 4, "weather": 4}, capacity={"files": 100}).reading()
PROPOSAL = AcquisitionProposal(
    at=10.0, reading=READING, unmatched=(("weather", 4),), persisted_events=50, persisted_s=2.5
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
    assert decision.rationale == "gap 1.500 persisted 50 events / 2.5s; unmatched: weather x4"
    assert decision.inputs["unmatched"] == [["weather", 4]]
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
