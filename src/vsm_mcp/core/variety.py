"""Variety measures and the demand profile they are computed on (pure, no I/O).

Definitions (ARCHITECTURE.md gives them with worked numbers):

* Variety of a set of ``n`` distinguishable states: ``V = log2(n)`` (0 for n <= 1).
* Environmental variety ``H_E``: Shannon entropy, in bits, of the demand
  categories counted in a window: ``H = -sum(p_i * log2 p_i)``.
* System variety ``V_S = log2(|C|)`` where ``C`` is the set of capability
  categories that can answer (capacity > 0).
* Coverage ``kappa = sum_i min(c_i, cap_i) / N``: the frequency-weighted share
  of demand a capability can answer, each category limited by its capacity
  (calls per window; unlimited unless an operator says otherwise).
* Entropy deficit ``D = max(0, H_E - V_S)`` bits; requisite-variety ratio
  ``rho = V_S / H_E`` (undefined, ``None``, when ``H_E == 0``).
* Gap ``G = (1 - kappa) + D / H_E`` (the second term is 0 when ``H_E == 0``);
  ``0 <= G <= 2``.

Invariants: every function here is deterministic and total; nothing reads a
clock or a random source.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: Capacity of a category whose units are not rate-limited.
UNLIMITED = sys.maxsize


#: Width of a stored demand bucket: an hour, the grain of demand history.
DEMAND_BUCKET_S = 3600


def set_variety(n: int) -> float:
    """Variety, in bits, of a set of ``n`` distinguishable states."""
    if n < 0:
        raise ValueError(f"a set cannot have {n} states")
    return math.log2(n) if n > 1 else 0.0


def shannon_entropy(counts: Iterable[int]) -> float:
    """Shannon entropy in bits of a distribution given by non-negative counts."""
    values = [c for c in counts if c > 0]
    total = sum(values)
    if total == 0:
        return 0.0
    h = -sum((c / total) * math.log2(c / total) for c in values)
    return max(h, 0.0)


@dataclass(frozen=True, slots=True)
class VarietyReading:
    """One consistent measurement of demand against capability."""

    events: int
    categories: int
    demand_variety_bits: float
    demand_max_bits: float
    system_variety_bits: float
    coverage: float
    entropy_deficit_bits: float
    requisite_ratio: float | None
    gap: float

    @property
    def unmatched_share(self) -> float:
        """Share of demand in the window that no capability answers."""
        return 1.0 - self.coverage


def make_reading(
    *, events: int, categories: int, entropy_bits: float, matched: int, answering: int
) -> VarietyReading:
    """Assemble a reading from the window's sufficient statistics.

    ``matched`` is ``sum(min(c_i, cap_i))`` and ``answering`` is ``|C|``.
    """
    h = entropy_bits if entropy_bits > 0.0 else 0.0
    v_s = set_variety(answering)
    coverage = matched / events if events else 1.0
    deficit = h - v_s if h > v_s else 0.0
    gap = (1.0 - coverage) + (deficit / h if h > 0.0 else 0.0)
    return VarietyReading(
        events=events,
        categories=categories,
        demand_variety_bits=h,
        demand_max_bits=set_variety(categories),
        system_variety_bits=v_s,
        coverage=coverage,
        entropy_deficit_bits=deficit,
        requisite_ratio=(v_s / h) if h > 0.0 else None,
        gap=gap,
    )


@dataclass(frozen=True, slots=True)
class DemandProfile:
    """A snapshot of demand counts and capability capacities; operators act on it."""

    counts: Mapping[str, int] = field(default_factory=dict)
    capacity: Mapping[str, int] = field(default_factory=dict)

    def reading(self) -> VarietyReading:
        """Compute the variety reading from scratch (the reference definition)."""
        counts = {k: v for k, v in self.counts.items() if v > 0}
        events = sum(counts.values())
        matched = sum(min(c, self.capacity.get(k, 0)) for k, c in counts.items())
        answering = sum(1 for cap in self.capacity.values() if cap > 0)
        return make_reading(
            events=events,
            categories=len(counts),
            entropy_bits=shannon_entropy(counts.values()),
            matched=matched,
            answering=answering,
        )
