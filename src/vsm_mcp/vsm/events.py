"""Messages the VSM systems exchange on the bus (besides `vsm_mcp.core.messages`).

All are frozen, slotted values. Who sends what to whom:

| message | from | to | lane |
|---|---|---|---|
| `CallCompleted` | gateway (each finished tool call) | S1 | routine, offered (dropped+counted when S1 lags) |
| `UnitStateChanged` | fleet (a unit started, stopped, failed...) | S3 | routine |
| `DemandObserved` | gateway/discovery (what clients asked for) | S4 | routine |
| `ControlReport` | S3 | S5 | routine |
| `AcquisitionProposal`, `GapClosed` | S4 | S5 | routine |
| `AlgedonicAlert` | algedonic channel | S5 | urgent |

Timestamps ``at`` are wall-clock epoch seconds; durations are measured on
the monotonic clock by whoever produced them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from vsm_mcp.core.variety import VarietyReading


class UnitState(enum.StrEnum):
    """Life of an operational unit: the one enum the fleet's units and the VSM systems share.

    A unit is STARTING, READY, in BACKOFF between starts, FAILED (it will not
    start until told), or STOPPED; QUARANTINED is what S3 hears of a unit whose
    tool definitions changed from their pin: its process runs (it holds its
    resources) but none of its tools are routed until an operator approves;
    PARKED is a unit S3 stopped (idle, or over budget) whose tools stay listed:
    the next call of one starts it.
    """

    STARTING = "starting"
    READY = "ready"
    BACKOFF = "backoff"
    FAILED = "failed"
    STOPPED = "stopped"
    QUARANTINED = "quarantined"
    #: Stopped by S3 (idle, or over budget) with its tools still listed: a call starts it again.
    PARKED = "parked"


@dataclass(frozen=True, slots=True)
class CallCompleted:
    """One tool call of one unit finished (successfully or not)."""

    unit: str
    tool: str
    ok: bool
    latency_s: float
    at: float
    error: str = ""


@dataclass(frozen=True, slots=True)
class CallsCompleted:
    """Tool calls that finished in one turn of the event loop, in the order they finished."""

    calls: tuple[CallCompleted, ...]


@dataclass(frozen=True, slots=True)
class UnitStateChanged:
    """A unit changed state; ``rss_bytes`` is its measured resident memory, if known."""

    unit: str
    state: UnitState
    at: float
    rss_bytes: int | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DemandObserved:
    """Demand categories clients asked for, all at one time."""

    categories: tuple[str, ...]
    at: float


@dataclass(frozen=True, slots=True)
class ControlReport:
    """S3's view of resource use against the budget, sent to S5 when it changes."""

    at: float
    running_units: int
    max_units: int | None
    rss_bytes: int
    max_rss_bytes: int | None
    over_budget: bool
    failed_units: tuple[str, ...]
    idle_candidates: tuple[str, ...]
    #: Units whose tools are withheld because their definitions changed (their processes run).
    quarantined_units: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AcquisitionProposal:
    """S4 found a persistent variety gap; these unmatched categories weigh most."""

    at: float
    reading: VarietyReading
    unmatched: tuple[tuple[str, int], ...]
    persisted_events: int
    persisted_s: float
    #: The amplifier each unmatched category calls for (`core.operators.AddCapability`) and the
    #: gap the window would show with it, computed on the same demand: what acquiring is worth.
    expected_gaps: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class GapClosed:
    """S4 saw a detected gap fall below the lower threshold."""

    at: float
    reading: VarietyReading
