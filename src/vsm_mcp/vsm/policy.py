"""S5 Policy: identity and rules; the one place algedonic alerts land.

Invariants:

* S5 takes its messages from its inbox, urgent lane first (the bus's
  guarantee), so an algedonic alert is handled ahead of any queued routine
  S3/S4 traffic.
* Every `AlgedonicAlert` is stored (`Store.record_alert`) before S5 handles
  the next message. A PAIN alert at or above ``rules.escalate_at`` is also a
  decision (``escalate_to_operator``), stored with `Store.record_decision`,
  and stays in ``attention`` until an operator acknowledges it.
* Every `AcquisitionProposal` becomes one stored decision: ``approve`` when
  ``rules.auto_approve_acquisition`` is set, else ``ask_operator``.
* At shutdown `drain_urgent` stores the alerts still queued (the algedonic
  channel offers its pending ones as it stops).
* ``journal`` keeps the last ``journal_size`` handled messages in handling
  order (lane and type), for status and for tests of that order.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from vsm_mcp.core.messages import AlgedonicAlert, Decision, Priority, Severity, Valence
from vsm_mcp.core.ports import Store
from vsm_mcp.vsm.bus import Envelope, Inbox
from vsm_mcp.vsm.events import AcquisitionProposal, ControlReport, GapClosed
from vsm_mcp.vsm.status import SystemStatus

#: How many handled messages S5 remembers for status.
JOURNAL_SIZE = 100


@dataclass(frozen=True, slots=True)
class PolicyRules:
    """S5's rules; the composition root builds them from settings."""

    auto_approve_acquisition: bool = False
    escalate_at: Severity = Severity.HIGH


@dataclass(frozen=True, slots=True)
class Handled:
    """One message S5 handled: which lane, what type, and the stored id if any."""

    priority: Priority
    kind: str
    stored_id: int | None


