"""``/metrics``: the running system in the Prometheus text format, written by `prometheus_client`.

Each scrape takes one snapshot (S1's counters and latency histograms per unit
and tool, the fleet's unit states, breakers and restarts, S4's variety
reading, the algedonic channel, the store's dead letters and alerts) and
renders it through a registry of its own, so nothing is kept between scrapes
and nothing is counted twice. Counters are the systems' own running totals
(they start at 0 when the gateway starts, as Prometheus expects).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from vsm_mcp.core.hysteresis import GapState
from vsm_mcp.runtime import Runtime
from vsm_mcp.vsm.operations import LATENCY_BUCKETS_S, CallStats

PREFIX = "vsm_mcp"
#: Stored alerts read per scrape to count them by severity.
ALERTS_READ = 100_000


@dataclass(frozen=True, slots=True)
class _Snapshot:
    units: list[dict[str, object]]
    unit_calls: dict[str, CallStats]
    tool_calls: dict[tuple[str, str], CallStats]
    dead_letters: int
    alerts_by_severity: dict[str, int]
    reading: dict[str, float]
    gap_detected: bool
    signals: int


async def render(runtime: Runtime) -> bytes:
    """One scrape of ``runtime`` as Prometheus text."""
    s1 = runtime.system.s1
    unit_calls = {name: s1.unit_stats(name) for name in s1.units}
    tool_calls = {(name, tool): stats for name in s1.units for tool, stats in s1.tool_stats(name).items()}
    reading = runtime.system.s4.reading()
    severities = Counter(a.severity.name for a in await runtime.store.alerts(ALERTS_READ))
    snapshot = _Snapshot(
        units=runtime.fleet.status(),
        unit_calls=unit_calls,
        tool_calls=tool_calls,
        dead_letters=len(await runtime.store.dead_letters()),
        alerts_by_severity=dict(severities),
        reading={
            "demand_variety_bits": reading.demand_variety_bits,
            "system_variety_bits": reading.system_variety_bits,
            "coverage": reading.coverage,
            "gap": reading.gap,
        },
        gap_detected=runtime.system.s4.detector.state is GapState.DETECTED,
        signals=runtime.system.channel.stats().signals,
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry)


def _histogram(name: str, doc: str, labels: list[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, labels=labels, unit="seconds")


def _buckets(stats: CallStats) -> list[tuple[str, float]]:
    cumulative = stats.buckets or (0,) * len(LATENCY_BUCKETS_S)
    return [
        *((repr(float(b)), float(c)) for b, c in zip(LATENCY_BUCKETS_S, cumulative, strict=True)),
        ("+Inf", float(stats.calls)),
    ]


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: _Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        calls = CounterMetricFamily(
            f"{PREFIX}_tool_calls", "Tool calls that ended, per unit and tool.", labels=["unit", "tool"]
        )
        errors = CounterMetricFamily(
            f"{PREFIX}_tool_errors", "Tool calls that ended in an error.", labels=["unit", "tool"]
        )
        latency = _histogram(
            f"{PREFIX}_tool_latency", "Tool call latency through the gateway.", ["unit", "tool"]
        )
        for (unit, tool), stats in sorted(snap.tool_calls.items()):
            calls.add_metric([unit, tool], stats.calls)
            errors.add_metric([unit, tool], stats.errors)
            latency.add_metric([unit, tool], _buckets(stats), stats.latency_sum_s)
        yield from (calls, errors, latency)

        unit_latency = _histogram(f"{PREFIX}_unit_latency", "Call latency per unit.", ["unit"])
        for unit, stats in sorted(snap.unit_calls.items()):
            unit_latency.add_metric([unit], _buckets(stats), stats.latency_sum_s)
        yield unit_latency

        restarts = CounterMetricFamily(
            f"{PREFIX}_unit_restarts", "Restarts of each unit's server.", labels=["unit"]
        )
        timeouts = CounterMetricFamily(
            f"{PREFIX}_unit_timeouts", "Calls that timed out, per unit.", labels=["unit"]
        )
        state = GaugeMetricFamily(
            f"{PREFIX}_unit_state", "1 for each unit's current state.", labels=["unit", "state"]
        )
        breaker = GaugeMetricFamily(
            f"{PREFIX}_breaker_state", "1 for each unit's breaker state.", labels=["unit", "state"]
        )
        by_state: Counter[str] = Counter()
        for row in snap.units:
            name = str(row["name"])
            restarts.add_metric([name], float(row["restarts"]))  # type: ignore[arg-type]
            timeouts.add_metric([name], float(row["timeouts"]))  # type: ignore[arg-type]
            state.add_metric([name, str(row["state"])], 1)
            breaker.add_metric([name, str(row["breaker"])], 1)
            by_state[str(row["state"])] += 1
        units = GaugeMetricFamily(f"{PREFIX}_units", "Units by state.", labels=["state"])
        for word, count in sorted(by_state.items()):
            units.add_metric([word], count)
        yield from (restarts, timeouts, state, breaker, units)

        yield GaugeMetricFamily(
            f"{PREFIX}_dead_letters", "Failed calls waiting for a replay.", value=snap.dead_letters
        )
        for key, value in snap.reading.items():
            yield GaugeMetricFamily(
                f"{PREFIX}_variety_{key}", f"S4's reading now: {key.replace('_', ' ')}.", value=value
            )
        yield GaugeMetricFamily(
            f"{PREFIX}_gap_detected", "1 while S4 holds a detected variety gap.", value=int(snap.gap_detected)
        )
        alerts = CounterMetricFamily(
            f"{PREFIX}_alerts", "Stored algedonic alerts by severity.", labels=["severity"]
        )
        for severity, count in sorted(snap.alerts_by_severity.items()):
            alerts.add_metric([severity], count)
        yield alerts
        yield CounterMetricFamily(
            f"{PREFIX}_algedonic_signals", "Signals the algedonic channel received.", value=snap.signals
        )
