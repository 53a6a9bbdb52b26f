"""S2's regulator at a unit's door: at most ``limit`` calls in flight, the rest queued fairly.

A server that can take only a few calls at once (one model on one GPU, a
rate-limited API behind it) gets ``max_concurrency`` in its spec; calls over
it wait here, not in the server, and clients take turns. Invariants:

* at most ``limit`` calls are in flight (None: no limit, nothing waits);
* waiting calls are served round-robin across clients, in arrival order within
  each client, so one busy client cannot starve another;
* every admitted call releases its slot exactly once (`Slot.release` is
  idempotent), when it ends or when its caller gives up; a call withdrawn
  while waiting never runs;
* the counters (`AdmissionStats`) are these mechanisms' own: S2 reads them.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass(slots=True)
class AdmissionStats:
    """What the door has done so far (S2 reads these)."""

    in_flight: int = 0
    max_in_flight: int = 0
    queued: int = 0
    max_queued: int = 0
    #: Calls that had to wait, and how long they waited in all.
    waited: int = 0
    waited_s: float = 0.0


class Slot:
    """One admitted call's place: `release` it when the call ends (once; later calls do nothing)."""

    __slots__ = ("_door", "_released")

    def __init__(self, door: Admission) -> None:
        self._door = door
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._door._released()


@dataclass(slots=True, eq=False)
class _Waiting:
    go: Callable[[Slot], None]
    since: float


class Admission:
    """The door of one unit (module docstring)."""

    def __init__(self, limit: int | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.stats = AdmissionStats()
        self._clock = clock
        self._waiting: OrderedDict[Hashable, deque[_Waiting]] = OrderedDict()

    def admit(self, client: Hashable, go: Callable[[Slot], None]) -> Callable[[], None] | None:
        """Run ``go`` with a slot now if one is free (returns None), else queue it behind
        ``client``'s earlier calls and return how to withdraw it (a no-op once it ran)."""
        stats = self.stats
        if self.limit is None or stats.in_flight < self.limit:
            self._start(go)
            return None
        entry = _Waiting(go, self._clock())
        self._waiting.setdefault(client, deque()).append(entry)
        stats.queued += 1
        stats.max_queued = max(stats.max_queued, stats.queued)

        def withdraw() -> None:
            queue = self._waiting.get(client)
            if queue is not None and entry in queue:
                queue.remove(entry)
                stats.queued -= 1
                if not queue:
                    del self._waiting[client]

        return withdraw

    def _start(self, go: Callable[[Slot], None]) -> None:
        stats = self.stats
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        go(Slot(self))

    def _released(self) -> None:
        self.stats.in_flight -= 1
        if not self._waiting or (self.limit is not None and self.stats.in_flight >= self.limit):
            return
        client, queue = next(iter(self._waiting.items()))
        entry = queue.popleft()
        if queue:
            self._waiting.move_to_end(client)  # the next client's turn
        else:
            del self._waiting[client]
        stats = self.stats
        stats.queued -= 1
        stats.waited += 1
        stats.waited_s += self._clock() - entry.since
        self._start(entry.go)
