"""S1 Operations: the operational units (downstream MCP servers) and what they do.

Invariants:

* Counters change only on a `CallCompleted` (received on S1's inbox, alone or
  in a `CallsCompleted` batch, or
  recorded directly with `Operations.record`): calls, errors and latency per
  unit and per tool are measured, never estimated.
* An error-rate spike is judged over each unit's last ``spike_window`` calls:
  when the window is full and its error share reaches ``spike_error_share``,
  one PAIN signal (HIGH, kind ``error_rate_spike``) goes to the algedonic
  channel; it re-arms only after the share falls below the threshold, so a
  sustained spike is one signal, not one per call.
* Drift (`core.drift`): each unit's and each tool's error rate and latency go
  through Page's CUSUM against a baseline learnt from their first calls; a
  shift is one MEDIUM ``drift`` pain naming the unit (and tool), the statistic
  and the evidence, and the stream learns the new level as its baseline.
* A unit that is itself a viable system may attach its own status
  (`set_nested`); S1 keeps it as reported, for the recursive status.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate

from vsm_mcp.core.drift import Cusum, DriftPolicy
from vsm_mcp.core.messages import AlgedonicSignal, Severity, Valence, unit_source
from vsm_mcp.vsm.algedonic import SignalSink
from vsm_mcp.vsm.bus import Inbox
from vsm_mcp.vsm.events import CallCompleted, CallsCompleted
from vsm_mcp.vsm.notices import Notices
from vsm_mcp.vsm.status import SystemStatus, ViableStatus

#: Calls per unit over which an error-rate spike is judged.
SPIKE_WINDOW = 20
#: Error share in that window that counts as a spike.
SPIKE_ERROR_SHARE = 0.5
ERROR_SPIKE_KIND = "error_rate_spike"


#: Upper bounds (seconds) of the latency histogram kept per unit and per tool (Prometheus' ``le``).
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


@dataclass(frozen=True, slots=True)
class CallStats:
    """Measured calls of one unit or tool.

    ``buckets`` counts the calls at or below each bound of `LATENCY_BUCKETS_S` (cumulative, as
    Prometheus reads them); ``p50_ms`` and ``p99_ms`` are read from them by linear interpolation
    inside the bucket that holds the quantile (what Prometheus' ``histogram_quantile`` does), so
    they are estimates within one bucket's width.
    """

    calls: int
    errors: int
    mean_latency_ms: float | None
    max_latency_ms: float | None
    last_error: str
    latency_sum_s: float = 0.0
    buckets: tuple[int, ...] = ()
    p50_ms: float | None = None
    p99_ms: float | None = None


def _quantile(q: float, buckets: tuple[int, ...], calls: int, max_s: float) -> float | None:
    """The ``q`` quantile (ms) of a cumulative histogram over `LATENCY_BUCKETS_S` (see `CallStats`)."""
    if not calls:
        return None
    rank = q * calls
    lower_bound, lower_count = 0.0, 0
    for bound, count in zip(
        (*LATENCY_BUCKETS_S, max(max_s, LATENCY_BUCKETS_S[-1])), (*buckets, calls), strict=True
    ):
        if count >= rank:
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return round((lower_bound + (min(bound, max_s) - lower_bound) * share) * 1000.0, 3)
        lower_bound, lower_count = bound, count
    return round(max_s * 1000.0, 3)


class _Counter:
    __slots__ = ("buckets", "calls", "errors", "last_error", "latency_max_s", "latency_sum_s")

    def __init__(self) -> None:
        self.calls = 0
        self.errors = 0
        self.latency_sum_s = 0.0
        self.latency_max_s = 0.0
        self.last_error = ""
        self.buckets = [0] * len(LATENCY_BUCKETS_S)

    def add(self, event: CallCompleted) -> None:
        self.calls += 1
        latency = event.latency_s
        self.latency_sum_s += latency
        self.latency_max_s = max(self.latency_max_s, latency)
        index = bisect_left(LATENCY_BUCKETS_S, latency)
        if index < len(self.buckets):  # beyond the last bound: counted in ``calls`` (+Inf) only
            self.buckets[index] += 1
        if not event.ok:
            self.errors += 1
            self.last_error = event.error

    def stats(self) -> CallStats:
        if not self.calls:
            return CallStats(0, 0, None, None, "", buckets=(0,) * len(LATENCY_BUCKETS_S))
        mean = self.latency_sum_s / self.calls * 1000.0
        cumulative = tuple(accumulate(self.buckets))
        return CallStats(
            self.calls,
            self.errors,
            mean,
            self.latency_max_s * 1000.0,
            self.last_error,
            latency_sum_s=self.latency_sum_s,
            buckets=cumulative,
            p50_ms=_quantile(0.5, cumulative, self.calls, self.latency_max_s),
            p99_ms=_quantile(0.99, cumulative, self.calls, self.latency_max_s),
        )


DRIFT_KIND = "drift"


class _Drift:
    """The two detectors of one stream of calls (a unit's, or one tool's)."""

    __slots__ = ("errors", "latency")

    def __init__(self, policy: DriftPolicy) -> None:
        self.errors = Cusum("error_rate", policy)
        self.latency = Cusum("latency", policy)


class _Unit:
    __slots__ = ("drift", "last_call_at", "nested", "recent", "recent_errors", "spiking", "tools", "total")

    def __init__(self, tools: Iterable[str], spike_window: int) -> None:
        self.total = _Counter()
        self.tools: dict[str, _Counter] = {t: _Counter() for t in tools}
        self.recent: deque[bool] = deque(maxlen=spike_window)
        self.recent_errors = 0
        self.spiking = False
        self.nested: ViableStatus | None = None
        self.last_call_at: float | None = None
        #: Drift detectors by tool (None: the unit as a whole); made at a stream's first call.
        self.drift: dict[str | None, _Drift] = {}


class Operations:
    """S1: the registry of units and their measured operations."""

    name = "s1"

    def __init__(
        self,
        inbox: Inbox,
        sink: SignalSink,
        *,
        spike_window: int = SPIKE_WINDOW,
        spike_error_share: float = SPIKE_ERROR_SHARE,
        notices: Notices | None = None,
        drift: DriftPolicy | None = None,
    ) -> None:
        self._notices = notices
        #: None: no drift detection.
        self._drift = drift
        self.drifts = 0
        if spike_window < 1 or not 0.0 < spike_error_share <= 1.0:
            raise ValueError("need spike_window >= 1 and 0 < spike_error_share <= 1")
        self._inbox = inbox
        self._sink = sink
        self._spike_window = spike_window
        self._spike_share = spike_error_share
        self._units: dict[str, _Unit] = {}
        self.unknown_unit_calls = 0
        self.spikes = 0

    def register(self, unit: str, tools: Iterable[str]) -> None:
        """Add a unit (or replace its tool list, keeping its unit totals)."""
        existing = self._units.get(unit)
        if existing is None:
            self._units[unit] = _Unit(tools, self._spike_window)
            return
        existing.tools = {t: existing.tools.get(t, _Counter()) for t in tools}

    def deregister(self, unit: str) -> None:
        """Forget a unit and its counters."""
        self._units.pop(unit, None)

    def set_nested(self, unit: str, status: ViableStatus | None) -> None:
        """Attach the status a unit reports about itself (it is a viable system too)."""
        self._units[unit].nested = status

    @property
    def units(self) -> list[str]:
        """Registered unit names, sorted."""
        return sorted(self._units)

    def record(self, event: CallCompleted) -> None:
        """Count one finished call."""
        unit = self._units.get(event.unit)
        if unit is None:
            self.unknown_unit_calls += 1
            return
        unit.total.add(event)
        unit.last_call_at = event.at
        tool = unit.tools.get(event.tool)
        if tool is None:
            tool = unit.tools[event.tool] = _Counter()
        tool.add(event)
        self._judge_spike(event, unit, failed=not event.ok)
        if self._drift is not None:
            self._judge_drift(event, unit, None)
            self._judge_drift(event, unit, event.tool)

    def _judge_drift(self, event: CallCompleted, unit: _Unit, tool: str | None) -> None:
        policy = self._drift
        assert policy is not None
        detectors = unit.drift.get(tool)
        if detectors is None:
            detectors = unit.drift[tool] = _Drift(policy)
        for alarm in (
            detectors.errors.update(0.0 if event.ok else 1.0),
            detectors.latency.update(event.latency_s),
        ):
            if alarm is None:
                continue
            self.drifts += 1
            where = event.unit if tool is None else f"{event.unit}/{tool}"
            self._sink.emit(
                AlgedonicSignal(
                    unit_source(event.unit),
                    DRIFT_KIND,
                    Valence.PAIN,
                    Severity.MEDIUM,
                    f"{where}: {alarm.describe()}",
                    event.at,
                )
            )

    def _judge_spike(self, event: CallCompleted, unit: _Unit, *, failed: bool) -> None:
        recent = unit.recent
        if len(recent) == recent.maxlen and recent[0]:
            unit.recent_errors -= 1
        recent.append(failed)
        unit.recent_errors += failed
        full = len(recent) == recent.maxlen
        share = unit.recent_errors / len(recent)
        if full and share >= self._spike_share and not unit.spiking:
            unit.spiking = True
            self.spikes += 1
            detail = (
                f"{unit.recent_errors} of the last {len(recent)} calls to {event.unit} failed; "
                f"last error: {unit.total.last_error}"
            )
            self._sink.emit(
                AlgedonicSignal(
                    unit_source(event.unit), ERROR_SPIKE_KIND, Valence.PAIN, Severity.HIGH, detail, event.at
                )
            )
        elif unit.spiking and share < self._spike_share:
            unit.spiking = False

    def unit_stats(self, unit: str) -> CallStats:
        """Measured calls of one unit."""
        return self._units[unit].total.stats()

    def tool_stats(self, unit: str) -> dict[str, CallStats]:
        """Measured calls of each tool of one unit."""
        return {t: c.stats() for t, c in sorted(self._units[unit].tools.items())}

    def nested(self, unit: str) -> ViableStatus | None:
        """The status a unit reported about itself, if it is a viable system."""
        return self._units[unit].nested

    def last_call_at(self, unit: str) -> float | None:
        """Wall-clock time of the unit's last finished call, if any (unknown units: None)."""
        found = self._units.get(unit)
        return None if found is None else found.last_call_at

    def spiking(self, unit: str) -> bool:
        """Whether the unit is in an error-rate spike now."""
        return self._units[unit].spiking

    async def run(self) -> None:
        """Count every `CallCompleted` that arrives (alone or in `CallsCompleted`), until the inbox closes."""
        async for envelope in self._inbox:
            payload = envelope.payload
            calls: tuple[CallCompleted, ...] = ()
            if isinstance(payload, CallCompleted):
                calls = (payload,)
            elif isinstance(payload, CallsCompleted):
                calls = tuple(payload.calls)
            for call in calls:
                self.record(call)
            if calls and self._notices is not None:
                total = sum(u.total.calls for u in self._units.values())
                self._notices.publish("calls.counted", "s1", calls=len(calls), total=total)

    def status(self) -> SystemStatus:
        """Totals over all units."""
        calls = sum(u.total.calls for u in self._units.values())
        errors = sum(u.total.errors for u in self._units.values())
        spiking = sum(1 for u in self._units.values() if u.spiking)
        inbox = self._inbox.stats().routine
        return SystemStatus(
            "degraded" if spiking else ("ok" if self._units else "idle"),
            {
                "units": len(self._units),
                "tools": sum(len(u.tools) for u in self._units.values()),
                "calls": calls,
                "errors": errors,
                "units_spiking": spiking,
                "drifts": self.drifts,
                "events_dropped": inbox.dropped,
                "events_queued": inbox.queued,
            },
        )
