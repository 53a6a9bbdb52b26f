"""`MemoryStore`: the `Store` in process memory, for tests of logic.

Invariant: it behaves exactly like `SqliteStore` as seen through the `Store`
protocol (the same contract tests run against both): the same validation
and JSON round trips (`vsm_mcp.store.records`), the same orderings and ties
broken by insertion order, ids counting 1, 2, 3... per kind of record, the
same errors for unknown ids and use after close. It keeps nothing across
processes, of course; that is the one difference.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from vsm_mcp.core.access import TokenRecord
from vsm_mcp.core.messages import (
    AlgedonicAlert,
    ApprovalRequest,
    ApprovalStatus,
    AuditFinding,
    Capability,
    DeadLetter,
    Decision,
    DemandAggregate,
    OperatorAction,
)
from vsm_mcp.core.ports import JsonValue
from vsm_mcp.core.secrets import check_secret_name
from vsm_mcp.errors import RecordNotFoundError, StateError
from vsm_mcp.store import records

_NAME = Path(":memory:")


@dataclass(slots=True)
class _Demand:
    count: int
    matched: int


class MemoryStore:
    """The `Store` as dictionaries and lists; ``async with MemoryStore.open() as store``."""

    def __init__(self) -> None:
        self._closed = False
        self._demand: dict[tuple[str, int], _Demand] = {}
        self._capabilities: dict[tuple[str, str, str], Capability] = {}
        self._decisions: list[tuple[int, Decision]] = []
        self._alerts: list[tuple[int, AlgedonicAlert]] = []
        self._findings: list[tuple[int, AuditFinding]] = []
        self._dead_letters: dict[int, DeadLetter] = {}
        self._kv: dict[str, str] = {}
        self._secrets: dict[str, tuple[str, float]] = {}
        self._tokens: dict[str, TokenRecord] = {}
        self._approvals: dict[int, ApprovalRequest] = {}
        self._actions: list[OperatorAction] = []
        self._ids = {
            kind: itertools.count(1)
            for kind in ("decision", "alert", "finding", "letter", "approval", "action")
        }

    @classmethod
    @asynccontextmanager
    async def open(cls) -> AsyncIterator[MemoryStore]:
        """A fresh, empty store, closed on exit."""
        store = cls()
        try:
            yield store
        finally:
            await store.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StateError(f"state database {_NAME} is closed")

    async def add_demand(self, aggregates: Sequence[DemandAggregate]) -> None:
        """Sum ``aggregates`` into their (category, bucket) entries, all or nothing."""
        self._check_open()
        for aggregate in aggregates:
            records.check_demand(aggregate)
        for aggregate in aggregates:
            entry = self._demand.setdefault((aggregate.category, aggregate.bucket_start), _Demand(0, 0))
            entry.count += aggregate.count
            entry.matched += aggregate.matched

    async def demand_since(self, bucket_start: int) -> list[DemandAggregate]:
        """Aggregates from ``bucket_start`` on, by bucket then category."""
        self._check_open()
        keys = sorted((key for key in self._demand if key[1] >= bucket_start), key=lambda k: (k[1], k[0]))
        return [
            DemandAggregate(
                category, start, self._demand[category, start].count, self._demand[category, start].matched
            )
            for category, start in keys
        ]

    async def put_capabilities(self, unit: str, capabilities: Sequence[Capability]) -> None:
        """Replace the capabilities of ``unit``."""
        self._check_open()
        listed = list(capabilities)
        records.check_capabilities(unit, listed)
        self._capabilities = {key: c for key, c in self._capabilities.items() if key[0] != unit}
        for capability in listed:
            self._capabilities[capability.unit, capability.tool, capability.category] = capability

    async def capabilities(self) -> list[Capability]:
        """Every capability, by unit, tool, category."""
        self._check_open()
        return [self._capabilities[key] for key in sorted(self._capabilities)]

    async def record_decision(self, decision: Decision) -> int:
        """Store ``decision``; return its id."""
        self._check_open()
        stored = replace(
            decision,
            inputs=records.decode_json(records.encode_payload(decision.inputs)),
            alternatives=records.decode_json(records.encode_payload(decision.alternatives)),
        )
        decision_id = next(self._ids["decision"])
        self._decisions.append((decision_id, replace(stored, id=decision_id)))
        return decision_id

    async def decisions(self, limit: int = 100) -> list[Decision]:
        """The ``limit`` most recent decisions, most recent first."""
        self._check_open()
        records.check_limit(limit)
        ordered = sorted(self._decisions, key=lambda item: (item[1].at, item[0]), reverse=True)
        return [decision for _, decision in ordered[:limit]]

    async def decision(self, decision_id: int) -> Decision | None:
        """One decision by id, None when there is none."""
        self._check_open()
        return next((d for i, d in self._decisions if i == decision_id), None)

    async def next_decision(self, subject: str, after_id: int) -> Decision | None:
        """The first decision about ``subject`` stored after decision ``after_id``."""
        self._check_open()
        return next((d for i, d in self._decisions if i > after_id and d.subject == subject), None)

    async def record_alert(self, alert: AlgedonicAlert) -> int:
        """Store ``alert``; return its id."""
        self._check_open()
        records.check_alert(alert)
        alert_id = next(self._ids["alert"])
        self._alerts.append((alert_id, replace(alert, detail=records.store_text(alert.detail), id=alert_id)))
        return alert_id

    async def alerts(self, limit: int = 100) -> list[AlgedonicAlert]:
        """The ``limit`` most recent alerts (by ``last_at``), most recent first."""
        self._check_open()
        records.check_limit(limit)
        ordered = sorted(self._alerts, key=lambda item: (item[1].last_at, item[0]), reverse=True)
        return [alert for _, alert in ordered[:limit]]

    async def record_finding(self, finding: AuditFinding) -> int:
        """Store ``finding``; return its id."""
        self._check_open()
        finding_id = next(self._ids["finding"])
        self._findings.append((finding_id, replace(finding, detail=records.store_text(finding.detail))))
        return finding_id

    async def findings(self, limit: int = 100) -> list[AuditFinding]:
        """The ``limit`` most recent audit findings, most recent first."""
        self._check_open()
        records.check_limit(limit)
        ordered = sorted(self._findings, key=lambda item: (item[1].at, item[0]), reverse=True)
        return [finding for _, finding in ordered[:limit]]

    async def record_action(self, action: OperatorAction) -> int:
        """Append ``action`` to the audit log; return its id."""
        self._check_open()
        action_id = next(self._ids["action"])
        self._actions.append(replace(action, detail=records.store_text(action.detail), id=action_id))
        return action_id

    async def actions(
        self, limit: int = 100, *, actor: str | None = None, action: str | None = None
    ) -> list[OperatorAction]:
        """The audit log, newest first; one actor's, or actions starting with ``action``, when given."""
        self._check_open()
        records.check_limit(limit)
        kept = [
            a
            for a in self._actions
            if (actor is None or a.actor == actor) and (action is None or a.action.startswith(action))
        ]
        return sorted(kept, key=lambda a: (a.at, a.id or 0), reverse=True)[:limit]

    async def put_dead_letter(self, letter: DeadLetter) -> int:
        """Store ``letter`` under a new id (its own ``id`` is ignored); return the id."""
        self._check_open()
        arguments = records.decode_json(records.encode_payload(letter.arguments))
        letter_id = next(self._ids["letter"])
        self._dead_letters[letter_id] = replace(
            letter, id=letter_id, arguments=arguments, error=records.store_text(letter.error)
        )
        return letter_id

    async def dead_letters(self, *, include_replayed: bool = False) -> list[DeadLetter]:
        """Dead letters, oldest first; replayed ones only if ``include_replayed``."""
        self._check_open()
        kept = (
            letter for letter in self._dead_letters.values() if include_replayed or letter.replayed_at is None
        )
        return sorted(kept, key=lambda letter: (letter.at, letter.id or 0))

    async def mark_replayed(self, letter_id: int, at: float) -> None:
        """Set the replay time of dead letter ``letter_id`` to ``at``.

        Raises:
            RecordNotFoundError: no dead letter has that id.
        """
        self._check_open()
        letter = self._dead_letters.get(letter_id)
        if letter is None:
            raise RecordNotFoundError(f"no dead letter with id {letter_id}")
        self._dead_letters[letter_id] = replace(letter, replayed_at=at)

    async def note_failed_replay(self, letter_id: int, error: str) -> None:
        """One attempt more for dead letter ``letter_id``, failing with ``error``.

        Raises:
            RecordNotFoundError: no dead letter has that id.
        """
        self._check_open()
        letter = self._dead_letters.get(letter_id)
        if letter is None:
            raise RecordNotFoundError(f"no dead letter with id {letter_id}")
        self._dead_letters[letter_id] = replace(
            letter, attempts=letter.attempts + 1, error=records.store_text(error)
        )

    async def ask_approval(self, request: ApprovalRequest) -> tuple[int, bool]:
        """Keep a pending question; an equal subject already pending comes back with False."""
        self._check_open()
        records.check_approval(request)
        for approval_id, kept in self._approvals.items():
            if kept.subject == request.subject and kept.status is ApprovalStatus.PENDING:
                return approval_id, False
        approval_id = next(self._ids["approval"])
        kept = replace(
            request,
            id=approval_id,
            question=records.store_text(request.question),
            request=records.decode_json(records.encode_payload(request.request)),
        )
        self._approvals[approval_id] = kept
        return approval_id, True

    async def approvals(
        self, *, status: ApprovalStatus | None = None, subject: str | None = None, limit: int = 100
    ) -> list[ApprovalRequest]:
        """Questions for an operator, newest first, optionally of one status or subject."""
        self._check_open()
        found = [
            a
            for a in self._approvals.values()
            if (status is None or a.status is status) and (subject is None or a.subject == subject)
        ]
        return sorted(found, key=lambda a: -(a.id or 0))[:limit]

    async def approval(self, approval_id: int) -> ApprovalRequest | None:
        """One question by id, None when there is none."""
        self._check_open()
        return self._approvals.get(approval_id)

    async def settle_approval(
        self,
        approval_id: int,
        *,
        expect: ApprovalStatus,
        status: ApprovalStatus,
        at: float,
        by: str | None = None,
        outcome: str | None = None,
    ) -> bool:
        """Move question ``approval_id`` from ``expect`` to ``status``; False when it was not in ``expect``."""
        self._check_open()
        kept = self._approvals.get(approval_id)
        if kept is None or kept.status is not expect:
            return False
        self._approvals[approval_id] = replace(
            kept,
            status=status,
            decided_at=at,
            decided_by=by if by is not None else kept.decided_by,
            outcome=None if outcome is None else records.store_text(outcome),
        )
        return True

    async def kv_get(self, key: str) -> JsonValue:
        """The value stored under ``key``, or None when absent."""
        self._check_open()
        return records.decode_kv(self._kv.get(key))

    async def kv_put(self, key: str, value: JsonValue) -> None:
        """Store ``value`` under ``key``, replacing any old value."""
        self._check_open()
        self._kv[key] = records.encode_json(value)

    async def put_secret(self, name: str, value: str, at: float) -> None:
        """Store secret ``name``, replacing any old value."""
        self._check_open()
        check_secret_name(name)
        self._secrets[name] = (value, at)

    async def secret(self, name: str) -> str | None:
        """The value of secret ``name``, or None when it is not set."""
        self._check_open()
        found = self._secrets.get(name)
        return found[0] if found is not None else None

    async def secret_names(self) -> list[tuple[str, float]]:
        """Every secret's name and when it was set, by name; never the values."""
        self._check_open()
        return [(name, at) for name, (_, at) in sorted(self._secrets.items())]

    async def delete_secret(self, name: str) -> bool:
        """Forget secret ``name``; False when it was not set."""
        self._check_open()
        return self._secrets.pop(name, None) is not None

    async def add_token(self, token: TokenRecord) -> bool:
        """Store a new access token (its digest, never its value); False when the name is taken."""
        self._check_open()
        records.check_token(token)
        if token.name in self._tokens or any(t.digest == token.digest for t in self._tokens.values()):
            return False  # SQLite's INSERT OR IGNORE skips a taken name or digest alike
        self._tokens[token.name] = token
        return True

    async def tokens(self) -> list[TokenRecord]:
        """Every stored access token, by name."""
        self._check_open()
        return [self._tokens[name] for name in sorted(self._tokens)]

    async def rotate_token(self, name: str, digest: str, at: float) -> bool:
        """Give token ``name`` a new digest (created ``at``, never used); False when there is none."""
        self._check_open()
        found = self._tokens.get(name)
        if found is None:
            return False
        rotated = replace(found, digest=digest, created_at=at, last_used_at=None)
        records.check_token(rotated)
        self._tokens[name] = rotated
        return True

    async def delete_token(self, name: str) -> bool:
        """Forget token ``name``; False when there was none."""
        self._check_open()
        return self._tokens.pop(name, None) is not None

    async def mark_tokens_used(self, used: Mapping[str, float]) -> None:
        """Record last uses (name -> time) of stored tokens; never moves one back."""
        self._check_open()
        for name, at in used.items():
            found = self._tokens.get(name)
            if found is not None and (found.last_used_at is None or found.last_used_at < at):
                self._tokens[name] = replace(found, last_used_at=at)

    async def close(self) -> None:
        """Forget nothing, accept nothing more; idempotent."""
        self._closed = True