class Policy:
    """S5: stores alerts, decides on proposals, keeps what needs an operator."""

    name = "s5"

    def __init__(
        self,
        inbox: Inbox,
        store: Store,
        *,
        rules: PolicyRules | None = None,
        journal_size: int = JOURNAL_SIZE,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._inbox = inbox
        self._store = store
        self.rules = rules or PolicyRules()
        self._wall_clock = wall_clock
        self.journal: deque[Handled] = deque(maxlen=journal_size)
        self.handled: Counter[str] = Counter()
        self.attention: dict[int, AlgedonicAlert] = {}
        self.last_control: ControlReport | None = None
        self.gap_open = False
        #: What S5 chose on the last proposal: ``approve``, ``ask_operator`` or ``defer``.
        self.last_proposal_choice: str | None = None

    async def run(self) -> None:
        """Handle every message, urgent first, until the inbox closes."""
        async for envelope in self._inbox:
            await self.handle(envelope)

    async def handle(self, envelope: Envelope) -> None:
        """Handle one message (the store writes are awaited before returning)."""
        payload = envelope.payload
        stored: int | None = None
        match payload:
            case AlgedonicAlert():
                stored = await self._on_alert(payload)
            case AcquisitionProposal():
                stored = await self._on_proposal(payload)
                self.gap_open = True
            case GapClosed():
                self.gap_open = False
            case ControlReport():
                self.last_control = payload
        kind = type(payload).__name__
        self.handled[kind] += 1
        self.journal.append(Handled(envelope.priority, kind, stored))

    async def drain_urgent(self) -> int:
        """Handle the urgent messages still queued, without waiting for more; return how many.

        For shutdown, after S5's task has stopped: alerts already felt are still stored.
        """
        handled = 0
        while True:
            try:
                envelope = self._inbox.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream):
                return handled
            if envelope.priority is not Priority.URGENT:
                return handled  # urgent comes first, so none is left
            await self.handle(envelope)
            handled += 1

    def acknowledge(self, alert_id: int) -> bool:
        """An operator saw an escalated alert; returns whether it was pending."""
        return self.attention.pop(alert_id, None) is not None

    async def _on_alert(self, alert: AlgedonicAlert) -> int:
        alert_id = await self._store.record_alert(alert)
        if alert.valence is Valence.PAIN and alert.severity >= self.rules.escalate_at:
            self.attention[alert_id] = alert
            await self._store.record_decision(
                Decision(
                    at=self._wall_clock(),
                    system="s5",
                    subject=f"{alert.source}:{alert.kind}",
                    choice="escalate_to_operator",
                    rule=f"pain >= {self.rules.escalate_at.name}",
                    rationale=f"{alert.count} signal(s), severity {alert.severity.name}: {alert.detail}",
                    inputs={"alert_id": alert_id, "count": alert.count, "severity": int(alert.severity)},
                )
            )
        return alert_id

    async def _on_proposal(self, proposal: AcquisitionProposal) -> int:
        """S4's view of the future (the gap) weighed against S3's of the present (the budget).

        The rule, recorded with every decision: while S3 is over budget with no idle unit it
        could park, acquiring would only overload the system, so the proposal is deferred;
        otherwise it is approved (``auto_approve_acquisition``) or put to an operator.
        """
        auto = self.rules.auto_approve_acquisition
        reading = proposal.reading
        top = ", ".join(f"{c} x{n}" for c, n in proposal.unmatched[:5]) or "none"
        expected = dict(proposal.expected_gaps)
        worth = (
            f"; with {proposal.unmatched[0][0]} answered the gap would be {expected[proposal.unmatched[0][0]]:.3f}"
            if proposal.unmatched and proposal.unmatched[0][0] in expected
            else ""
        )
        control = self.last_control
        if control is not None and control.over_budget and not control.idle_candidates:
            choice, rule = "defer", "S3 over budget with no idle unit to park: no acquisition now"
        elif auto:
            choice, rule = "approve", "auto_approve_acquisition"
        else:
            choice, rule = "ask_operator", "acquisition needs an operator"
        self.last_proposal_choice = choice
        present = (
            "S3 has not reported"
            if control is None
            else f"S3: {control.running_units} units running"
            + (f" of {control.max_units}" if control.max_units is not None else "")
            + (", over budget" if control.over_budget else "")
            + (f", failed: {', '.join(control.failed_units)}" if control.failed_units else "")
            + (f", quarantined: {', '.join(control.quarantined_units)}" if control.quarantined_units else "")
        )
        return await self._store.record_decision(
            Decision(
                at=self._wall_clock(),
                system="s5",
                subject="variety_gap",
                choice=choice,
                rule=rule,
                rationale=(
                    f"gap {reading.gap:.3f} persisted {proposal.persisted_events} events / "
                    f"{proposal.persisted_s:.1f}s; unmatched: {top}{worth}; {present}"
                ),
                inputs={
                    "gap": reading.gap,
                    "coverage": reading.coverage,
                    "demand_variety_bits": reading.demand_variety_bits,
                    "system_variety_bits": reading.system_variety_bits,
                    "unmatched": [list(u) for u in proposal.unmatched],
                    "expected_gap_if_answered": expected,
                    "s3": None
                    if control is None
                    else {
                        "running_units": control.running_units,
                        "max_units": control.max_units,
                        "rss_bytes": control.rss_bytes,
                        "over_budget": control.over_budget,
                        "failed_units": list(control.failed_units),
                        "quarantined_units": list(control.quarantined_units),
                        "idle_candidates": list(control.idle_candidates),
                    },
                },
            )
        )

    def status(self) -> SystemStatus:
        """What S5 has handled and what waits for an operator."""
        urgent = self._inbox.stats().urgent
        return SystemStatus(
            "attention" if self.attention else "ok",
            {
                "alerts": self.handled["AlgedonicAlert"],
                "proposals": self.handled["AcquisitionProposal"],
                "attention": len(self.attention),
                "gap_open": self.gap_open,
                "urgent_queued": urgent.queued,
                "over_budget": None if self.last_control is None else self.last_control.over_budget,
                "auto_approve_acquisition": self.rules.auto_approve_acquisition,
            },
        )
