"""Typed records that flow between the VSM systems and into the store.

All are frozen, slotted dataclasses: values, never shared mutable state.
Timestamps are wall-clock seconds since the epoch (``time.time()``) so they
survive a restart; durations inside the process use ``time.monotonic()``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Valence(enum.StrEnum):
    """Whether an algedonic signal hurts or pleases."""

    PAIN = "pain"
    PLEASURE = "pleasure"


class Severity(enum.IntEnum):
    """How loudly an algedonic signal speaks; higher is louder."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


class Priority(enum.IntEnum):
    """Bus lanes: an urgent message is always handled before a routine one."""

    URGENT = 0
    ROUTINE = 1


#: How a signal about a unit names it: ``unit:<name>`` (the one form, so a unit's own view finds it).
UNIT_SOURCE_PREFIX = "unit:"


def unit_source(unit: str) -> str:
    """The algedonic source of a signal about ``unit``."""
    return f"{UNIT_SOURCE_PREFIX}{unit}"


def source_unit(source: str) -> str | None:
    """The unit an algedonic source names, None when it names none (a system of the VSM)."""
    return source.removeprefix(UNIT_SOURCE_PREFIX) if source.startswith(UNIT_SOURCE_PREFIX) else None


@dataclass(frozen=True, slots=True)
class AlgedonicSignal:
    """One raw pain or pleasure signal from somewhere in the system."""

    source: str
    kind: str
    valence: Valence
    severity: Severity
    detail: str
    at: float


@dataclass(frozen=True, slots=True)
class AlgedonicAlert:
    """Signals of one source and kind within a correlation window, as one alert."""

    source: str
    kind: str
    valence: Valence
    severity: Severity
    count: int
    first_at: float
    last_at: float
    detail: str
    #: Its number in the store (None until stored).
    id: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        """What makes two signals the same alert."""
        return (self.source, self.kind)


@dataclass(frozen=True, slots=True)
class Decision:
    """A choice made by S5 (or S3/S4 under its policy), with why."""

    at: float
    system: str
    subject: str
    choice: str
    rule: str
    rationale: str
    inputs: dict[str, Any] = field(default_factory=dict)
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    #: Its number in the store (None until stored).
    id: int | None = None


@dataclass(frozen=True, slots=True)
class AuditFinding:
    """The outcome of one S3* probe of one unit."""

    at: float
    unit: str
    check: str
    ok: bool
    detail: str
    latency_ms: float | None = None


@dataclass(frozen=True, slots=True)
class OperatorAction:
    """One entry of the audit log: who (a token's name, or the local user) did what to what.

    ``action`` is a short verb phrase (``servers.restart``, ``approval.approve``,
    ``tools/call vsm_acquire_capability``); ``via`` says through which face (``api``,
    ``page``, ``mcp``, ``cli``); ``ok`` whether it was done.
    """

    at: float
    actor: str
    action: str
    target: str
    via: str
    detail: str = ""
    ok: bool = True
    id: int | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A call that failed for good, kept so it can be inspected or replayed."""

    at: float
    unit: str
    tool: str
    arguments: dict[str, Any]
    error: str
    attempts: int
    id: int | None = None
    replayed_at: float | None = None


@dataclass(frozen=True, slots=True)
class Capability:
    """One thing the system can answer: a tool of a unit, in a demand category."""

    unit: str
    tool: str
    category: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class DemandAggregate:
    """Demand of one category within one time bucket (start in epoch seconds)."""

    category: str
    bucket_start: int
    count: int
    matched: int


class ApprovalStatus(enum.StrEnum):
    """Where a question S5 put to an operator stands.

    ``pending`` → ``approved`` (then ``done`` or ``failed`` once acted on) or ``denied``.
    """

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """A question S5 asked and nobody present could answer, kept for an operator.

    ``subject`` names what is asked about (``acquire:pypi:pkg@1.0``): at most one request per
    subject is pending. ``request`` holds what the operator needs to decide and what acting on
    the answer needs (for an acquisition: the plan and the vetting verdict).
    """

    kind: str
    subject: str
    asked_at: float
    question: str
    request: dict[str, Any]
    status: ApprovalStatus = ApprovalStatus.PENDING
    id: int | None = None
    decided_at: float | None = None
    decided_by: str | None = None
    outcome: str | None = None
