"""`vsm-mcp bench variety`: throughput and memory of the demand window, measured.

One *op* is one demand event recorded in a `DemandWindow` with both limits
on (10,000 events and a one-hour age window), which updates its entropy and
coverage statistics; a reading after the run is checked against a
from-scratch recomputation so a fast-but-wrong window cannot pass.

The workload is a Zipf-like mix over 500 categories plus a steady trickle of
new one-off categories (so categories come and go), generated from a fixed
seed before timing starts. Timing uses ``time.perf_counter`` on one thread
(so one core); memory uses ``tracemalloc`` in a separate pass, because
tracing slows every allocation.
"""

from __future__ import annotations

import gc
import math
import random
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass

from vsm_mcp.core.variety import UNLIMITED
from vsm_mcp.core.window import DemandWindow

#: The seed project's claimed, never measured, figure.
SEED_TARGET_OPS_PER_S = 177_000
#: The floors this project promises (issue #2).
SINGLE_TARGET_OPS_PER_S = 500_000
BATCH_TARGET_OPS_PER_S = 2_000_000
WINDOW_EVENTS = 10_000
WINDOW_AGE_S = 3600.0
BATCH_SIZE = 1_000
#: Events per simulated second: time advances so the age window really turns over buckets.
EVENTS_PER_SIMULATED_S = 2_000


@dataclass(frozen=True, slots=True)
class VarietyBenchResult:
    """Everything `bench variety` measured in one run."""

    events: int
    single_ops_per_s: float
    batch_ops_per_s: float
    bytes_per_tracked_category: float
    memory_growth_bytes: int
    final_entropy_bits: float
    recomputation_matches: bool

    def to_dict(self) -> dict[str, float | int | bool]:
        return {
            "events": self.events,
            "single_ops_per_s": round(self.single_ops_per_s),
            "batch_ops_per_s": round(self.batch_ops_per_s),
            "seed_target_ops_per_s": SEED_TARGET_OPS_PER_S,
            "single_vs_seed_ratio": round(self.single_ops_per_s / SEED_TARGET_OPS_PER_S, 2),
            "batch_vs_seed_ratio": round(self.batch_ops_per_s / SEED_TARGET_OPS_PER_S, 2),
            "single_vs_target_ratio": round(self.single_ops_per_s / SINGLE_TARGET_OPS_PER_S, 2),
            "batch_vs_target_ratio": round(self.batch_ops_per_s / BATCH_TARGET_OPS_PER_S, 2),
            "batch_vs_single_ratio": round(self.batch_ops_per_s / self.single_ops_per_s, 2),
            "bytes_per_tracked_category": round(self.bytes_per_tracked_category, 1),
            "memory_growth_bytes": self.memory_growth_bytes,
            "memory_growth_events": self.events,
            "final_entropy_bits": round(self.final_entropy_bits, 6),
            "recomputation_matches": self.recomputation_matches,
        }


def workload(events: int, seed: int = 20261126) -> list[str]:
    """A deterministic demand stream: Zipf over 500 categories, 1% one-off categories."""
    rng = random.Random(seed)
    names = [f"tool.category.{i}" for i in range(500)]
    weights = [1.0 / (rank + 1) for rank in range(500)]
    stream = rng.choices(names, weights=weights, k=events)
    for i in range(0, events, 100):
        stream[i] = f"one-off.{i}"
    return stream


def _new_window() -> DemandWindow:
    capacity = {f"tool.category.{i}": UNLIMITED for i in range(0, 500, 2)}
    return DemandWindow(max_events=WINDOW_EVENTS, max_age_s=WINDOW_AGE_S, capacity=capacity)


def _time_single(stream: Sequence[str]) -> tuple[float, DemandWindow]:
    window = _new_window()
    observe = window.observe
    step = 1.0 / EVENTS_PER_SIMULATED_S
    gc.collect()
    start = time.perf_counter()
    now = 0.0
    for category in stream:
        now += step
        observe(category, now)
    elapsed = time.perf_counter() - start
    return len(stream) / elapsed, window


def _time_batch(stream: Sequence[str]) -> tuple[float, DemandWindow]:
    window = _new_window()
    observe_many = window.observe_many
    batches = [stream[i : i + BATCH_SIZE] for i in range(0, len(stream), BATCH_SIZE)]
    step = BATCH_SIZE / EVENTS_PER_SIMULATED_S
    gc.collect()
    start = time.perf_counter()
    now = 0.0
    for batch in batches:
        now += step
        observe_many(batch, now)
    elapsed = time.perf_counter() - start
    return len(stream) / elapsed, window


def _bytes_per_category(count: int = 20_000) -> float:
    names = [f"distinct.{i}" for i in range(count)]  # allocated before tracing: the caller owns them
    window = DemandWindow(max_events=count)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for name in names:
        window.observe(name, 0.0)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / count


def _memory_growth(stream: Sequence[str]) -> int:
    window = _new_window()
    step = 1.0 / EVENTS_PER_SIMULATED_S
    now = 0.0
    # Fill the window (and its age buckets) first: growth is measured once it is full.
    for category in stream[: WINDOW_EVENTS * 2]:
        now += step
        window.observe(category, now)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for category in stream:
        now += step
        window.observe(category, now)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before


def run(events: int = 1_000_000, *, measure_memory: bool = True) -> VarietyBenchResult:
    """Run the benchmark; ``events`` events per measured pass."""
    stream = workload(events)
    single, single_window = _time_single(stream)
    batch, batch_window = _time_batch(stream)
    incremental = single_window.reading()
    reference = single_window.profile().reading()
    matches = (
        incremental.events == reference.events
        and incremental.coverage == reference.coverage
        and math.isclose(incremental.demand_variety_bits, reference.demand_variety_bits, abs_tol=1e-9)
        and batch_window.profile().counts == single_window.profile().counts
    )
    return VarietyBenchResult(
        events=events,
        single_ops_per_s=single,
        batch_ops_per_s=batch,
        bytes_per_tracked_category=_bytes_per_category() if measure_memory else math.nan,
        memory_growth_bytes=_memory_growth(stream) if measure_memory else 0,
        final_entropy_bits=incremental.demand_variety_bits,
        recomputation_matches=matches,
    )
