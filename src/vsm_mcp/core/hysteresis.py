"""Hysteresis on the variety gap, so acquisition and release never flap.

State machine (pure; the caller passes the time):

    CLEAR --gap >= upper--> PENDING --persisted N events and T seconds--> DETECTED
      ^                        |                                            |
      +------gap < upper-------+                                            |
      +------------------------------gap < lower----------------------------+

Invariants: ``0 <= lower < upper``; at most one `GapDetected` per episode and
exactly one `GapCleared` after it; a value between ``lower`` and ``upper``
never changes a DETECTED state, which is what stops oscillation. Persistence
needs both: a burst of events in no time is not a lasting gap, and neither is a
gap that one stray event opened and time kept open (``persist_s = 0`` asks for
events only; readings without events, ``events=0``, let time pass).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from vsm_mcp.core.variety import VarietyReading


class GapState(enum.StrEnum):
    """Where the detector is in its cycle."""

    CLEAR = "clear"
    PENDING = "pending"
    DETECTED = "detected"


@dataclass(frozen=True, slots=True)
class GapDetected:
    """A gap above the upper threshold persisted long enough to act on."""

    at: float
    reading: VarietyReading
    persisted_events: int
    persisted_s: float


@dataclass(frozen=True, slots=True)
class GapCleared:
    """A detected gap fell below the lower threshold."""

    at: float
    reading: VarietyReading


@dataclass(frozen=True, slots=True)
class HysteresisPolicy:
    """Thresholds and persistence for `GapDetector`."""

    upper: float = 0.5
    lower: float = 0.2
    persist_events: int = 5
    persist_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.lower < self.upper:
            raise ValueError(f"need 0 <= lower < upper, got lower={self.lower}, upper={self.upper}")
        if self.persist_events < 1 or self.persist_s < 0:
            raise ValueError("persistence needs at least one event and a duration of 0 or more")


class GapDetector:
    """Turns a stream of gap readings into rare, stable gap events."""

    __slots__ = ("_pending_events", "_pending_since", "policy", "state")

    def __init__(self, policy: HysteresisPolicy | None = None) -> None:
        self.policy = policy or HysteresisPolicy()
        self.state = GapState.CLEAR
        self._pending_events = 0
        self._pending_since = 0.0

    def observe(
        self, reading: VarietyReading, now: float, events: int = 1
    ) -> GapDetected | GapCleared | None:
        """Feed the reading taken after ``events`` demand events; return an event on a visible change.

        A batch of demand is judged once but counts as all its events towards persistence.
        """
        gap = reading.gap
        policy = self.policy
        if self.state is GapState.DETECTED:
            if gap < policy.lower:
                self.state = GapState.CLEAR
                return GapCleared(at=now, reading=reading)
            return None
        if gap < policy.upper:
            self.state = GapState.CLEAR
            return None
        if self.state is GapState.CLEAR:
            self.state = GapState.PENDING
            self._pending_events = 0
            self._pending_since = now
        self._pending_events += events
        elapsed = now - self._pending_since
        if self._pending_events >= policy.persist_events and elapsed >= policy.persist_s:
            self.state = GapState.DETECTED
            return GapDetected(
                at=now, reading=reading, persisted_events=self._pending_events, persisted_s=elapsed
            )
        return None
