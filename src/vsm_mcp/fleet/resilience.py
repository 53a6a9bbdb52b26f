"""Local autonomy of a unit: restart back-off and crash-loop detection (its circuit breaker is
`vsm_mcp.core.breaker`'s, the one every caller of something that fails uses).

Pure bookkeeping over an injected clock (``time.monotonic`` by default) and an
injected random source (used only for jitter), so every rule is testable
without sleeping. Invariants:

* `Backoff` delays grow geometrically from ``initial`` to at most ``maximum``
  and carry "full jitter" (uniform in ``[d/2, d]``), so restarts of many units
  never synchronise; `reset` returns to ``initial``.
* `CrashLoop` trips when ``limit`` restarts fall within ``window`` seconds.
"""

from __future__ import annotations

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
