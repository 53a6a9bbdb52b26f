"""Attenuators and amplifiers: Beer's variety operators, with computed effect.

An attenuator reduces the variety of demand reaching the system (filter out
categories policy rejects, aggregate categories that one capability answers,
sample a share of the traffic); an amplifier raises the system's variety or
capacity (add a capability, run units in parallel). Each operator maps a
`DemandProfile` to a new one; `effect` measures the gap before and after with
the same from-scratch definition (`DemandProfile.reading`), so an operator's
claimed benefit is always computed, never asserted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from vsm_mcp.core.variety import UNLIMITED, DemandProfile, VarietyReading


class VarietyOperator(Protocol):
    """Something that changes demand or capability variety."""

    @property
    def name(self) -> str:
        """Short label for logs and decisions."""
        ...

    def apply(self, profile: DemandProfile) -> DemandProfile:
        """Return the profile as it would be with this operator in place."""
        ...


@dataclass(frozen=True, slots=True)
class OperatorEffect:
    """Gap before and after one operator; negative ``delta_gap`` is better."""

    operator: str
    before: VarietyReading
    after: VarietyReading

    @property
    def delta_gap(self) -> float:
        """Change of the gap the operator causes."""
        return self.after.gap - self.before.gap


def effect(operator: VarietyOperator, profile: DemandProfile) -> OperatorEffect:
    """Measure what ``operator`` does to the gap of ``profile``."""
    return OperatorEffect(operator.name, profile.reading(), operator.apply(profile).reading())


# -- attenuators --------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Filter:
    """Drop demand in the given categories (e.g. rejected by policy)."""

    categories: frozenset[str]

    @property
    def name(self) -> str:
        return f"filter({','.join(sorted(self.categories))})"

    def apply(self, profile: DemandProfile) -> DemandProfile:
        counts = {k: v for k, v in profile.counts.items() if k not in self.categories}
        return DemandProfile(counts=counts, capacity=dict(profile.capacity))


@dataclass(frozen=True, slots=True)
class Aggregate:
    """Merge categories into one (e.g. tool search routing many asks to one tool)."""

    mapping: Mapping[str, str]

    @property
    def name(self) -> str:
        return "aggregate(" + ",".join(f"{k}->{v}" for k, v in sorted(self.mapping.items())) + ")"

    def apply(self, profile: DemandProfile) -> DemandProfile:
        counts: dict[str, int] = {}
        for category, count in profile.counts.items():
            target = self.mapping.get(category, category)
            counts[target] = counts.get(target, 0) + count
        return DemandProfile(counts=counts, capacity=dict(profile.capacity))


@dataclass(frozen=True, slots=True)
class Sample:
    """Pass only a share of demand on (load shedding): counts scale, rounded half up."""

    share: float

    def __post_init__(self) -> None:
        if not 0.0 < self.share <= 1.0:
            raise ValueError("share must be in (0, 1]")

    @property
    def name(self) -> str:
        return f"sample({self.share:g})"

    def apply(self, profile: DemandProfile) -> DemandProfile:
        counts = {k: int(v * self.share + 0.5) for k, v in profile.counts.items()}
        return DemandProfile(
            counts={k: v for k, v in counts.items() if v > 0}, capacity=dict(profile.capacity)
        )


# -- amplifiers ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AddCapability:
    """A new unit answers ``category`` (unlimited capacity unless given)."""

    category: str
    capacity: int = UNLIMITED

    @property
    def name(self) -> str:
        return f"add_capability({self.category})"

    def apply(self, profile: DemandProfile) -> DemandProfile:
        capacity = dict(profile.capacity)
        capacity[self.category] = max(capacity.get(self.category, 0), 0) + self.capacity
        capacity[self.category] = min(capacity[self.category], UNLIMITED)
        return DemandProfile(counts=dict(profile.counts), capacity=capacity)


@dataclass(frozen=True, slots=True)
class ParallelUnits:
    """Run ``factor`` units of a category side by side: capacity multiplies."""

    category: str
    factor: int

    def __post_init__(self) -> None:
        if self.factor < 1:
            raise ValueError("factor must be at least 1")

    @property
    def name(self) -> str:
        return f"parallel_units({self.category}x{self.factor})"

    def apply(self, profile: DemandProfile) -> DemandProfile:
        capacity = dict(profile.capacity)
        current = capacity.get(self.category, 0)
        capacity[self.category] = min(current * self.factor, UNLIMITED)
        return DemandProfile(counts=dict(profile.counts), capacity=capacity)
