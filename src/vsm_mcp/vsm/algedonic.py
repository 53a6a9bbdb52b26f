"""The algedonic channel: pain and pleasure that bypass S2-S4 straight to S5.

Invariants:

* `AlgedonicChannel.emit` is synchronous and never waits: supervisors and
  error paths call it from ``except`` blocks. It only updates the correlator
  (`vsm_mcp.core.algedonic`) and wakes the channel's task.
* The channel's task (`run`) delivers each correlated alert to S5's URGENT
  lane once its window closes, within the rate limit. Only that task waits on
  S5's back-pressure; an emitter never does.
* On shutdown (`run` cancelled) whatever is still pending is offered to S5
  without waiting, so a last crash is still reported if S5 has room.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

import anyio

from vsm_mcp.core.algedonic import AlgedonicCorrelator, CorrelatorStats
from vsm_mcp.core.messages import AlgedonicAlert, AlgedonicSignal, Priority, Severity, Valence
from vsm_mcp.errors import BusClosedError, NoSuchInboxError
from vsm_mcp.vsm.bus import Bus

#: Name under which the channel sends on the bus.
CHANNEL_NAME = "algedonic"


class SignalSink(Protocol):
    """Anything that accepts algedonic signals without waiting."""

    def emit(self, signal: AlgedonicSignal) -> None:
        """Accept one signal."""
        ...


class AlgedonicChannel:
    """Correlates and rate-limits signals, then delivers alerts to S5 ahead of routine traffic."""

    def __init__(
        self,
        bus: Bus,
        *,
        to: str = "s5",
        window_s: float = 1.0,
        max_alerts_per_s: float = 10.0,
        max_keys: int = 1024,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._bus = bus
        self._to = to
        self._clock = clock
        self._wall_clock = wall_clock
        self.correlator = AlgedonicCorrelator(
            window_s=window_s, max_alerts_per_s=max_alerts_per_s, max_keys=max_keys
        )
        self._ready: list[AlgedonicAlert] = []
        self._wake: anyio.Event | None = None  # created inside `run`, on its event loop
        self.sent = 0
        self.lost_at_shutdown = 0

    def emit(self, signal: AlgedonicSignal) -> None:
        """Accept one signal; never waits."""
        self._ready.extend(self.correlator.add(signal, self._clock()))
        if self._wake is not None:
            self._wake.set()

    def pain(self, source: str, kind: str, severity: Severity, detail: str) -> None:
        """Emit a pain signal stamped now."""
        self.emit(AlgedonicSignal(source, kind, Valence.PAIN, severity, detail, self._wall_clock()))

    def pleasure(self, source: str, kind: str, severity: Severity, detail: str) -> None:
        """Emit a pleasure signal stamped now."""
        self.emit(AlgedonicSignal(source, kind, Valence.PLEASURE, severity, detail, self._wall_clock()))

    async def deliver_due(self) -> int:
        """Send every alert that is due now to S5's urgent lane; return how many.

        Waits while S5's urgent lane is full (the channel absorbs back-pressure).
        """
        ready, self._ready = self._ready, []
        ready.extend(self.correlator.due(self._clock()))
        for i, alert in enumerate(ready):
            try:
                await self._bus.publish(self._to, alert, priority=Priority.URGENT, sender=CHANNEL_NAME)
            except BaseException:
                self._ready[:0] = ready[i:]  # undelivered alerts stay first in line
                raise
            self.sent += 1
        return len(ready)

    async def run(self) -> None:
        """Deliver alerts as their windows close, until cancelled."""
        try:
            while True:
                wake = self._wake = anyio.Event()  # before delivering, so no emit goes unnoticed
                await self.deliver_due()
                deadline = self.correlator.next_deadline(self._clock())
                wait = math.inf if deadline is None else max(0.0, deadline - self._clock())
                with anyio.move_on_after(wait):
                    await wake.wait()
        finally:
            self._offer_rest()

    def _offer_rest(self) -> None:
        rest = self._ready + self.correlator.drain()
        self._ready = []
        for alert in rest:
            try:
                delivered = self._bus.offer(self._to, alert, priority=Priority.URGENT, sender=CHANNEL_NAME)
            except (BusClosedError, NoSuchInboxError):
                delivered = False
            if delivered:
                self.sent += 1
            else:
                self.lost_at_shutdown += 1

    def stats(self) -> CorrelatorStats:
        """The correlator's counters."""
        return self.correlator.stats()
