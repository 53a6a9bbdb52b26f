"""Correlation and rate limiting of algedonic signals (pure; the caller passes the time).

A flood of identical pain must reach S5 as one alert that says how big the
flood was, and many distinct alerts must not drown S5 either. So:

* **Correlation.** Signals with the same ``(source, kind)`` merge into one
  pending alert. Its window opens at the first signal (time ``t0`` on the
  caller's monotonic clock) and closes at ``t0 + window_s``; a signal at a
  time ``>= t0 + window_s`` finds the window closed and starts a new alert.
  The merged alert carries the count, the highest severity, the wall-clock
  ``first_at``/``last_at`` of its signals, and the detail of its most severe
  (latest among equals) signal. It is PAIN if any of its signals is pain.
* **Rate limiting.** A token bucket (``max_alerts_per_s`` tokens per second,
  burst of ``max(1, max_alerts_per_s)``) caps delivered alerts. An alert whose
  window closed but found no token is *held*: it stays pending, keeps
  absorbing signals of its key (``merged_while_held``), and is delivered as
  soon as a token is free, most severe first. Nothing is dropped.
* **Bounded memory.** At most ``max_keys`` alerts are pending; a signal with
  a new key beyond that is folded into one ``("algedonic", "overflow")``
  alert (counted in ``folded``), so it still reaches S5 as a count.

Invariant: every signal `add`-ed is counted in exactly one delivered or still
pending alert: ``signals == delivered_signals + pending_signals``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from vsm_mcp.core.messages import AlgedonicAlert, AlgedonicSignal, Severity, Valence

#: The key under which signals are folded when too many alerts are pending.
OVERFLOW_KEY = ("algedonic", "overflow")


@dataclass(frozen=True, slots=True)
class CorrelatorStats:
    """Counters of what the correlator has seen and done (all since creation)."""

    signals: int
    delivered_alerts: int
    delivered_signals: int
    pending_alerts: int
    pending_signals: int
    held: int
    merged_while_held: int
    folded: int


@dataclass(slots=True)
class _Pending:
    """A mutable accumulator, so a flood costs no allocation per signal."""

    source: str
    kind: str
    valence: Valence
    severity: Severity
    count: int
    first_at: float
    last_at: float
    detail: str
    opened: float
    closes: float
    held: bool = False

    def absorb(self, signal: AlgedonicSignal) -> None:
        self.count += 1
        if signal.valence is Valence.PAIN:
            self.valence = Valence.PAIN
        if signal.severity >= self.severity:
            self.severity = signal.severity
            self.detail = signal.detail
        self.first_at = min(self.first_at, signal.at)
        self.last_at = max(self.last_at, signal.at)

    def alert(self) -> AlgedonicAlert:
        return AlgedonicAlert(
            source=self.source,
            kind=self.kind,
            valence=self.valence,
            severity=self.severity,
            count=self.count,
            first_at=self.first_at,
            last_at=self.last_at,
            detail=self.detail,
        )


class AlgedonicCorrelator:
    """Merges signals into alerts per key and window; releases them at a limited rate."""

    __slots__ = (
        "_burst",
        "_delivered_alerts",
        "_delivered_signals",
        "_folded",
        "_held",
        "_max_keys",
        "_merged_while_held",
        "_pending",
        "_rate",
        "_signals",
        "_tokens",
        "_tokens_at",
        "window_s",
    )

    def __init__(
        self, *, window_s: float = 1.0, max_alerts_per_s: float = 10.0, max_keys: int = 1024
    ) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        if max_alerts_per_s <= 0:
            raise ValueError("max_alerts_per_s must be positive")
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.window_s = window_s
        self._rate = max_alerts_per_s
        self._burst = max(1.0, max_alerts_per_s)
        self._tokens = self._burst
        self._tokens_at: float | None = None
        self._max_keys = max_keys
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._signals = 0
        self._delivered_alerts = 0
        self._delivered_signals = 0
        self._held = 0
        self._merged_while_held = 0
        self._folded = 0

    def add(self, signal: AlgedonicSignal, now: float) -> list[AlgedonicAlert]:
        """Count one signal at monotonic time ``now``.

        Returns the alert of a window this signal found closed (it must be
        delivered before the new one), subject to the rate limit; usually empty.
        """
        self._signals += 1
        key = (signal.source, signal.kind)
        ready: list[AlgedonicAlert] = []
        entry = self._pending.get(key)
        if entry is not None and now >= entry.closes and not entry.held:
            ready = self.due(now)
            entry = self._pending.get(key)
        if entry is None and len(self._pending) >= self._max_keys:
            self._folded += 1
            detail = f"folded {signal.source}/{signal.kind}: more than {self._max_keys} alerts pending"
            key = OVERFLOW_KEY
            signal = replace(signal, source=key[0], kind=key[1], detail=detail)
            entry = self._pending.get(key)
        if entry is None:
            self._pending[key] = _Pending(
                source=signal.source,
                kind=signal.kind,
                valence=signal.valence,
                severity=signal.severity,
                count=1,
                first_at=signal.at,
                last_at=signal.at,
                detail=signal.detail,
                opened=now,
                closes=now + self.window_s,
            )
            return ready
        if entry.held:
            self._merged_while_held += 1
        entry.absorb(signal)
        return ready

    def due(self, now: float) -> list[AlgedonicAlert]:
        """Remove and return alerts whose window closed, as far as the rate limit allows.

        Most severe first, then oldest window first.
        """
        closed = [p for p in self._pending.values() if now >= p.closes]
        if not closed:
            return []
        closed.sort(key=lambda p: (-p.severity, p.opened))
        self._refill(now)
        out: list[AlgedonicAlert] = []
        for entry in closed:
            if self._tokens < 1.0:
                if not entry.held:
                    entry.held = True
                    self._held += 1
                continue
            self._tokens -= 1.0
            del self._pending[(entry.source, entry.kind)]
            self._delivered_alerts += 1
            self._delivered_signals += entry.count
            out.append(entry.alert())
        return out

    def next_deadline(self, now: float) -> float | None:
        """When `due` may next return something: a window's close or the next token."""
        if not self._pending:
            return None
        earliest = min(p.closes for p in self._pending.values())
        if earliest > now:
            return earliest
        self._refill(now)
        if self._tokens >= 1.0:
            return now
        # A hair late, so float rounding never leaves the token at 0.99999 and spins the caller.
        return now + (1.0 - self._tokens) / self._rate + 1e-6

    def drain(self) -> list[AlgedonicAlert]:
        """Remove and return every pending alert, ignoring windows and the rate limit.

        For shutdown: what was felt is still reported.
        """
        entries = sorted(self._pending.values(), key=lambda p: (-p.severity, p.opened))
        self._pending.clear()
        for entry in entries:
            self._delivered_alerts += 1
            self._delivered_signals += entry.count
        return [e.alert() for e in entries]

    def stats(self) -> CorrelatorStats:
        """A snapshot of the counters."""
        pending_signals = sum(p.count for p in self._pending.values())
        return CorrelatorStats(
            signals=self._signals,
            delivered_alerts=self._delivered_alerts,
            delivered_signals=self._delivered_signals,
            pending_alerts=len(self._pending),
            pending_signals=pending_signals,
            held=self._held,
            merged_while_held=self._merged_while_held,
            folded=self._folded,
        )

    def _refill(self, now: float) -> None:
        if self._tokens_at is None:
            self._tokens_at = now
            return
        elapsed = now - self._tokens_at
        if elapsed > 0:
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
            self._tokens_at = now
