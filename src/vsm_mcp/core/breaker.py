"""The one circuit breaker: stop calling what keeps failing, probe it again after a cool-down.

Used by every fleet unit (a server that keeps failing calls) and by discovery's
live sources (a registry that keeps failing requests). Pure: its clock is handed
in. Invariants:

* CLOSED until ``threshold`` failures in a row; then OPEN (nothing admitted)
  for ``cooldown`` seconds; then HALF_OPEN: one probe at a time is admitted, a
  success closes it, a failure opens it again (and counts one trip);
* a probe that ends without a verdict (its caller cancelled) is released, so
  another may be admitted;
* `retry_after` says how long an OPEN breaker still refuses.
"""

from __future__ import annotations

import enum
from collections.abc import Callable


class BreakerState(enum.StrEnum):
    """Where a circuit breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Stops calling what keeps failing, and probes it again after a cool-down (module docstring)."""

    def __init__(self, threshold: int, cooldown: float, *, clock: Callable[[], float]) -> None:
        self._threshold = threshold
        self._cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self.trips = 0

    @property
    def state(self) -> BreakerState:
        """The current state (OPEN turns HALF_OPEN once the cool-down has passed)."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._probing or self._clock() - self._opened_at >= self._cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def admit(self) -> bool:
        """Whether a call may go through now; in HALF_OPEN only one probe at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN or self._probing:
            return False
        self._probing = True
        return True

    def retry_after(self) -> float:
        """Seconds until an OPEN breaker admits a probe (0 when it would now)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._cooldown - (self._clock() - self._opened_at))

    def record_success(self) -> None:
        """A call succeeded: close the breaker."""
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self) -> None:
        """A call failed for a reason that is the callee's fault."""
        self._failures += 1
        if self._probing or (self._opened_at is None and self._failures >= self._threshold):
            self._opened_at = self._clock()
            self._probing = False
            self.trips += 1

    def release_probe(self) -> None:
        """A probe ended without a verdict (caller cancelled): admit another."""
        self._probing = False

    @property
    def failures(self) -> int:
        """Failures in a row so far (0 after a success)."""
        return self._failures
