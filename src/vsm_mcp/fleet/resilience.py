"""Local autonomy of a unit: restart back-off (its circuit breaker is `vsm_mcp.core.breaker`'s,
the one every caller of something that fails uses; its crash loop is `vsm_mcp.core.intensity`'s,
the one rule of both supervisors).

Pure bookkeeping over an injected clock (``time.monotonic`` by default) and an
injected random source (used only for jitter), so every rule is testable
without sleeping. Invariants:

* `Backoff` delays grow geometrically from ``initial`` to at most ``maximum``
  and carry "full jitter" (uniform in ``[d/2, d]``), so restarts of many units
  never synchronise; `reset` returns to ``initial``.
"""

from __future__ import annotations

import random
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
