"""Protocols the core declares and the adapters implement.

The core and the VSM systems depend only on these; `vsm_mcp.store` provides
`SqliteStore` (real) and `MemoryStore` (tests), wired by the composition root.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, TypeAlias

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

#: A value `json` can encode: what `Store.kv_put` accepts and `Store.kv_get` returns.
JsonValue: TypeAlias = bool | int | float | str | Sequence["JsonValue"] | Mapping[str, "JsonValue"] | None


class KeyValue(Protocol):
    """JSON values by key: the part of the `Store` that caches, ledgers and settings need."""

    async def kv_get(self, key: str) -> JsonValue:
        """The JSON value stored under ``key`` (a misc setting), or None when absent."""
        ...

    async def kv_put(self, key: str, value: JsonValue) -> None:
        """Store ``value`` (JSON-encodable, no NaN/infinity) under ``key``, replacing any old value."""
        ...


class Store(KeyValue, Protocol):
    """Durable state. Every awaited write is committed before it returns."""

    async def add_demand(self, aggregates: Sequence[DemandAggregate]) -> None:
        """Add counts to per-category, per-bucket demand aggregates (upsert, summing)."""
        ...

    async def demand_since(self, bucket_start: int) -> list[DemandAggregate]:
        """Aggregates whose bucket starts at or after ``bucket_start``, by bucket then category."""
        ...

    async def put_capabilities(self, unit: str, capabilities: Sequence[Capability]) -> None:
        """Replace the capabilities of ``unit``."""
        ...

    async def capabilities(self) -> list[Capability]:
        """Every stored capability, ordered by unit then tool."""
        ...

    async def record_decision(self, decision: Decision) -> int:
        """Store a decision; return its id."""
        ...

    async def decisions(self, limit: int = 100) -> list[Decision]:
        """Most recent decisions first."""
        ...

    async def decision(self, decision_id: int) -> Decision | None:
        """One decision by id, None when there is none."""
        ...

    async def next_decision(self, subject: str, after_id: int) -> Decision | None:
        """The first decision about ``subject`` stored after decision ``after_id``, None when none is."""
        ...

    async def record_alert(self, alert: AlgedonicAlert) -> int:
        """Store an algedonic alert; return its id."""
        ...

    async def alerts(self, limit: int = 100) -> list[AlgedonicAlert]:
        """Most recent alerts first."""
        ...

    async def record_finding(self, finding: AuditFinding) -> int:
        """Store an S3* audit finding; return its id."""
        ...

    async def findings(self, limit: int = 100) -> list[AuditFinding]:
        """Most recent findings first."""
        ...

    async def record_action(self, action: OperatorAction) -> int:
        """Append an operator's action to the audit log; return its id."""
        ...

    async def actions(
        self, limit: int = 100, *, actor: str | None = None, action: str | None = None
    ) -> list[OperatorAction]:
        """The audit log, newest first; only one actor's or one action's (a prefix) when given."""
        ...

    async def put_dead_letter(self, letter: DeadLetter) -> int:
        """Store a failed call; return its id."""
        ...

    async def dead_letters(self, *, include_replayed: bool = False) -> list[DeadLetter]:
        """Dead letters, oldest first."""
        ...

    async def mark_replayed(self, letter_id: int, at: float) -> None:
        """Record that a dead letter was replayed successfully."""
        ...

    async def note_failed_replay(self, letter_id: int, error: str) -> None:
        """Record that replaying a dead letter failed again: one attempt more, and the new error."""
        ...

    async def ask_approval(self, request: ApprovalRequest) -> tuple[int, bool]:
        """Keep a pending question for an operator; returns its id and whether it is new (an
        equal subject already pending is not asked twice: its id comes back with False)."""
        ...

    async def approvals(
        self, *, status: ApprovalStatus | None = None, subject: str | None = None, limit: int = 100
    ) -> list[ApprovalRequest]:
        """Questions for an operator, newest first, optionally of one status or subject."""
        ...

    async def approval(self, approval_id: int) -> ApprovalRequest | None:
        """One question by id, None when there is none."""
        ...

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
        """Move question ``approval_id`` from ``expect`` to ``status`` (who, when, what came of it);
        False when it is not in ``expect`` (someone else settled it first) or does not exist."""
        ...

    async def put_secret(self, name: str, value: str, at: float) -> None:
        """Store secret ``name`` (set at ``at``), replacing any old value."""
        ...

    async def secret(self, name: str) -> str | None:
        """The value of secret ``name``, or None when it is not set."""
        ...

    async def secret_names(self) -> list[tuple[str, float]]:
        """Every secret's name and when it was set, by name; never the values."""
        ...

    async def delete_secret(self, name: str) -> bool:
        """Forget secret ``name``; False when it was not set."""
        ...

    async def add_token(self, token: TokenRecord) -> bool:
        """Store a new access token (digest, never value); False when its name (or digest) is taken."""
        ...

    async def tokens(self) -> list[TokenRecord]:
        """Every stored access token, by name."""
        ...

    async def rotate_token(self, name: str, digest: str, at: float) -> bool:
        """Give token ``name`` a new digest, created ``at`` and never used; False when there is none."""
        ...

    async def delete_token(self, name: str) -> bool:
        """Forget token ``name``; False when there was none."""
        ...

    async def mark_tokens_used(self, used: Mapping[str, float]) -> None:
        """Record the last use (name -> time) of stored tokens; a later time only moves it forward."""
        ...

    async def close(self) -> None:
        """Release the database; idempotent."""
        ...
