"""Restart intensity: how many failures within a sliding window a supervisor tolerates.

The one rule both supervisors apply: `vsm_mcp.vsm.supervisor` (the VSM
systems' own tasks, one-for-one) and each `vsm_mcp.fleet.unit.Unit` (a
downstream server's crash loop). Pure bookkeeping over an injected clock, so
it is tested without sleeping. Invariants:

* `record` counts one failure now and says whether ``limit`` of them now fall
  within the last ``window`` seconds (a failure exactly ``window`` old has
  left it);
* `clear` forgets them all (an operator's restart starts afresh).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class RestartIntensity:
    """At most ``limit`` - 1 failures in any ``window`` seconds are tolerated (module docstring)."""

    def __init__(self, limit: int, window: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._at: deque[float] = deque()

    def record(self) -> bool:
        """Count one failure now; True when it makes ``limit`` within the window."""
        now = self._clock()
        self._at.append(now)
        while self._at and self._at[0] <= now - self.window:
            self._at.popleft()
        return len(self._at) >= self.limit

    @property
    def recent(self) -> int:
        """Failures inside the window as of the last `record`."""
        return len(self._at)

    def clear(self) -> None:
        """Forget every failure so far."""
        self._at.clear()
