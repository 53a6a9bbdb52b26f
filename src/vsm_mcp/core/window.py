"""Incremental sliding window over demand events: O(1) per event, bounded memory.

The window keeps at most ``max_events`` events and, if ``max_age_s`` is set,
only events younger than that, to a time resolution of ``resolution_s``: time
is cut into buckets and only the first event of each bucket leaves a mark
(bucket, global index of that event), so the time bookkeeping costs one
comparison per event and one tuple per bucket, and expiry runs only when the
bucket advances. Its sufficient statistics are maintained on every
event:

* ``counts[c]``: events of category ``c`` in the window (absent when 0, so
  memory tracks live categories only);
* ``S = sum(c_i * log2 c_i)``, so that ``H = log2 N - S / N``;
* ``matched = sum(min(c_i, cap_i))`` for coverage.

Invariant (checked by property tests): after any sequence of `observe`,
`observe_many` and `set_capacity` calls, `reading()` equals
`profile().reading()` computed from scratch, to floating-point tolerance.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence

from vsm_mcp.core.variety import DemandProfile, VarietyReading, make_reading

#: Default time resolution as a share of the window's age limit: eviction is
#: at most this late, and the bookkeeping is one bucket per resolution step.
_RESOLUTION_SHARE = 1 / 600


class DemandWindow:
    """Demand categories seen recently, with their entropy and coverage."""

    __slots__ = (
        "_capacity",
        "_cats",
        "_clock",
        "_counts",
        "_last_bucket",
        "_marks",
        "_matched",
        "_max_age_buckets",
        "_max_events",
        "_plogp",
        "_resolution",
        "_table",
        "total_observed",
    )

    def __init__(
        self,
        *,
        max_events: int = 10_000,
        max_age_s: float | None = None,
        resolution_s: float | None = None,
        capacity: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        if max_age_s is not None and max_age_s <= 0:
            raise ValueError("max_age_s must be positive")
        self._max_events = max_events
        self._clock = clock
        if max_age_s is None:
            self._resolution = 0.0
            self._max_age_buckets = 0
        else:
            self._resolution = resolution_s or max_age_s * _RESOLUTION_SHARE
            self._max_age_buckets = max(1, math.ceil(max_age_s / self._resolution))
        # c * log2(c) for every count a category can reach, including the moment a
        # full batch has been added and not yet evicted (up to 2 * max_events).
        self._table = [0.0] + [c * math.log2(c) for c in range(1, 2 * max_events + 1)]
        self._cats: deque[str] = deque()
        self._marks: deque[tuple[float, int]] = deque()  # (bucket, global index of its first event)
        self._last_bucket = -math.inf
        self._counts: dict[str, int] = {}
        self._plogp = 0.0
        self._matched = 0
        self._capacity: dict[str, int] = {}
        self.total_observed = 0
        self.set_capacity(capacity or {})

    # -- updates -----------------------------------------------------------
    def observe(self, category: str, now: float | None = None) -> None:
        """Count one demand event of ``category`` (O(1) amortised)."""
        counts = self._counts
        c = counts.get(category, 0)
        counts[category] = c + 1
        table = self._table
        self._plogp += table[c + 1] - table[c]
        if c < self._capacity.get(category, 0):
            self._matched += 1
        cats = self._cats
        cats.append(category)
        self.total_observed += 1
        if len(cats) > self._max_events:
            self._evict_front(1)
        if self._resolution:
            bucket = (self._clock() if now is None else now) // self._resolution
            if bucket != self._last_bucket:
                self._open_bucket(bucket, self.total_observed - 1)

    def observe_many(self, categories: Sequence[str], now: float | None = None) -> None:
        """Count a batch of demand events that share one timestamp."""
        n = len(categories)
        if n == 0:
            return
        first_index = self.total_observed
        self.total_observed += n
        if n > self._max_events:
            categories = categories[n - self._max_events :]
            first_index += n - self._max_events
        self._cats.extend(categories)
        self._add(Counter(categories))
        excess = len(self._cats) - self._max_events
        if excess > 0:
            self._evict_front(excess)
        if self._resolution:
            bucket = (self._clock() if now is None else now) // self._resolution
            if bucket != self._last_bucket:
                self._open_bucket(bucket, first_index)

    def expire(self, now: float | None = None) -> None:
        """Drop events older than the age limit without observing anything."""
        if self._resolution:
            self._expire_before((self._clock() if now is None else now) // self._resolution)

    def set_capacity(self, capacity: Mapping[str, int]) -> None:
        """Replace which categories can be answered, and how many calls each (O(k))."""
        for category, cap in capacity.items():
            if cap < 0:
                raise ValueError(f"capacity of {category!r} cannot be negative")
        live = {k: v for k, v in capacity.items() if v > 0}
        self._capacity = live
        self._matched = sum(min(c, live.get(k, 0)) for k, c in self._counts.items())

    # -- readings ----------------------------------------------------------
    @property
    def events(self) -> int:
        """Events currently in the window."""
        return len(self._cats)

    def entropy_bits(self) -> float:
        """Shannon entropy of the window's demand, from the running sum (O(1))."""
        n = len(self._cats)
        if n == 0:
            return 0.0
        h = math.log2(n) - self._plogp / n
        return h if h > 1e-12 else 0.0

    def reading(self) -> VarietyReading:
        """The variety reading of the window as it stands (O(1))."""
        return make_reading(
            events=len(self._cats),
            categories=len(self._counts),
            entropy_bits=self.entropy_bits(),
            matched=self._matched,
            answering=len(self._capacity),
        )

    def profile(self) -> DemandProfile:
        """A snapshot copy of counts and capacities (O(k))."""
        return DemandProfile(counts=dict(self._counts), capacity=dict(self._capacity))

    # -- internals ---------------------------------------------------------
    def _open_bucket(self, bucket: float, first_index: int) -> None:
        self._last_bucket = bucket
        self._marks.append((bucket, first_index))
        self._expire_before(bucket)

    def _expire_before(self, bucket: float) -> None:
        marks = self._marks
        cutoff = bucket - self._max_age_buckets
        while marks and marks[0][0] <= cutoff:
            marks.popleft()
        # Events before the first live bucket's first event are too old.
        boundary = marks[0][1] if marks else self.total_observed
        expired = boundary - (self.total_observed - len(self._cats))
        if expired > 0:
            self._evict_front(expired)

    def _add(self, delta: Mapping[str, int]) -> None:
        counts = self._counts
        get = counts.get
        table = self._table
        limit_of = self._capacity.get
        plogp = self._plogp
        matched = self._matched
        for category, k in delta.items():
            old = get(category, 0)
            new = old + k
            counts[category] = new
            plogp += table[new] - table[old]
            limit = limit_of(category)
            # matched += min(new, limit) - min(old, limit), without the two calls
            if limit is not None:
                if new <= limit:
                    matched += k
                elif old < limit:
                    matched += limit - old
        self._plogp = plogp
        self._matched = matched

    def _remove(self, delta: Mapping[str, int]) -> None:
        counts = self._counts
        table = self._table
        limit_of = self._capacity.get
        plogp = self._plogp
        matched = self._matched
        for category, k in delta.items():
            old = counts[category]
            new = old - k
            if new:
                counts[category] = new
            else:
                del counts[category]
            plogp += table[new] - table[old]
            limit = limit_of(category)
            if limit is not None:
                if old <= limit:
                    matched -= k
                elif new < limit:
                    matched -= limit - new
        # A window emptied exactly resets the running sum, so float error never accumulates past it.
        self._plogp = plogp if counts else 0.0
        self._matched = matched

    def _evict_front(self, k: int) -> None:
        if k == 1:
            category = self._cats.popleft()
            counts = self._counts
            c = counts[category]
            if c == 1:
                del counts[category]
                if not counts:
                    self._plogp = 0.0
                    self._matched = 0
                    return
            else:
                counts[category] = c - 1
            table = self._table
            self._plogp += table[c - 1] - table[c]
            if c <= self._capacity.get(category, 0):
                self._matched -= 1
            return
        popleft = self._cats.popleft
        self._remove(Counter([popleft() for _ in range(k)]))
