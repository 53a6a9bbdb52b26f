"""Local autonomy of a unit: restart back-off, crash-loop detection, circuit breaker.

Pure bookkeeping over an injected clock (``time.monotonic`` by default) and an
injected random source (used only for jitter), so every rule is testable
without sleeping. Invariants:

* `Backoff` delays grow geometrically from ``initial`` to at most ``maximum``
  and carry "full jitter" (uniform in ``[d/2, d]``), so restarts of many units
  never synchronise; `reset` returns to ``initial``.
* `CrashLoop` trips when ``limit`` restarts fall within ``window`` seconds.
* `CircuitBreaker` is CLOSED until ``threshold`` consecutive failures, then
  OPEN (calls refused) for ``cooldown`` seconds, then HALF_OPEN: exactly one
  probe call is admitted; its success closes the breaker, its failure re-opens it.
"""

from __future__ import annotations

import enum
import random
import time
from collections import deque
from collections.abc import Callable


class Backoff:
    """Exponential back-off with jitter between restarts."""

    def __init__(
        self,
        initial: float,
        maximum: float,
        *,
        factor: float = 2.0,
        rand: Callable[[], float] | None = None,
    ) -> None:
        self._initial = initial
        self._maximum = max(maximum, initial)
        self._factor = factor
        self._rand = rand if rand is not None else random.Random().random
        self._next = initial

    def next_delay(self) -> float:
        """The delay before the next attempt; each call grows the following one."""
        base = self._next
        self._next = min(self._next * self._factor, self._maximum)
        return base * (0.5 + 0.5 * self._rand())

    def reset(self) -> None:
        """Back to the initial delay (after a unit has run healthily)."""
        self._next = self._initial


class CrashLoop:
    """Detects ``limit`` restarts within ``window`` seconds."""

    def __init__(self, limit: int, window: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._restarts: deque[float] = deque()

    def record_restart(self) -> bool:
        """Count one restart now; True when this makes it a crash loop."""
        now = self._clock()
        self._restarts.append(now)
        while self._restarts and self._restarts[0] <= now - self._window:
            self._restarts.popleft()
        return len(self._restarts) >= self._limit

    @property
    def recent(self) -> int:
        """Restarts inside the window as of the last record."""
        return len(self._restarts)

    def clear(self) -> None:
        """Forget past restarts (after an operator restart)."""
        self._restarts.clear()


class BreakerState(enum.StrEnum):
    """Where a circuit breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Stops calling a unit that keeps failing, and probes it again after a cool-down."""

    def __init__(
        self, threshold: int, cooldown: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
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
        """A call failed for a reason that is the unit's fault."""
        self._failures += 1
        if self._probing or (self._opened_at is None and self._failures >= self._threshold):
            self._opened_at = self._clock()
            self._probing = False
            self.trips += 1

    def release_probe(self) -> None:
        """A probe ended without a verdict (caller cancelled): admit another."""
        self._probing = False
